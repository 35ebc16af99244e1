"""Ingest adapter routes are settings: every command refuses a bad route when it loads them,
in one line naming the variable, the route and the field, before it connects to anything."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.integration.test_cli import _one_line, clean_env, run_cli

pytestmark = pytest.mark.integration

VARIABLE = "STOCKSENSE_INGEST__ADAPTERS"
GOOD = {"pattern": "tele/+/SENSOR", "adapter": "tasmota", "site": "wh1"}


def _routes(*routes: Mapping[str, object]) -> str:
    return json.dumps(list(routes))


@pytest.mark.parametrize("command", ["config", "ingest"])
@pytest.mark.parametrize(
    ("routes", "needles"),
    [
        (
            _routes(GOOD, {"pattern": "zebra/#", "adapter": "rfid", "site": "wh1"}),
            [f"{VARIABLE}: [1].adapter: Input should be", "'zebra'", "got 'rfid'"],
        ),
        (
            _routes({**GOOD, "pattern": "tele/#/SENSOR"}),
            [f"{VARIABLE}: [0].pattern: topic filter 'tele/#/SENSOR': '#' must be the whole last"],
        ),
        (
            _routes({**GOOD, "pattern": "tele/+SENSOR"}),
            [f"{VARIABLE}: [0].pattern: topic filter 'tele/+SENSOR': '+' must be a whole level"],
        ),
        (
            _routes({**GOOD, "site": "wh 1"}),
            [f"{VARIABLE}: [0].site: String should match pattern", "got 'wh 1'"],
        ),
        (
            _routes({**GOOD, "site": "wh1\n"}),
            [f"{VARIABLE}: [0].site: String should match pattern"],
        ),
        (
            _routes({"pattern": "tele/+/SENSOR", "adapter": "tasmota"}),
            [f"{VARIABLE}: [0]: a tasmota route needs a site"],
        ),
        (
            _routes({**GOOD, "timezone": "Asia/Beijing"}),
            [f"{VARIABLE}: [0].timezone: unknown time zone 'Asia/Beijing'"],
        ),
        (
            '[{"pattern": "tele/+/SENSOR", adapter: "tasmota"}]',
            [f"{VARIABLE}: not valid JSON"],
        ),
    ],
)  # fmt: skip
def test_a_bad_route_stops_the_command_in_one_line(
    command: str, routes: str, needles: list[str], tmp_path: Path
) -> None:
    # Port 9 (discard) on loopback: a command that got past its settings would fail to connect
    # with exit code 1, not 2.
    env = clean_env(**{VARIABLE: routes, "STOCKSENSE_MQTT__PORT": "9"})
    cli = run_cli(command, env=env, cwd=tmp_path, timeout=30)
    _one_line(cli, 2, f"stocksense {command}: ", *needles)


def test_config_prints_the_routes_as_loaded(tmp_path: Path) -> None:
    env = clean_env(
        **{VARIABLE: _routes(GOOD, {"pattern": "stocksense/v1/#", "adapter": "canonical"})}
    )
    cli = run_cli("config", env=env, cwd=tmp_path)
    assert cli.process.returncode == 0, cli
    printed = json.loads("\n".join(cli.stdout))
    assert printed["ingest"]["adapters"] == [
        {**GOOD, "timezone": "UTC", "device_segment": None, "kind": None, "weight_unit": "kg"},
        {
            "pattern": "stocksense/v1/#",
            "adapter": "canonical",
            "site": None,
            "timezone": "UTC",
            "device_segment": None,
            "kind": None,
            "weight_unit": "kg",
        },
    ]

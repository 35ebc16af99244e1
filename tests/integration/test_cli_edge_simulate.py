"""``stocksense simulate --scenario ... --edge-shelf/--edge-probe/--edge-scale`` as users run it:
the scenario's shelf, probe and scale cell served as simulated Modbus devices and a serial
scale, the agent's configuration written for ``stocksense edge --config``, and the agent, run
from that file, publishing what the simulation holds through the real broker, ingest and
InfluxDB."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.influx import query_sync, rows
from core.settings import InfluxSettings
from edge.config import load_config
from stocksense.devservices import LocalStack, free_port
from tests.conftest import wait_for
from tests.integration.test_cli import Cli, run_cli, stack_env

pytestmark = pytest.mark.integration


def _scenario(site: str) -> dict[str, Any]:
    return {
        "seed": 3,
        "speed": 1,
        "interval_s": 1,
        "duration": 600,
        "sites": [
            {
                "id": site,
                "zones": [
                    {
                        "id": "cold-room",
                        "temp_band": {"low": 2.0, "high": 8.0},
                        "sensors": [{"device": "cold-1"}],
                        "celsius": 4.5,
                        "noise_c": 0,
                    }
                ],
                "shelves": [
                    {
                        "device": "shelf-e1",
                        "cells": [
                            {"cell": "c1", "sku": "TEA-500", "units": 20, "location": "E1"},
                            {"cell": "c2", "sku": "SPICE-125", "units": 8, "location": "E2",
                             "tare_grams": 300},
                        ],
                    },
                    {
                        "device": "shelf-m1",
                        "cells": [{"cell": "c1", "sku": "RICE-1KG", "units": 30, "location": "M1"}],
                    },
                ],
            }
        ],
        "skus": [
            {"sku": "TEA-500", "unit_grams": 500},
            {"sku": "SPICE-125", "unit_grams": 125},
            {"sku": "RICE-1KG", "unit_grams": 1000},
        ],
    }  # fmt: skip


def test_simulate_serves_the_edge_devices_and_writes_the_agents_config(
    stack: LocalStack, tmp_path: Path
) -> None:
    site = f"ce{uuid.uuid4().hex[:8]}"
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(yaml.safe_dump(_scenario(site)), encoding="utf-8")
    config = tmp_path / "edge.yaml"
    env = stack_env(stack, tmp_path, STOCKSENSE_MQTT__SITES=site)
    influx = InfluxSettings(url=stack.influx_url, database=env["STOCKSENSE_INFLUX__DATABASE"])
    edge_args = ("--edge-shelf", "shelf-e1", "--edge-probe", "cold-1",
                 "--edge-scale", "shelf-m1/c1")  # fmt: skip

    # Without a scenario, or without a file for the agent's configuration: refused, exit 2.
    alone = run_cli("simulate", *edge_args, env=env, cwd=tmp_path)
    assert (alone.process.returncode, alone.stderr[-1]) == (
        2,
        "stocksense simulate: --edge-shelf, --edge-probe and --edge-scale need --scenario",
    )
    unknown = run_cli("simulate", "--scenario", str(scenario), "--edge-shelf", "shelf-x",
                      "--edge-config", str(config), env=env, cwd=tmp_path)  # fmt: skip
    assert unknown.process.returncode == 2
    assert unknown.stderr[-1] == (
        f"stocksense simulate: {scenario}: edge: {site} has no shelf 'shelf-x'"
    )

    badly_named = run_cli("simulate", "--scenario", str(scenario), "--edge-shelf", "shelf/x",
                          "--edge-config", str(config), env=env, cwd=tmp_path)  # fmt: skip
    assert badly_named.process.returncode == 2
    assert badly_named.stderr[-1].startswith(
        "stocksense simulate: --edge-shelf, --edge-probe or --edge-scale: shelf: "
    )
    assert not config.exists()  # nothing served, nothing written

    def measured(query: str) -> list[dict[str, Any]]:
        return rows(query_sync(influx, query))

    def readings() -> dict[tuple[str, str], float]:
        found = measured(f"SELECT grams, device, cell FROM weight WHERE site='{site}'")
        temps = measured(f"SELECT celsius, device FROM temperature WHERE site='{site}'")
        return {
            **{(r["device"], r["cell"]): r["grams"] for r in found},
            **{(r["device"], "t"): r["celsius"] for r in temps},
        }

    port = free_port()
    processes: list[Cli] = []
    try:
        ingest = Cli("ingest", env=env, cwd=tmp_path)
        processes.append(ingest)
        wait_for(lambda: any(" running" in e for e in ingest.stderr), 60, what="ingest running")
        simulate = Cli("simulate", "--scenario", str(scenario), *edge_args,
                       "--edge-modbus-port", str(port), "--edge-config", str(config),
                       "--progress", "0", env=env, cwd=tmp_path)  # fmt: skip
        processes.append(simulate)
        line = simulate.wait_stdout("run: stocksense edge --config")
        assert f"Modbus TCP 127.0.0.1:{port}" in line
        agent_config = load_config(config)
        assert (agent_config.site, sorted((d.name, d.protocol) for d in agent_config.devices)) == (
            site,
            [("cold-1", "modbus_tcp"), ("shelf-e1", "modbus_tcp"), ("shelf-m1", "serial_scale")],
        )
        processes.append(Cli("edge", "--config", str(config), env=env, cwd=tmp_path))
        expected = {
            ("shelf-e1", "c1"): 20 * 500.0,
            ("shelf-e1", "c2"): 300 + 8 * 125.0,
            ("shelf-m1", "c1"): 30 * 1000.0,
            ("cold-1", "t"): 4.5,
        }
        wait_for(lambda: expected.items() <= readings().items(), 60, what="the edge readings")
    finally:
        for cli in reversed(processes):
            cli.stop()
    assert processes[1].process.returncode == 0

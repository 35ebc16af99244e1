"""The commands the README tells a user to run, run as it writes them, from the project root.

The two main commands (``bash scripts/demo`` and ``bash scripts/test``) are what CI runs; the
SIGTERM, ``services`` and ``.env`` cases are in ``test_cli.py``. What stays here: the help texts,
``stocksense seed`` of the example catalog, ``stocksense config`` and the rules benchmark.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from stocksense.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
STOCKSENSE = str(Path(sys.executable).with_name("stocksense"))


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOCKSENSE_")}
    env["STOCKSENSE_DATA_DIR"] = str(tmp_path / "data")
    env.update(extra)
    return env


def _run(argv: list[str], tmp_path: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        cwd=ROOT,
        env=_env(tmp_path, **extra),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _parsers() -> dict[str, argparse.ArgumentParser]:
    """Each ``stocksense`` command's own parser."""
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("stocksense has no commands")


def _commands() -> list[str]:
    return sorted(_parsers())


def test_readme_names_every_command_and_no_other() -> None:
    named = set(re.findall(r"`stocksense ([a-z]+)", README))
    if "bash scripts/demo" in README:
        named.add("demo")  # the script runs `stocksense demo`
    assert set(_commands()) <= named, "a command the README does not mention"
    assert named - {"command"} <= set(_commands()), "the README names a command that is not there"


def test_demo_help_as_written(tmp_path: Path) -> None:
    assert "`bash scripts/demo --help`" in README
    done = _run(["bash", "scripts/demo", "--help"], tmp_path)
    assert done.returncode == 0, done.stderr
    for option in ("--linger", "--data-dir", "--excursion-at", "--excursion-for"):
        assert option in done.stdout


@pytest.mark.parametrize("command", _commands())
def test_every_option_of_every_command_has_help(command: str, tmp_path: Path) -> None:
    done = _run([STOCKSENSE, command, "--help"], tmp_path)
    assert done.returncode == 0, done.stderr
    parser = _parsers()[command]
    for action in parser._actions:
        if action.option_strings and "--help" not in action.option_strings:
            assert action.help, f"stocksense {command} {action.option_strings[0]} has no help"
        if not action.option_strings:
            assert action.help, f"stocksense {command} {action.dest} has no help"


def test_seed_the_example_catalog_as_written(tmp_path: Path) -> None:
    assert "`stocksense seed examples/demo-catalog.yaml`" in README
    catalog = yaml.safe_load((ROOT / "examples" / "demo-catalog.yaml").read_text())
    first = _run([STOCKSENSE, "seed", "examples/demo-catalog.yaml"], tmp_path)
    assert first.returncode == 0, first.stderr
    assert str(tmp_path / "data" / "stocksense.db") in first.stdout
    assert f"{len(catalog['skus'])} skus" in first.stdout
    assert f"{len(catalog['lots'])} lots" in first.stdout
    # Loading the same file again replaces the master data and leaves the lots as they are.
    again = _run([STOCKSENSE, "seed", "examples/demo-catalog.yaml"], tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout == first.stdout.replace(f"{len(catalog['lots'])} lots", "0 lots")


def test_config_as_written_masks_secrets(tmp_path: Path) -> None:
    assert "`stocksense config`" in README
    done = _run(
        [STOCKSENSE, "config"],
        tmp_path,
        STOCKSENSE_MQTT__QOS="0",
        STOCKSENSE_MQTT__PASSWORD="Zq8-r2Lm-broker",
    )
    assert done.returncode == 0, done.stderr
    assert "Zq8-r2Lm-broker" not in done.stdout + done.stderr
    assert re.search(r"qos\W+0\b", done.stdout), done.stdout


def test_rules_benchmark_as_written(tmp_path: Path) -> None:
    assert "`python -m bench.rules`" in README
    done = _run([sys.executable, "-m", "bench.rules"], tmp_path)
    assert done.returncode == 0, done.stderr
    seconds = re.search(
        r"dynamic_levels 100,000 SKUs x 180 days: best of 5 = ([0-9.]+) s", done.stdout
    )
    assert seconds is not None, done.stdout
    assert float(seconds.group(1)) > 0
    assert re.search(r"weight state machine: [0-9.]+ us per reading", done.stdout)
    assert re.search(r"RFID tracker: [0-9.]+ us per read", done.stdout)

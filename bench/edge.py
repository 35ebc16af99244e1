"""Edge agent benchmark: the readings/s it sustains, and its peak RSS and CPU at 1,000/s.

    .venv/bin/python -m bench.edge [--seconds 30] [--case rate-1000] [--case max]

A private Mosquitto and the Modbus simulator (a process of its own, so its CPU is not counted as
the agent's) are started, then ``stocksense edge --config`` as users run it, polling input
registers 11.. of the simulated transmitter (unit 2) as temperature sensors, queueing in SQLite
(``synchronous: full``) and publishing at QoS 1. Cases:

- ``rate-1000``: 50 registers every 50 ms (1,000 readings/s), one message per second (the
  default ``batch_interval_s``) — what a gateway with a busy transmitter does all day;
- ``rate-1000-agent``: the same, with ``edge.agent.EdgeAgent`` run by a few lines of Python
  instead of the ``stocksense`` command (the difference is what the command's imports cost);
- ``max``: 120 registers (one Modbus request) polled back to back, messages of up to 1,000
  readings: the most the agent sustains on this machine, bound by the Modbus round trips.

After a warm-up, over ``--seconds``: readings queued and acknowledged by the broker per second
(the queue's counter and the agent's ``stocksense_edge_published_readings_total``), the queue
depth at the end (a growing queue is not sustained), the agent's CPU (user + system time over
wall time, % of one core), its RSS at the end (VmRSS) and its peak RSS (VmHWM). Prints a
table; asserts nothing. Goal at 1,000 readings/s: at most 50 MB RSS and 20 % of one core.
"""

from __future__ import annotations

import argparse
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench import proc_memory_mb
from stocksense.devservices import free_port, mosquitto, port_open, wait_until

ROOT = Path(__file__).resolve().parents[1]
CLOCK_TICK = os.sysconf("SC_CLK_TCK")
CASES = {
    # name: (registers, poll interval s, batch interval s)
    "rate-1000": (50, 0.05, 1.0),
    "rate-1000-agent": (50, 0.05, 1.0),
    "max": (120, 0.0005, 0.05),
}
# The agent alone, without the imports of the ``stocksense`` command (rate-1000-agent): what
# the command's other subcommands cost every process shows as the difference.
AGENT_ONLY = """
import asyncio, signal, sys
from pathlib import Path
from edge.agent import EdgeAgent
from edge.config import load_config

async def main():
    task = asyncio.current_task()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        await EdgeAgent(load_config(Path(sys.argv[1]))).run()
    except asyncio.CancelledError:
        pass

asyncio.run(main())
"""


@dataclass
class Sample:
    """Counters of the agent at one instant."""

    at: float
    cpu_s: float
    queued: int
    published: float


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICK  # utime + stime


def _queued(path: Path) -> tuple[int, int]:
    """(readings ever queued, messages queued now)."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        row = db.execute("SELECT value FROM counters WHERE name='queued_readings'").fetchone()
        depth = db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
    return (int(row[0]) if row else 0), int(depth)


def _published(metrics_port: int) -> float:
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    match = re.search(r"^stocksense_edge_published_readings_total (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def _sample(pid: int, queue: Path, metrics_port: int) -> Sample:
    return Sample(time.monotonic(), _cpu_s(pid), _queued(queue)[0], _published(metrics_port))


def _config(case: str, work: Path, broker: int, modbus: int, metrics: int) -> dict[str, Any]:
    registers, poll_s, batch_s = CASES[case]
    return {
        "site": "bench",
        "agent_id": f"edge-{case}",
        "metrics_port": metrics,
        "broker": {"port": broker},
        "queue": {"path": str(work / f"{case}.sqlite"), "synchronous": "full"},
        "devices": [
            {
                "name": "tx-1",
                "protocol": "modbus_tcp",
                "kind": "temp",
                "host": "127.0.0.1",
                "port": modbus,
                "unit_id": 2,
                "poll_interval_s": poll_s,
                "timeout_s": 1.0,
                "retries": 0,
                "batch_interval_s": batch_s,
                "registers": {
                    f"s{i}": {"address": 11 + i, "function": "input", "type": "int16"}
                    for i in range(registers)
                },
            }
        ],
    }


def run_case(case: str, work: Path, broker: int, modbus: int, seconds: float) -> dict[str, Any]:
    """Run the agent for one case; its figures."""
    metrics = free_port()
    config = _config(case, work, broker, modbus, metrics)
    path = work / f"{case}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    queue = Path(config["queue"]["path"])
    with (work / f"{case}.log").open("wb") as log:
        command = (
            [sys.executable, "-c", AGENT_ONLY, str(path)]
            if case.endswith("-agent")
            else [sys.executable, "-m", "stocksense.cli", "edge", "--config", str(path)]
        )
        agent = subprocess.Popen(
            command,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: port_open(metrics), timeout=30, what="the agent's /metrics")
        wait_until(lambda: _published(metrics) > 0, timeout=30, what="a first PUBACK")
        time.sleep(3.0)  # warm-up: imports done, connections up, batches flowing
        first = _sample(agent.pid, queue, metrics)
        time.sleep(seconds)
        last = _sample(agent.pid, queue, metrics)
        depth = _queued(queue)[1]
        rss = proc_memory_mb(agent.pid, "VmRSS")
        peak = proc_memory_mb(agent.pid, "VmHWM")
    finally:
        agent.terminate()
        agent.wait(30)
    wall = last.at - first.at
    return {
        "case": case,
        "queued/s": (last.queued - first.queued) / wall,
        "acked/s": (last.published - first.published) / wall,
        "depth": depth,
        "cpu %": 100.0 * (last.cpu_s - first.cpu_s) / wall,
        "RSS MB": rss,
        "peak RSS MB": peak,
    }


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=30.0, help="measured window per case")
    parser.add_argument(
        "--case", choices=sorted(CASES), action="append", help="repeatable; default: all"
    )
    args = parser.parse_args()
    cases = args.case or list(CASES)
    with tempfile.TemporaryDirectory(prefix="bench-edge-") as tmp:
        work = Path(tmp)
        broker = mosquitto(work / "broker").start()
        modbus_port = free_port()
        simulator = subprocess.Popen(
            [sys.executable, "-m", "simulators.modbus_devices", "--port", str(modbus_port)],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_until(lambda: port_open(modbus_port), timeout=30, what="the Modbus simulator")
            results = [run_case(c, work, broker.port, modbus_port, args.seconds) for c in cases]
        finally:
            simulator.terminate()
            simulator.wait(10)
            broker.stop()
    print(f"edge agent, {args.seconds:g} s per case (python {sys.version.split()[0]}):")
    header = ["case", "queued/s", "acked/s", "depth", "cpu %", "RSS MB", "peak RSS MB"]
    print(f"{header[0]:<16}" + "".join(f"{h:>13}" for h in header[1:]))
    for row in results:
        cells = [
            row["case"],
            f"{row['queued/s']:,.0f}",
            f"{row['acked/s']:,.0f}",
            str(row["depth"]),
            f"{row['cpu %']:.1f}",
            f"{row['RSS MB']:.1f}",
            f"{row['peak RSS MB']:.1f}",
        ]
        print(f"{cells[0]:<16}" + "".join(f"{c:>13}" for c in cells[1:]))


if __name__ == "__main__":
    main()

"""Ingest benchmark: real Mosquitto + real InfluxDB, every point counted back.

    .venv/bin/python -m bench.ingest [--messages 200000] [--quick] [--case NAME ...]
        [--repeat N] [--profile DIR]

Each case runs the consumer in its own process (so its peak RSS and CPU are its own) and
floods the broker with ``mosquitto_pub -l`` in chunks of at most 50,000 lines (its message ids
wrap at 65,535 with ``-q 1``). The time is what a user waits: from the start of the first
``mosquitto_pub`` to the moment the last point is stored in InfluxDB (the consumer's write
answered; every point is then counted back). The consumer's CPU (user + system, all threads)
over the same span is given per 100,000 messages: on a shared machine it moves much less than
the wall time. Peak RSS is the consumer's high-water mark (VmHWM). Cases (``--case``):

- StockSense ingest, QoS 0 and QoS 1, single-reading canonical messages;
- StockSense ingest, QoS 0, 20 readings per message;
- a naive aiomqtt -> json -> line protocol -> httpx pipeline with the same batching
  (5,000 lines or the same flush interval, gzip), QoS 0 and QoS 1, as the baseline;
- latency: a paced 5,000 msg/s stream, publish time in ``ts``, p50/p99 publish -> durable.

``--repeat N`` runs every case N times (rotating) and prints each run and the medians;
``--profile DIR`` runs the StockSense consumers under cProfile and leaves one ``.prof`` per
case there (profiling slows them: figures of profiled runs are not comparable).

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx

from bench import proc_memory_mb
from core import topics
from core.influx import query_sync
from core.mqtt_settings import MqttSettings
from core.settings import InfluxSettings, Settings
from stocksense.devservices import LocalStack, find_binary, local_stack

CHUNK = 50_000
BATCH_LINES = 5000
FLUSH_S = 0.25


@dataclass
class Result:
    """One case's figures."""

    name: str
    messages: int
    readings: int
    landed: int
    seconds: float
    peak_rss_mb: float
    cpu_s: float = 0.0
    p50_ms: float | None = None
    p99_ms: float | None = None

    @property
    def cpu_per_100k(self) -> float:
        """Consumer CPU seconds per 100,000 messages."""
        return self.cpu_s * 100_000 / self.messages if self.messages else 0.0

    @property
    def msgs_per_s(self) -> float:
        """Messages per second over the measured span."""
        return self.messages / self.seconds if self.seconds else 0.0

    @property
    def readings_per_s(self) -> float:
        """Readings per second over the measured span."""
        return self.landed / self.seconds if self.seconds else 0.0


def _payload(i: int, readings: int, base_ms: int) -> str:
    if readings == 1:
        return json.dumps(
            {"ts": base_ms + i, "seq": i, "readings": [{"sensor": "t1", "celsius": 4.5 + i % 7}]}
        )
    cells = [
        {"cell": f"c{c}", "grams": 1000.0 + c + i % 11, "stable": True} for c in range(readings)
    ]
    return json.dumps({"ts": base_ms + i, "seq": i, "readings": cells})


def _flood(stack: LocalStack, topic: str, lines: list[str], qos: int) -> None:
    pub = find_binary("mosquitto_pub")
    for start in range(0, len(lines), CHUNK):
        chunk = "\n".join(lines[start : start + CHUNK]) + "\n"
        subprocess.run(
            [pub, "-p", str(stack.mqtt_port), "-t", topic, "-q", str(qos), "-l"],
            input=chunk.encode(),
            check=True,
        )


def _count(influx: InfluxSettings, measurement: str, field: str) -> int:
    try:
        series = query_sync(influx, f'SELECT count("{field}") FROM "{measurement}"')
    except Exception:  # noqa: BLE001 - the database may not exist yet
        return 0
    return int(series[0]["values"][0][1]) if series else 0


def _spawn_worker(args: list[str], profile: Path | None = None) -> subprocess.Popen[str]:
    python = [sys.executable]
    if profile is not None:
        python += ["-m", "cProfile", "-o", str(profile)]
    proc = subprocess.Popen(
        [*python, "-m", "bench.ingest", "worker", *args],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    ready = proc.stdout.readline().strip()
    if ready != "ready":
        raise RuntimeError(f"worker did not start: {ready!r}")
    return proc


def run_case(
    stack: LocalStack,
    *,
    name: str,
    impl: str,
    qos: int,
    messages: int,
    readings: int,
    profile: Path | None = None,
) -> Result:
    """Flood one consumer implementation and measure it."""
    db = f"bench_{impl}_{qos}_{readings}_{time.time_ns() // 1000}"
    kind: topics.Kind = "temp" if readings == 1 else "weight"
    # Each case publishes under its own site and its consumer subscribes to that site only:
    # a persistent session left by an earlier case must not queue (and slow) later floods.
    topic = topics.build(db, kind, "dev-1")
    expected = messages * readings
    proc = _spawn_worker(
        [
            "--impl", impl, "--qos", str(qos), "--db", db, "--expect", str(expected),
            "--mqtt-port", str(stack.mqtt_port), "--influx", stack.influx_url,
        ],
        profile if impl == "stocksense" else None,
    )  # fmt: skip
    base_ms = int(time.time() * 1000) - 3_600_000
    lines = [_payload(i, readings, base_ms) for i in range(messages)]
    # CLOCK_MONOTONIC is one clock for every process: the worker reports when its last point
    # was stored on it, and the span starts here, with the first publisher.
    published = time.monotonic()
    _flood(stack, topic, lines, qos)
    out, _ = proc.communicate(timeout=600)
    report: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    seconds = report["done_mono"] - published
    print(
        f"  {name}: {seconds:.2f}s, consumer CPU {report['cpu_s']:.2f}s,"
        f" peak RSS {report['peak_rss_kb'] / 1024:.0f} MB"
        + (f", {report['spooled']:,} lines spooled" if report.get("spooled") else ""),
        flush=True,
    )
    influx = InfluxSettings(url=stack.influx_url, database=db)
    landed = _count(influx, "temperature" if readings == 1 else "weight",
                    "celsius" if readings == 1 else "grams")  # fmt: skip
    return Result(
        name=name,
        messages=messages,
        readings=expected,
        landed=landed,
        seconds=seconds,
        peak_rss_mb=report["peak_rss_kb"] / 1024,
        cpu_s=report["cpu_s"],
    )


def run_latency(stack: LocalStack, *, rate: int, seconds: float) -> Result:
    """Paced stream with the publish time in ``ts``; percentiles of publish -> durable."""
    import paho.mqtt.client as mqtt  # noqa: PLC0415
    from paho.mqtt.enums import CallbackAPIVersion  # noqa: PLC0415

    db = f"bench_latency_{int(time.time())}"
    total = int(rate * seconds)
    proc = _spawn_worker(
        [
            "--impl", "stocksense", "--qos", "0", "--db", db, "--expect", str(total),
            "--mqtt-port", str(stack.mqtt_port), "--influx", stack.influx_url, "--latency",
        ]
    )  # fmt: skip
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-latency")
    client.connect("127.0.0.1", stack.mqtt_port)
    client.loop_start()
    topic = topics.build(db, "temp", "paced-1")
    started = time.monotonic()
    for i in range(total):
        payload = json.dumps(
            {
                "ts": time.time_ns() // 1_000_000,
                "seq": i,
                "readings": [{"sensor": "t1", "celsius": 4.0}],
            }
        )
        client.publish(topic, payload, qos=0)
        delay = started + (i + 1) / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    out, _ = proc.communicate(timeout=120)
    client.loop_stop()
    client.disconnect()
    report = json.loads(out.strip().splitlines()[-1])
    return Result(
        name=f"latency, paced {rate} msg/s (QoS 0)",
        messages=total,
        readings=total,
        landed=report["written"],
        seconds=report["seconds"],
        peak_rss_mb=report["peak_rss_kb"] / 1024,
        cpu_s=report["cpu_s"],
        p50_ms=report["p50_ms"],
        p99_ms=report["p99_ms"],
    )


# -- workers (run in their own process) ---------------------------------------------------


def _peak_rss_kb() -> int:
    return round(proc_memory_mb(os.getpid(), "VmHWM") * 1024)


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _stocksense_worker(args: argparse.Namespace) -> dict[str, Any]:
    from ingest.service import IngestService  # noqa: PLC0415

    data_dir = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    settings = Settings(
        data_dir=data_dir,
        mqtt=MqttSettings(
            port=args.mqtt_port, qos=args.qos, client_id=f"bench-{os.getpid()}", sites=(args.db,)
        ),
        influx=InfluxSettings(
            url=args.influx, database=args.db, batch_lines=BATCH_LINES, flush_interval_s=FLUSH_S
        ),
    )
    service = IngestService(settings)
    latencies: list[int] = []
    if args.latency:

        def observe(stamps: list[int]) -> None:
            now = time.time_ns() // 1_000_000
            latencies.extend(now - s for s in stamps)

        service.writer.on_durable = observe
    await service.start()
    cpu_start = _cpu_s()
    started = time.monotonic()
    print("ready", flush=True)
    written = "stocksense_ingest_points_written_total"
    # Polled every 10 ms, the end resolved to 10 ms: a hook in the writer (on_durable) would
    # add work per message to what is measured; a poll walks the registry about 1 % of the time.
    while service.metrics.value(written) < args.expect:  # noqa: ASYNC110 - see above
        await asyncio.sleep(0.01)
    done = time.monotonic()
    cpu = _cpu_s() - cpu_start
    await service.stop()
    report: dict[str, Any] = {
        "seconds": done - started,
        "done_mono": done,
        "cpu_s": cpu,
        "written": int(service.metrics.value(written)),
        # Lines that went through the on-disk spool (the buffer was full): extra work.
        "spooled": int(service.metrics.value("stocksense_ingest_points_spooled_total")),
        "peak_rss_kb": _peak_rss_kb(),
    }
    if latencies:
        latencies.sort()
        report["p50_ms"] = latencies[len(latencies) // 2]
        report["p99_ms"] = latencies[int(len(latencies) * 0.99)]
    return report


async def _naive_worker(args: argparse.Namespace) -> dict[str, Any]:
    """The baseline: aiomqtt, json.loads, f-string line protocol, httpx; same batching."""
    import aiomqtt  # noqa: PLC0415

    written = 0
    lines: list[str] = []
    async with (
        httpx.AsyncClient(timeout=30) as http,
        aiomqtt.Client("127.0.0.1", args.mqtt_port, identifier=f"naive-{os.getpid()}") as client,
    ):
        await http.post(f"{args.influx}/query", data={"q": f'CREATE DATABASE "{args.db}"'})

        async def flush() -> None:
            nonlocal lines, written
            if not lines:
                return
            batch, lines = lines, []
            body = gzip.compress(("\n".join(batch) + "\n").encode(), compresslevel=1)
            response = await http.post(
                f"{args.influx}/write",
                params={"db": args.db, "precision": "ns"},
                content=body,
                headers={"Content-Encoding": "gzip"},
            )
            response.raise_for_status()
            written += len(batch)

        await client.subscribe(f"{topics.ROOT}/{args.db}/+/+/+", qos=args.qos)
        cpu_start = _cpu_s()
        started = time.monotonic()
        print("ready", flush=True)
        last_flush = time.monotonic()
        async for message in client.messages:
            parts = str(message.topic).split("/")
            doc = json.loads(message.payload)
            for index, r in enumerate(doc["readings"]):
                ts = doc["ts"] * 1_000_000 + index
                if "celsius" in r:
                    lines.append(
                        f"temperature,device={parts[4]},sensor={r['sensor']},site={parts[2]} "
                        f"celsius={float(r['celsius'])},seq={doc['seq']}i {ts}"
                    )
                else:
                    lines.append(
                        f"weight,cell={r['cell']},device={parts[4]},site={parts[2]} "
                        f"grams={float(r['grams'])},seq={doc['seq']}i {ts}"
                    )
            if len(lines) >= BATCH_LINES or time.monotonic() - last_flush > FLUSH_S:
                await flush()
                last_flush = time.monotonic()
            if written + len(lines) >= args.expect:
                await flush()
                break
        done = time.monotonic()
        cpu = _cpu_s() - cpu_start
    return {
        "seconds": done - started,
        "done_mono": done,
        "cpu_s": cpu,
        "written": written,
        "peak_rss_kb": _peak_rss_kb(),
    }


def _worker(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--impl", choices=["stocksense", "naive"], required=True)
    parser.add_argument("--qos", type=int, default=0)
    parser.add_argument("--db", required=True)
    parser.add_argument("--expect", type=int, required=True)
    parser.add_argument("--mqtt-port", type=int, required=True)
    parser.add_argument("--influx", required=True)
    parser.add_argument("--latency", action="store_true")
    args = parser.parse_args(argv)
    run = _stocksense_worker if args.impl == "stocksense" else _naive_worker
    print(json.dumps(asyncio.run(run(args))), flush=True)


def _table(results: list[Result]) -> None:
    print(f"\n{'case':<44} {'msgs/s':>9} {'readings/s':>11} {'landed':>9} {'peak RSS':>9} "
          f"{'CPU/100k':>9} {'p50 ms':>7} {'p99 ms':>7}")  # fmt: skip
    for r in results:
        p50 = "" if r.p50_ms is None else f"{r.p50_ms:.0f}"
        p99 = "" if r.p99_ms is None else f"{r.p99_ms:.0f}"
        print(
            f"{r.name:<44} {r.msgs_per_s:>9,.0f} {r.readings_per_s:>11,.0f} "
            f"{r.landed:>9,} {r.peak_rss_mb:>7.1f}MB {r.cpu_per_100k:>8.2f}s {p50:>7} {p99:>7}"
        )


# name, implementation, QoS, readings per message (a tenth as many messages when above 1)
CASES: dict[str, tuple[str, str, int, int]] = {
    "qos0": ("stocksense QoS 0, 1 reading/msg", "stocksense", 0, 1),
    "naive0": ("naive aiomqtt+httpx QoS 0, 1 reading/msg", "naive", 0, 1),
    "qos1": ("stocksense QoS 1, 1 reading/msg", "stocksense", 1, 1),
    "naive1": ("naive aiomqtt+httpx QoS 1, 1 reading/msg", "naive", 1, 1),
    "qos0x20": ("stocksense QoS 0, 20 readings/msg", "stocksense", 0, 20),
}


def _median(runs: list[Result]) -> Result:
    """The median of each figure over the runs of one case (throughput from the median time)."""
    return replace(
        runs[0],
        landed=min(r.landed for r in runs),
        seconds=statistics.median(r.seconds for r in runs),
        peak_rss_mb=statistics.median(r.peak_rss_mb for r in runs),
        cpu_s=statistics.median(r.cpu_s for r in runs),
    )


def main() -> None:
    """Run the cases and print the tables and the ratios."""
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        _worker(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--quick", action="store_true", help="20,000 messages per case")
    parser.add_argument(
        "--case", action="append", choices=[*CASES, "latency"], help="only these (repeatable)"
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs of every case")
    parser.add_argument("--profile", type=Path, help="cProfile the StockSense consumers here")
    args = parser.parse_args()
    n = 20_000 if args.quick else args.messages
    chosen = args.case or [*CASES, "latency"]
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, {n:,} messages per case")
    runs: dict[str, list[Result]] = {case: [] for case in chosen}
    with local_stack() as stack:
        for attempt in range(args.repeat):
            # Rotated, so that no case always runs first (or right after the heaviest one).
            order = chosen[attempt % len(chosen) :] + chosen[: attempt % len(chosen)]
            for case in order:
                if case == "latency":
                    result = run_latency(stack, rate=5000, seconds=2 if args.quick else 5)
                else:
                    name, impl, qos, readings = CASES[case]
                    profile = None
                    if args.profile is not None:
                        profile = args.profile / f"{case}-{n}-{attempt}.prof"
                    result = run_case(
                        stack, name=name, impl=impl, qos=qos, readings=readings,
                        messages=n if readings == 1 else n // 10, profile=profile,
                    )  # fmt: skip
                runs[case].append(result)
    if args.repeat > 1:
        for attempt in range(args.repeat):
            print(f"\nrun {attempt + 1}", end="")
            _table([runs[case][attempt] for case in chosen])
        print("\nmedians", end="")
    results = {case: _median(runs[case]) for case in chosen}
    _table(list(results.values()))
    for qos in (0, 1):
        ours, naive = results.get(f"qos{qos}"), results.get(f"naive{qos}")
        if ours is not None and naive is not None:
            print(f"QoS {qos}: stocksense / naive = {ours.msgs_per_s / naive.msgs_per_s:.2f}x")
    lost = [r.name for rs in runs.values() for r in rs if r.landed != r.readings]
    print("every reading landed" if not lost else f"NOT ALL LANDED: {', '.join(lost)}")


if __name__ == "__main__":
    main()

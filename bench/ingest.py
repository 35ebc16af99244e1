"""Ingest benchmark: real Mosquitto + real InfluxDB, every point counted back.

    .venv/bin/python -m bench.ingest [--messages 200000] [--quick]

Each case runs the consumer in its own process (so its peak RSS is its own) and floods the
broker with ``mosquitto_pub -l`` in chunks of at most 50,000 lines (its message ids wrap at
65,535 with ``-q 1``). Throughput is readings landed in InfluxDB divided by the time from the
first message received to the last point written. Cases:

- StockSense ingest, QoS 0 and QoS 1, single-reading canonical messages;
- StockSense ingest, QoS 0, 20 readings per message;
- a naive aiomqtt -> json -> line protocol -> httpx pipeline with the same batching
  (5,000 lines or the same flush interval, gzip), QoS 0 and QoS 1, as the baseline;
- latency: a paced 5,000 msg/s stream, publish time in ``ts``, p50/p99 publish -> durable.

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from core import topics
from core.influx import query_sync
from core.settings import InfluxSettings, MqttSettings, Settings
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
    p50_ms: float | None = None
    p99_ms: float | None = None

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


def _spawn_worker(args: list[str]) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.ingest", "worker", *args],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    ready = proc.stdout.readline().strip()
    if ready != "ready":
        raise RuntimeError(f"worker did not start: {ready!r}")
    return proc


def run_case(
    stack: LocalStack, *, name: str, impl: str, qos: int, messages: int, readings: int
) -> Result:
    """Flood one consumer implementation and measure it."""
    db = f"bench_{impl}_{qos}_{readings}_{int(time.time())}"
    kind: topics.Kind = "temp" if readings == 1 else "weight"
    # Each case publishes under its own site and its consumer subscribes to that site only:
    # a persistent session left by an earlier case must not queue (and slow) later floods.
    topic = topics.build(db, kind, "dev-1")
    expected = messages * readings
    proc = _spawn_worker(
        [
            "--impl", impl, "--qos", str(qos), "--db", db, "--expect", str(expected),
            "--mqtt-port", str(stack.mqtt_port), "--influx", stack.influx_url,
        ]
    )  # fmt: skip
    base_ms = int(time.time() * 1000) - 3_600_000
    lines = [_payload(i, readings, base_ms) for i in range(messages)]
    _flood(stack, topic, lines, qos)
    out, _ = proc.communicate(timeout=600)
    report: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    if "cpu_s" in report:
        print(f"  {name}: consumer CPU {report['cpu_s']:.1f}s over {report['seconds']:.1f}s")
    influx = InfluxSettings(url=stack.influx_url, database=db)
    landed = _count(influx, "temperature" if readings == 1 else "weight",
                    "celsius" if readings == 1 else "grams")  # fmt: skip
    return Result(
        name=name,
        messages=messages,
        readings=expected,
        landed=landed,
        seconds=report["seconds"],
        peak_rss_mb=report["peak_rss_kb"] / 1024,
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
        p50_ms=report["p50_ms"],
        p99_ms=report["p99_ms"],
    )


# -- workers (run in their own process) ---------------------------------------------------


def _peak_rss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


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
    first: list[float] = []
    if args.latency:

        def observe(stamps: list[int]) -> None:
            now = time.time_ns() // 1_000_000
            latencies.extend(now - s for s in stamps)

        service.writer.on_durable = observe
    await service.start()
    print("ready", flush=True)
    cpu_start = _cpu_s()
    written = "stocksense_ingest_points_written_total"
    received = "stocksense_ingest_messages_received_total"
    while service.metrics.value(written) < args.expect:
        if not first and service.metrics.value(received) > 0:
            first.append(time.perf_counter())
        await asyncio.sleep(0.002)
    seconds = time.perf_counter() - first[0]
    cpu = _cpu_s() - cpu_start
    await service.stop()
    report: dict[str, Any] = {
        "seconds": seconds,
        "cpu_s": cpu,
        "written": int(service.metrics.value(written)),
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
    first = 0.0
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
        print("ready", flush=True)
        last_flush = time.monotonic()
        async for message in client.messages:
            if not first:
                first = time.perf_counter()
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
    return {
        "seconds": time.perf_counter() - first,
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
    print(f"\n{'case':<46} {'msgs/s':>9} {'readings/s':>11} {'landed':>9} {'peak RSS':>9} "
          f"{'p50 ms':>7} {'p99 ms':>7}")  # fmt: skip
    for r in results:
        p50 = "" if r.p50_ms is None else f"{r.p50_ms:.0f}"
        p99 = "" if r.p99_ms is None else f"{r.p99_ms:.0f}"
        print(
            f"{r.name:<46} {r.msgs_per_s:>9,.0f} {r.readings_per_s:>11,.0f} "
            f"{r.landed:>9,} {r.peak_rss_mb:>7.1f}MB {p50:>7} {p99:>7}"
        )


def main() -> None:
    """Run every case and print the table and the ratios."""
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        _worker(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--quick", action="store_true", help="20,000 messages per case")
    args = parser.parse_args()
    n = 20_000 if args.quick else args.messages
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, {n:,} messages per case")
    with local_stack() as stack:
        results = [
            run_case(stack, name="stocksense QoS 0, 1 reading/msg", impl="stocksense", qos=0,
                     messages=n, readings=1),
            run_case(stack, name="naive aiomqtt+httpx QoS 0, 1 reading/msg", impl="naive", qos=0,
                     messages=n, readings=1),
            run_case(stack, name="stocksense QoS 1, 1 reading/msg", impl="stocksense", qos=1,
                     messages=n, readings=1),
            run_case(stack, name="naive aiomqtt+httpx QoS 1, 1 reading/msg", impl="naive", qos=1,
                     messages=n, readings=1),
            run_case(stack, name="stocksense QoS 0, 20 readings/msg", impl="stocksense", qos=0,
                     messages=n // 10, readings=20),
            run_latency(stack, rate=5000, seconds=5 if not args.quick else 2),
        ]  # fmt: skip
    _table(results)
    for qos, (ours, naive) in enumerate(((results[0], results[1]), (results[2], results[3]))):
        print(f"QoS {qos}: stocksense / naive = {ours.msgs_per_s / naive.msgs_per_s:.2f}x")
    lost = [r.name for r in results if r.landed != r.readings]
    print("every reading landed" if not lost else f"NOT ALL LANDED: {', '.join(lost)}")


if __name__ == "__main__":
    main()

"""Alert latency under load: sensor publish to webhook receipt, with a 5,000 msg/s stream.

    .venv/bin/python -m bench.alerts [--rate 5000] [--seconds 20] [--probes-per-s 10]

Starts its own Mosquitto and InfluxDB, runs the whole pipeline (ingest, rules with the anomaly
processors, notifier with a webhook and the InfluxDB alert channel) and a background publisher
process streaming temperature readings of 200 in-band probes. Meanwhile, cold zones with a zero
duration allowance are pushed out of band one at a time; the time from publishing the reading
that raises the alert to the webhook receiving it is measured. Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import SecretStr

from core import topics
from core.mqtt_settings import MqttSettings
from core.settings import (
    AlertingSettings,
    ChannelSettings,
    InfluxSettings,
    NotifierSettings,
    OfflinePolicy,
    Settings,
)
from rules.seed import Seed, SensorRef, Site, TempBand, Zone
from simulators.robots import WebhookReceiver
from stocksense.devservices import local_stack
from stocksense.pipeline import Pipeline

SITE = "bench"
BACKGROUND_DEVICES = 200


def _client(port: int) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-{uuid.uuid4().hex[:8]}")
    client.max_queued_messages_set(0)
    client.max_inflight_messages_set(1000)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def stream(port: int, rate: int, seconds: float) -> None:
    """Publish ``rate`` readings per second for ``seconds`` (run in its own process)."""
    client = _client(port)
    slice_s = 0.01
    per_slice = max(1, int(rate * slice_s))
    start = time.perf_counter()
    sent = 0
    seq = 0
    while time.perf_counter() - start < seconds:
        now_ms = time.time_ns() // 1_000_000
        for _ in range(per_slice):
            device = f"bg-{seq % BACKGROUND_DEVICES}"
            payload = {
                "ts": now_ms,
                "seq": seq,
                "readings": [{"sensor": "t", "celsius": 5.0 + (seq % 7) * 0.1}],
            }
            client.publish(topics.build(SITE, "temp", device), json.dumps(payload), qos=0)
            seq += 1
        sent += per_slice
        # Pace by schedule, not by sleeping a fixed time: catch up when behind.
        ahead = start + sent / rate - time.perf_counter()
        if ahead > 0:
            time.sleep(ahead)
    elapsed = time.perf_counter() - start  # the publishing window, not the disconnect after it
    client.loop_stop()
    client.disconnect()
    print(json.dumps({"sent": sent, "seconds": elapsed}), flush=True)


def _seed(zones: int) -> Seed:
    return Seed(
        sites=[
            Site(
                id=SITE,
                zones=[
                    Zone(
                        id=f"cold-{i}",
                        temp_band=TempBand(low=2, high=8),
                        allowance_s=0,
                        sensors=[SensorRef(device=f"z{i}")],
                    )
                    for i in range(zones)
                ],
            )
        ]
    )


def _temp(client: mqtt.Client, device: str, celsius: float, seq: int) -> None:
    payload = {
        "ts": time.time_ns() // 1_000_000,
        "seq": seq,
        "readings": [{"sensor": "t", "celsius": celsius}],
    }
    client.publish(topics.build(SITE, "temp", device), json.dumps(payload), qos=1)


async def measure(settings: Settings, hook: WebhookReceiver, args: argparse.Namespace) -> None:
    """Run the pipeline, the stream and the probes; print the figures."""
    probes = int(args.seconds * args.probes_per_s)
    seed = _seed(probes)
    pipeline = Pipeline(settings, seed=seed, anomaly_sites={SITE}, tick_interval_s=1.0)
    await pipeline.start()
    client = _client(settings.mqtt.port)
    for i in range(probes):  # first out-of-band reading: the excursion starts, no alert yet
        _temp(client, f"z{i}", 9.0, 0)
    await asyncio.sleep(1.0)
    background = subprocess.Popen(  # noqa: ASYNC220 - a child process that runs on its own
        [
            sys.executable,
            "-m",
            "bench.alerts",
            "--stream",
            str(settings.mqtt.port),
            "--rate",
            str(args.rate),
            "--seconds",
            str(args.seconds + 2),
        ],
        stdout=subprocess.PIPE,
    )
    await asyncio.sleep(1.0)  # let the stream reach its rate
    published: dict[str, float] = {}
    processed_before = pipeline.rules.processed
    started = time.perf_counter()
    for i in range(probes):
        published[f"{SITE}/cold-{i}"] = time.time()
        _temp(client, f"z{i}", 9.5, 1)
        due = started + (i + 1) / args.probes_per_s
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
    await asyncio.to_thread(hook.wait_for, lambda log: len(log.accepted) >= probes, 10.0)
    elapsed = time.perf_counter() - started
    processed = pipeline.rules.processed - processed_before
    out, _ = background.communicate(timeout=30)
    client.loop_stop()
    client.disconnect()
    await pipeline.stop()
    latencies = []
    for received in hook.log.accepted:
        alert = received.body["alert"]
        if received.body["event"] == "raised" and alert["source"] in published:
            latencies.append((received.at - published[alert["source"]]) * 1000)
    stream_stats = json.loads(out.decode().strip().splitlines()[-1])
    ms = np.array(latencies)
    print(
        f"background stream: {stream_stats['sent']:,} msgs in {stream_stats['seconds']:.1f} s "
        f"= {stream_stats['sent'] / stream_stats['seconds']:,.0f} msg/s (QoS 0); rules evaluated "
        f"{processed / elapsed:,.0f} readings/s while probing, {pipeline.rules.dropped} dropped"
    )
    print(f"alerts: {len(latencies)} of {probes} probes reached the webhook")
    if len(ms):
        p50, p95, p99 = np.percentile(ms, [50, 95, 99])
        print(
            f"publish -> webhook latency ms: p50 {p50:.1f}  p95 {p95:.1f}  p99 {p99:.1f}  "
            f"max {ms.max():.1f}  (count {len(ms)})"
        )
        print(f"p99 < 300 ms: {'yes' if p99 < 300 else 'NO'}")


def main() -> None:
    """Parse arguments; run the benchmark (or, with ``--stream``, the background publisher)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stream", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=int, default=5000, help="background msg/s")
    parser.add_argument("--seconds", type=float, default=20.0, help="probing time")
    parser.add_argument("--probes-per-s", type=float, default=10.0)
    args = parser.parse_args()
    if args.stream is not None:
        stream(args.stream, args.rate, args.seconds)
        return
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp, local_stack(Path(tmp) / "services") as stack:
        hook = WebhookReceiver().start()
        settings = Settings(
            data_dir=Path(tmp) / "data",
            mqtt=MqttSettings(port=stack.mqtt_port, client_id=f"bench-{uuid.uuid4().hex[:6]}"),
            influx=InfluxSettings(url=stack.influx_url, database="bench_alerts"),
            notifier=NotifierSettings(
                channels=[ChannelSettings(name="hook", kind="webhook", url=SecretStr(hook.url))],
                poll_interval_s=0.05,
            ),
            alerting=AlertingSettings(offline=OfflinePolicy(min_timeout_s=3600)),
        )
        try:
            asyncio.run(measure(settings, hook, args))
        finally:
            hook.stop()


if __name__ == "__main__":
    main()

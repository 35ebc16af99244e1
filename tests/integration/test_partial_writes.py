"""Points InfluxDB refuses are never counted as written: each refused line is isolated,
reported with its reason and counted, the rest of its batch is stored (real InfluxDB 1.x)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from core import topics
from core.alerts import AlertStores
from core.influx import InfluxClient, query_sync, rows
from core.influx_writer import (
    STORE_REJECTING_TYPE,
    BatchWriter,
    Rejection,
    Spool,
    StoreRejectingAlarm,
    WriterMetrics,
)
from core.settings import InfluxSettings, Settings
from rules.lifecycle import AlertLifecycle
from rules.seed import Seed
from stocksense.devservices import LocalStack, influxdb
from stocksense.pipeline import Pipeline
from tests.alertutil import (
    connect,
    connections_closed,  # noqa: F401 - an autouse fixture
)
from tests.conftest import RECENT_T0, Publisher, until

pytestmark = pytest.mark.integration

T0_NS = RECENT_T0 * 1_000_000
MINUTE_MS = 60_000


class Harness:
    """A real writer on a real database, its metrics and what its rejection hook received."""

    def __init__(self, influx: InfluxSettings, spool_dir: Path) -> None:
        self.settings = influx
        self.client = InfluxClient(influx)
        self.metrics = WriterMetrics("test")
        self.rejected: list[Rejection] = []
        self.writer = BatchWriter(
            self.client, spool_dir, self.metrics, on_rejected=self.rejected.extend
        )

    async def write(self, *batches: list[str]) -> None:
        """Write each batch as one InfluxDB request, as the flush loop would."""
        for lines in batches:
            self.writer.add_nowait(lines)
            await self.writer.drain()

    def written(self) -> float:
        return self.metrics.registry.get_sample_value("test_points_written_total") or 0.0

    def rejected_count(self, reason: str) -> float:
        found = self.metrics.registry.get_sample_value(
            "test_points_rejected_total", {"reason": reason}
        )
        return found or 0.0

    def count(self, influxql: str) -> int:
        found = rows(query_sync(self.settings, influxql))
        return int(found[0]["count"]) if found else 0


def run(
    influx: InfluxSettings, tmp_path: Path, scenario: Callable[[Harness], Awaitable[None]]
) -> Harness:
    """Run ``scenario`` on a fresh harness in one event loop; the harness is returned to check."""
    made = Harness(influx, tmp_path / "spool" / "w")

    async def main() -> None:
        try:
            await made.client.ensure_database()
            await scenario(made)
        finally:
            await made.writer.close()
            await made.client.aclose()

    asyncio.run(main())
    return made


def temp(device: str, i: int, value: str, t0_ns: int = T0_NS) -> str:
    return f"temperature,device={device},sensor=t1,site=wh1 celsius={value},seq={i}i {t0_ns + i}"


def test_type_conflict_rejects_exactly_the_conflicting_point(
    settings: Settings, tmp_path: Path
) -> None:
    batch = [temp("p1", i, "3i" if i == 17 else f"{i}.5") for i in range(1, 51)]

    async def scenario(h: Harness) -> None:
        await h.write([temp("p1", 0, "0.5")])  # the field is a float from now on
        await h.write(batch)

    h = run(settings.influx, tmp_path, scenario)
    assert h.rejected == [
        Rejection(
            line=batch[16],
            reason="field_type_conflict",
            message='field type conflict: input field "celsius" on measurement "temperature"'
            " is type integer, already exists as type float",
            status=400,
        )
    ]
    assert h.count("SELECT count(celsius) FROM temperature") == 50
    assert h.written() == 50
    assert h.rejected_count("field_type_conflict") == 1
    assert h.writer.rejected_total == 1
    kept = [
        json.loads(ln)
        for path in (h.writer.spool.directory.parent / "rejected").glob("*.jsonl")
        for ln in path.read_text().splitlines()
    ]
    assert [k["line"] for k in kept] == [batch[16]]


@pytest.mark.parametrize("odd", [5, 0])
def test_two_types_of_a_new_field_in_one_batch(
    settings: Settings, tmp_path: Path, odd: int
) -> None:
    # InfluxDB 1.6 refuses the whole batch ("field type conflict", nothing stored) but keeps the
    # field with the type of the batch's first line: exactly the lines of the other type fail.
    batch = [temp("p2", i, "7i" if i == odd else f"{i}.25") for i in range(11)]

    async def scenario(h: Harness) -> None:
        await h.write(batch)

    h = run(settings.influx, tmp_path, scenario)
    odd_one_first = odd == 0
    refused = [ln for i, ln in enumerate(batch) if (i == odd) != odd_one_first]
    assert [r.line for r in h.rejected] == refused
    assert {r.reason for r in h.rejected} == {"field_type_conflict"}
    first, then = ("integer", "float") if odd_one_first else ("float", "integer")
    assert f"is type {then}, already exists as type {first}" in h.rejected[0].message
    assert h.count("SELECT count(celsius) FROM temperature") == 11 - len(refused)
    assert h.written() == 11 - len(refused)


def test_unparsable_lines_are_rejected_with_their_own_message(
    settings: Settings, tmp_path: Path
) -> None:
    bad_value = f"temperature,device=p3,sensor=t1,site=wh1 celsius= {T0_NS + 5}"
    good = [temp("p3", i, f"{i}.0") for i in range(10)]
    batch = [*good[:5], bad_value, *good[5:], "garbage"]
    hopeless = ["still garbage", "and more"]

    async def scenario(h: Harness) -> None:
        await h.write(batch, hopeless)

    h = run(settings.influx, tmp_path, scenario)
    by_line = {r.line: r for r in h.rejected}
    assert list(by_line) == [bad_value, "garbage", *hopeless]
    assert {r.reason for r in h.rejected} == {"unparsable"}
    assert by_line[bad_value].message == f"unable to parse '{bad_value}': missing field value"
    assert by_line["garbage"].message == "unable to parse 'garbage': missing fields"
    assert h.count("SELECT count(celsius) FROM temperature") == 10
    assert h.written() == 10
    assert h.rejected_count("unparsable") == 4


def test_points_beyond_retention_are_found_by_bisection(settings: Settings, tmp_path: Path) -> None:
    influx = settings.influx.model_copy(update={"database": f"short_{uuid.uuid4().hex[:8]}"})
    # The wall clock, not RECENT_T0's whole hour: late in an hour, that hour's start is already
    # close to leaving a 1 h policy, and InfluxDB drops points by shard, not by the exact hour.
    now_ns = time.time_ns()
    two_hours_ns = 2 * 3_600 * 10**9
    old = {3, 11, 12, 29}
    batch = [
        temp("p4", i, f"{i}.0", now_ns - two_hours_ns if i in old else now_ns) for i in range(40)
    ]

    async def scenario(h: Harness) -> None:
        await h.client.query(
            f'CREATE RETENTION POLICY "short" ON "{influx.database}" DURATION 1h'
            " REPLICATION 1 DEFAULT",
            method="POST",
        )
        await h.write(batch)

    h = run(influx, tmp_path, scenario)
    assert sorted(r.line for r in h.rejected) == sorted(batch[i] for i in old)
    assert {r.reason for r in h.rejected} == {"beyond_retention"}
    assert h.rejected[0].message == "points beyond retention policy"
    assert h.count("SELECT count(celsius) FROM temperature") == 36
    assert h.written() == 36
    assert h.rejected_count("beyond_retention") == 4


@pytest.fixture(scope="module")
def limited_influx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An InfluxDB whose tags take at most 10 values (the default is 100,000)."""
    service = influxdb(tmp_path_factory.mktemp("influx-limited"))
    conf = service.workdir / "influxdb.conf"
    text = conf.read_text()
    assert "[data]\n" in text
    conf.write_text(text.replace("[data]\n", "[data]\n  max-values-per-tag = 10\n", 1))
    service.start()
    try:
        yield f"http://127.0.0.1:{service.port}"
    finally:
        service.stop()


def weight(device: str, i: int) -> str:
    return f"weight,cell=c1,device={device},site=wh1 grams={100 + i}.0,seq={i}i {T0_NS + i}"


def test_readings_of_a_device_past_max_values_per_tag_are_rejected(
    limited_influx: str, tmp_path: Path
) -> None:
    influx = InfluxSettings(url=limited_influx, database=f"lim_{uuid.uuid4().hex[:8]}")
    known = [weight(f"d{d}", 0) for d in range(10)]  # ten devices: the tag is full
    late = [weight("late", i) for i in range(1, 11)]
    kept = [weight("d3", i) for i in range(1, 11)]
    several = [weight(f"n{n}", 20 + i) for n in range(3) for i in range(2)]
    mixed = [weight("d5", 30 + i) for i in range(3)]

    async def scenario(h: Harness) -> None:
        await h.write(known)
        await h.write(*([late[i], kept[i]] for i in range(10)))
        await h.write(several[:3] + mixed + several[3:])

    h = run(influx, tmp_path, scenario)
    assert [r.line for r in h.rejected[:10]] == late
    assert sorted(r.line for r in h.rejected[10:]) == sorted(several)
    assert {r.reason for r in h.rejected} == {"max_values_per_tag"}
    assert h.rejected[0].message == (
        'max-values-per-tag limit exceeded (10/10): measurement="weight" tag="device" value="late"'
    )
    assert h.count("SELECT count(grams) FROM weight WHERE device = 'd3'") == 11
    assert h.count("SELECT count(grams) FROM weight WHERE device = 'd5'") == 4
    assert h.count("SELECT count(grams) FROM weight WHERE device = 'late'") == 0
    assert h.count("SELECT count(grams) FROM weight") == 10 + 10 + 3
    assert h.written() == 23
    assert h.rejected_count("max_values_per_tag") == 16


def test_refused_lines_in_the_spool_are_isolated_on_replay(
    settings: Settings, tmp_path: Path
) -> None:
    batch = [temp("p5", i, '"warm"' if i in (4, 9) else f"{i}.0") for i in range(12)]

    # A batch spooled during an outage, replayed by the next run once InfluxDB answers.
    Spool(tmp_path / "spool" / "w").append(("\n".join(batch) + "\n").encode())

    async def scenario(h: Harness) -> None:
        await h.client.write(temp("p5", 100, "1.0").encode())
        h.writer.start()
        await until(lambda: len(h.writer.spool) == 0, what="the spool replayed")

    h = run(settings.influx, tmp_path, scenario)
    assert [r.line for r in h.rejected] == [batch[4], batch[9]]
    assert "is type string, already exists as type float" in h.rejected[0].message
    assert h.count("SELECT count(celsius) FROM temperature") == 11
    assert h.written() == 10
    assert len(h.writer.spool) == 0


def test_store_rejecting_alert_raises_and_clears_after_the_quiet_time(
    settings: Settings, tmp_path: Path
) -> None:
    store = AlertStores.over(connect(settings.database), [])
    t0 = RECENT_T0

    def active() -> bool:
        return store.state.active("influxdb/test", STORE_REJECTING_TYPE) is not None

    async def scenario(h: Harness) -> None:
        alarm = StoreRejectingAlarm(
            AlertLifecycle(store.state), {"influxdb/test": h.writer}, quiet_s=600
        )
        await h.write([temp("p6", 0, "1.0")])
        alarm.tick(t0)
        assert not active()

        await h.write([temp("p6", 1, "2i"), temp("p6", 2, "2.0")])
        alarm.tick(t0 + 1000)
        alert = store.state.active("influxdb/test", STORE_REJECTING_TYPE)
        assert alert is not None
        assert (alert.severity, alert.site, alert.value) == ("major", "system", 1.0)
        assert alert.details["reason"] == "field_type_conflict"
        assert alert.details["line"] == temp("p6", 1, "2i")

        alarm.tick(t0 + 1000 + 9 * MINUTE_MS)
        await h.write([temp("p6", 3, "3i")])  # refused again: the quiet time starts over
        alarm.tick(t0 + 1000 + 10 * MINUTE_MS)
        alarm.tick(t0 + 1000 + 19 * MINUTE_MS)
        assert active()
        alarm.tick(t0 + 1000 + 20 * MINUTE_MS)
        assert not active()
        [only] = store.state.list(type_=STORE_REJECTING_TYPE)
        assert (only.state, only.cleared_at) == ("cleared", t0 + 1000 + 20 * MINUTE_MS)

        await h.write([temp("p6", 4, "4i")])
        alarm.tick(t0 + 30 * MINUTE_MS)
        assert active()
        # After a restart, a new alarm clears what the old one left open, after a quiet time.
        successor = StoreRejectingAlarm(
            AlertLifecycle(store.state), {"influxdb/test": h.writer}, quiet_s=600
        )
        successor.tick(t0 + 31 * MINUTE_MS)
        successor.tick(t0 + 40 * MINUTE_MS)
        assert active()
        successor.tick(t0 + 41 * MINUTE_MS)
        assert not active()

    h = run(settings.influx, tmp_path, scenario)
    assert h.written() == 2
    assert h.writer.rejected_total == 3


class DeadLetters:
    """Collects dead-letter envelopes from the broker."""

    def __init__(self, port: int) -> None:
        self.messages: list[dict[str, Any]] = []
        subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"dl-{uuid.uuid4().hex}")
        self.client.on_message = lambda _c, _u, msg: self.messages.append(json.loads(msg.payload))
        self.client.on_subscribe = lambda *_a: subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(topics.DEADLETTER_TOPIC, qos=1)
        self.client.loop_start()
        assert subscribed.wait(10)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_refused_readings_are_dead_lettered_and_raise_store_rejecting(
    settings: Settings, publisher: Publisher, stack: LocalStack
) -> None:
    listener = DeadLetters(stack.mqtt_port)
    # Canonical topics of this test's own site only: retained status messages that other tests
    # leave on the session broker must not add to the counts.
    mqtt = settings.mqtt.model_copy(update={"qos": 1, "sites": ("rejects",)})
    cfg = settings.model_copy(update={"mqtt": mqtt})
    # Someone wrote celsius as an integer first: every float reading now conflicts.
    seed_line = f"temperature,device=probe-0,sensor=t1,site=rejects celsius=4i {T0_NS}"

    async def scenario() -> None:
        client = InfluxClient(cfg.influx)
        await client.ensure_database()
        await client.write(seed_line.encode())
        await client.aclose()
        pipeline = Pipeline(cfg, seed=Seed(), tick_interval_s=0.05)
        await pipeline.start()
        try:
            temps = {
                "ts": RECENT_T0,
                "seq": 1,
                "readings": [{"sensor": "t1", "celsius": 4.5}, {"sensor": "t2", "celsius": 5.5}],
            }
            cells = {
                "ts": RECENT_T0,
                "seq": 1,
                "readings": [
                    {"cell": f"c{c}", "grams": 100.0 * c, "stable": True} for c in range(3)
                ],
            }
            publisher.publish(topics.build("rejects", "temp", "probe-9"), json.dumps(temps))
            publisher.publish(topics.build("rejects", "weight", "shelf-9"), json.dumps(cells))
            publisher.flush()
            await until(lambda: len(listener.messages) >= 2, what="two dead letters")
            await until(
                lambda: pipeline.alerts.state.active("influxdb", STORE_REJECTING_TYPE) is not None,
                what="the store_rejecting alert",
            )
            await until(
                lambda: (
                    pipeline.ingest.metrics.value("stocksense_ingest_points_written_total") >= 3
                ),
                what="the weight readings written",
            )
        finally:
            await pipeline.stop()
        metrics = pipeline.ingest.metrics
        assert metrics.value("stocksense_ingest_points_written_total") == 3
        assert (
            metrics.value(
                "stocksense_ingest_points_rejected_total", {"reason": "field_type_conflict"}
            )
            == 2
        )
        assert (
            metrics.value("stocksense_ingest_deadlettered_total", {"reason": "store_rejected"}) == 2
        )

    try:
        asyncio.run(scenario())
    finally:
        listener.close()
    letters = listener.messages
    assert [m["reason"] for m in letters] == ["store_rejected", "store_rejected"]
    assert sorted(m["payload"].split(" ")[0] for m in letters) == [
        "temperature,device=probe-9,sensor=t1,site=rejects",
        "temperature,device=probe-9,sensor=t2,site=rejects",
    ]
    assert all(
        m["detail"] == 'field type conflict: input field "celsius" on measurement "temperature"'
        " is type float, already exists as type integer"
        for m in letters
    )
    assert all(m["topic"] == "" for m in letters)
    stored = rows(query_sync(cfg.influx, "SELECT celsius FROM temperature"))
    assert [r["celsius"] for r in stored] == [4]
    assert len(rows(query_sync(cfg.influx, "SELECT grams FROM weight"))) == 3


def test_pipeline_has_one_writer_and_replays_a_spool_left_by_the_old_inventory_writer(
    settings: Settings,
) -> None:
    # A data directory from the layout where the rules had a writer and spool of their own.
    legacy = settings.data_dir / "spool" / "inventory"
    legacy.mkdir(parents=True)
    line = f"stock,site=legacy,location=A1,sku=TEA qty=7 {T0_NS}"
    Spool(legacy).append(f"{line}\n".encode())
    cfg = settings.model_copy(
        update={"mqtt": settings.mqtt.model_copy(update={"sites": ("legacy",)})}
    )

    async def scenario() -> Pipeline:
        pipeline = Pipeline(cfg, seed=Seed(), tick_interval_s=3600)
        await pipeline.start()
        try:
            assert pipeline.ingest.writer is pipeline.writer
            assert pipeline.inventory.influx is pipeline.writer

            def replayed() -> bool:
                found = rows(query_sync(cfg.influx, "SELECT qty FROM stock WHERE site='legacy'"))
                return [r["qty"] for r in found] == [7]

            await until(replayed, what="the legacy spooled point in InfluxDB")
        finally:
            await pipeline.stop()
        return pipeline

    pipeline = asyncio.run(scenario())
    assert not legacy.exists()
    assert len(pipeline.writer.spool) == 0
    assert [p.name for p in (cfg.data_dir / "spool").iterdir()] == [cfg.mqtt.client_id]

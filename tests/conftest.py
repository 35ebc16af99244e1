"""Shared fixtures: a real Mosquitto and a real InfluxDB per test session, unique names per test.

The relational store is SQLite unless ``STOCKSENSE_TEST_DATABASE=postgresql``: then a private
PostgreSQL server runs for the session, every test asking for ``database`` (or ``settings``)
gets a fresh database of its own on it, and only those tests run.
"""

from __future__ import annotations

import itertools
import os
import time
import uuid
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import psycopg
import pytest

from core import db
from core.mqtt_settings import MqttSettings
from core.settings import InfluxSettings, Settings
from stocksense.devservices import (
    LocalStack,
    ManagedProcess,
    local_stack,
    postgres_url,
    postgresql,
    remove_postgresql,
)

ENGINE = db.Engine(os.environ.get("STOCKSENSE_TEST_DATABASE", "sqlite"))
TEMPLATE_DB = "stocksense_template"
_database_names = itertools.count(1)


def pytest_report_header() -> str:
    return f"relational store: {ENGINE}"


# Which tests opened the relational store when they last passed on SQLite (node id -> bool),
# kept in pytest's cache: a test that never opens it runs alike on both engines.
STORE_USE_KEY = "stocksense/store-use"
_store_use: dict[str, bool] = {}
_passed = pytest.StashKey[bool]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On PostgreSQL, run only the tests that use the relational store: those asking for a
    database, less those that passed on SQLite without ever opening one."""
    if ENGINE is not db.Engine.POSTGRESQL:
        return
    known: dict[str, bool] = config.cache.get(STORE_USE_KEY, {}) if config.cache else {}
    asking = [i for i in items if "database" in getattr(i, "fixturenames", ())]
    keep = [i for i in asking if known.get(i.nodeid, True)]
    config.hook.pytest_deselected(items=[i for i in items if i not in keep])
    if len(asking) > len(keep):
        skipped = len(asking) - len(keep)
        print(
            f"\nrelational store: {skipped} test{'s' if skipped != 1 else ''} asking for a"
            " database never opened one when passing on SQLite (pytest cache): not run here"
        )
    items[:] = keep


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    del call
    report = yield
    if report.when == "call":
        item.stash[_passed] = report.passed
    return report


def pytest_sessionfinish(session: pytest.Session) -> None:
    if _store_use and session.config.cache is not None:
        known = session.config.cache.get(STORE_USE_KEY, {})
        session.config.cache.set(STORE_USE_KEY, {**known, **_store_use})


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ManagedProcess]:
    """A private PostgreSQL server for the session, with a migrated template database."""
    server = postgresql(tmp_path_factory.mktemp("postgresql"), fsync=False).start()
    try:
        with psycopg.connect(postgres_url(server), autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {TEMPLATE_DB}")
        db.connect(postgres_url(server, TEMPLATE_DB)).close()
        yield server
    finally:
        server.stop()
        remove_postgresql(server)


@pytest.fixture
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[db.Target]:
    """The relational store of this test: the SQLite file ``settings`` uses, or a fresh
    PostgreSQL database cloned from the migrated template."""
    if ENGINE is db.Engine.SQLITE:
        yield db.Target.parse(tmp_path / "data" / "stocksense.db")
        opened = next(tmp_path.rglob("stocksense.db"), None) is not None
        if opened or request.node.stash.get(_passed, False):
            _store_use[request.node.nodeid] = opened
        return
    server: ManagedProcess = request.getfixturevalue("postgres")
    name = f"test_{next(_database_names)}"
    with psycopg.connect(postgres_url(server), autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB}")
    yield db.Target.parse(postgres_url(server, name))
    with psycopg.connect(postgres_url(server), autocommit=True) as admin:
        admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


HOUR_MS = 3_600_000
# A whole hour six hours back: device times in tests must be plausible to the ingest clock
# check (at most 5 minutes ahead), and scenarios span up to a few hours from here.
RECENT_T0 = (time.time_ns() // 1_000_000 // HOUR_MS - 6) * HOUR_MS


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """Mosquitto + InfluxDB 1.x started for this session on free loopback ports."""
    with local_stack(tmp_path_factory.mktemp("services")) as running:
        yield running


@pytest.fixture
def settings(stack: LocalStack, tmp_path: Path, database: db.Target) -> Iterator[Settings]:
    """Settings pointing at the session's services, with a database and client id of its own."""
    unique = uuid.uuid4().hex[:10]
    client_id = f"ingest-{unique}"
    yield Settings(
        data_dir=tmp_path / "data",
        database_url=database.url if database.engine is db.Engine.POSTGRESQL else None,
        mqtt=MqttSettings(port=stack.mqtt_port, client_id=client_id),
        influx=InfluxSettings(
            url=stack.influx_url, database=f"test_{unique}", flush_interval_s=0.1
        ),
    )
    end_session(stack.mqtt_port, client_id)


def end_session(port: int, client_id: str) -> None:
    """Have the broker drop the persistent session of ``client_id``.

    A worker's session outlives the test: left in place, it queues every later test's
    messages, and the session broker's work grows with each test.
    """
    import paho.mqtt.client as mqtt  # noqa: PLC0415
    from paho.mqtt.enums import CallbackAPIVersion  # noqa: PLC0415

    # A clean start ends the stored session, and expiry 0 keeps none after this one.
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", port, clean_start=True)
    client.loop_start()
    try:
        wait_for(client.is_connected, timeout=10, what=f"a clean session for {client_id}")
    finally:
        client.disconnect()
        client.loop_stop()


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    """Poll ``predicate`` until true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


async def until(
    predicate: Callable[[], bool], timeout: float = 20.0, what: str = "condition"
) -> None:
    """Async twin of :func:`wait_for`, for tests that drive the pipeline's event loop."""
    import asyncio  # noqa: PLC0415

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.02)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


class Publisher:
    """A paho-mqtt publisher that waits until the broker acknowledged every QoS 1 message."""

    def __init__(self, port: int) -> None:
        import paho.mqtt.client as mqtt  # noqa: PLC0415
        from paho.mqtt.enums import CallbackAPIVersion  # noqa: PLC0415

        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}"
        )
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self._infos: list[object] = []

    def publish(
        self, topic: str, payload: bytes | str, *, qos: int = 1, retain: bool = False
    ) -> None:
        """Publish and remember the message for :meth:`flush`."""
        self._infos.append(self.client.publish(topic, payload, qos=qos, retain=retain))

    def flush(self, timeout: float = 30.0) -> None:
        """Block until every published message has been acknowledged by the broker."""
        for info in self._infos:
            info.wait_for_publish(timeout)  # type: ignore[attr-defined]
        self._infos.clear()

    def close(self) -> None:
        """Disconnect."""
        self.flush()
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def publisher(stack: LocalStack) -> Iterator[Publisher]:
    """A connected publisher for the session broker."""
    pub = Publisher(stack.mqtt_port)
    yield pub
    pub.close()


class FakeClock:
    """Simulated seconds since the epoch, shared by the code under test and the receivers."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self.now += seconds

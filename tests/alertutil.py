"""One way for tests to hand the lifecycle a condition (only what a test cares about is named),
connections to a test's database that are closed when it ends, and a notifier process to
deliver it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core import db
from core.alerts import AlertCondition, Severity
from core.settings import Settings

_opened: list[db.Connection] = []


def connect(database: db.Target) -> db.Connection:
    """``db.connect(database)``, closed when the test ends (a test module imports
    :func:`connections_closed`): a PostgreSQL connection dropped open is a ResourceWarning,
    which fails the test."""
    conn = db.connect(database)
    _opened.append(conn)
    return conn


@pytest.fixture(autouse=True)
def connections_closed() -> Iterator[None]:
    """Close the connections the test opened with :func:`connect`."""
    yield
    while _opened:
        _opened.pop().close()


def condition(
    source: str,
    *,
    at_ms: int,
    type: str = "sensor_offline",  # noqa: A002 - the field's own name
    site: str = "wh1",
    severity: Severity = "major",
    title: str = "t",
    message: str = "m",
    zone: str | None = None,
    value: float | None = None,
    threshold: float | None = None,
    details: dict[str, Any] | None = None,
) -> AlertCondition:
    """An :class:`AlertCondition` with placeholder texts unless the test names them."""
    return AlertCondition(
        source=source,
        type=type,
        site=site,
        zone=zone,
        severity=severity,
        title=title,
        message=message,
        value=value,
        threshold=threshold,
        details=details or {},
        at_ms=at_ms,
    )


def notify_process(
    settings: Settings, hook_url: str, log: Path, *, client_id: str | None = None
) -> subprocess.Popen[bytes]:
    """`stocksense notify` over ``settings``' data dir, as a user starts it, delivering to one
    webhook channel ``hook``; ``client_id`` names its worker (its claims on the outbox)."""
    channels = [{"name": "hook", "kind": "webhook", "url": hook_url}]
    env = {
        **os.environ,
        "STOCKSENSE_DATA_DIR": str(settings.data_dir),
        "STOCKSENSE_NOTIFIER__CHANNELS": json.dumps(channels),
        "STOCKSENSE_NOTIFIER__POLL_INTERVAL_S": "0.05",
        "STOCKSENSE_INFLUX__URL": "http://127.0.0.1:9",
    }
    if settings.database_url is not None:
        env["STOCKSENSE_DATABASE_URL"] = settings.database.url
    if client_id is not None:
        env["STOCKSENSE_MQTT__CLIENT_ID"] = client_id
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "stocksense.cli", "notify"], env=env, stdout=out, stderr=out
        )

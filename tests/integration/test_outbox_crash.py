"""The notifier killed with SIGKILL mid-delivery and restarted: every alert once, none twice.

The receiver holds its answer to the 10th message, so the kill lands exactly in the window
between the receiver accepting a message and the notifier marking its row sent. The restarted
notifier sends that row again with the same idempotency key; the receiver drops the repeat.
"""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Any

import pytest

from core import db
from core.alerts import AlertStores
from core.settings import Settings
from rules.lifecycle import AlertLifecycle
from simulators.robots import Received, WebhookReceiver
from tests.alertutil import (
    condition,
    connect,
    connections_closed,  # noqa: F401 - an autouse fixture
    notify_process,
)
from tests.conftest import RECENT_T0, wait_for

pytestmark = pytest.mark.integration

TOTAL = 50
HOLD_AT = 10


class DedupingReceiver(WebhookReceiver):
    """A webhook receiver that honours ``Idempotency-Key`` and stalls on one message."""

    def __init__(self, hold_at: int) -> None:
        super().__init__()
        self.hold_at = hold_at
        self.holding = threading.Event()
        self.release = threading.Event()
        self.repeats: list[str] = []
        self.keys: list[str] = []

    def handle(self, path: str, query: dict[str, str], raw: bytes) -> tuple[int, dict[str, Any]]:
        """Accept each key once; answer a repeat with success without recording it again."""
        del query
        if path != "/hook":
            return 404, {"error": "not found"}
        body = json.loads(raw)
        key = str(body["id"])
        if key in self.keys:
            self.repeats.append(key)
            return 200, {"ok": True, "duplicate": True}
        self.keys.append(key)
        self.log.accepted.append(Received(at=self.clock(), body=body))
        if len(self.keys) == self.hold_at:
            # Accepted, but the answer never reaches the notifier: it is killed meanwhile.
            self.holding.set()
            self.release.wait(timeout=60)
        return 200, {"ok": True}


def test_notifier_sigkill_mid_delivery_delivers_all_50_once(
    tmp_path: Path, database: db.Target
) -> None:
    settings = Settings(data_dir=tmp_path / "data", database_url=database.url)
    store = AlertStores.over(connect(database), ["hook"])
    ids = []
    lifecycle = AlertLifecycle(store.state)
    for i in range(TOTAL):
        alert = lifecycle.report(
            condition(f"wh1/temp/probe-{i}", at_ms=RECENT_T0 + i, title=f"probe-{i} offline")
        )
        assert alert is not None
        ids.append(alert.id)
    assert len(store.outbox.outbox(status="pending")) == TOTAL
    hook = DedupingReceiver(hold_at=HOLD_AT).start()
    log = tmp_path / "notifier.log"
    worker = notify_process(settings, hook.url, log)
    try:
        wait_for(hook.holding.is_set, timeout=30, what="the notifier mid-stream")
        wait_for(
            lambda: len(store.outbox.outbox(status="sending")) == 1,
            what="the in-flight row 'sending'",
        )
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
        hook.release.set()
        statuses = [o.status for o in store.outbox.outbox()]
        assert statuses.count("sent") == HOLD_AT - 1
        assert statuses.count("sending") == 1
        assert statuses.count("pending") == TOTAL - HOLD_AT
        worker = notify_process(settings, hook.url, log)
        wait_for(
            lambda: len(store.outbox.outbox(status="sent")) == TOTAL,
            timeout=30,
            what="every row sent",
        )
    finally:
        hook.release.set()
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=10)
        hook.stop()
    delivered = [r.body["alert"]["id"] for r in hook.log.accepted]
    assert sorted(delivered) == ids
    assert len(set(hook.keys)) == TOTAL
    # The one row in flight at the kill was sent again and dropped by its key: 0 duplicates.
    assert len(hook.repeats) == 1
    assert hook.repeats[0] == hook.keys[HOLD_AT - 1]
    assert "interrupted" in log.read_text()
    assert [o.last_error for o in store.outbox.outbox() if o.last_error] == [
        "interrupted while sending; sent again"
    ]

"""Two `stocksense notify` processes on one database: every alert reaches the webhook once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from core import db
from core.alerts import AlertStores
from core.settings import Settings
from rules.lifecycle import AlertLifecycle
from simulators.robots import Received, WebhookReceiver
from tests.alertutil import condition
from tests.conftest import RECENT_T0, wait_for

pytestmark = pytest.mark.integration

TOTAL = 120


class CountingReceiver(WebhookReceiver):
    """A webhook receiver that records every POST, repeats included."""

    def handle(self, path: str, query: dict[str, str], raw: bytes) -> tuple[int, dict[str, Any]]:
        """Accept everything on /hook."""
        del query
        if path != "/hook":
            return 404, {"error": "not found"}
        self.log.accepted.append(Received(at=self.clock(), body=json.loads(raw)))
        return 200, {"ok": True}


def _notifier(
    settings: Settings, hook: WebhookReceiver, name: str, log: Path
) -> subprocess.Popen[bytes]:
    channels = [{"name": "hook", "kind": "webhook", "url": hook.url}]
    env = {
        **os.environ,
        "STOCKSENSE_DATA_DIR": str(settings.data_dir),
        "STOCKSENSE_MQTT__CLIENT_ID": name,
        "STOCKSENSE_NOTIFIER__CHANNELS": json.dumps(channels),
        "STOCKSENSE_NOTIFIER__POLL_INTERVAL_S": "0.05",
        "STOCKSENSE_INFLUX__URL": "http://127.0.0.1:9",
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "stocksense.cli", "notify"], env=env, stdout=out, stderr=out
        )


def test_two_notifiers_on_one_database_send_each_row_once(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    store = AlertStores.over(db.connect(settings.sqlite_path), ["hook"])
    lifecycle = AlertLifecycle(store.state)
    ids = []
    for i in range(TOTAL):
        alert = lifecycle.report(condition(f"wh1/temp/probe-{i}", at_ms=RECENT_T0 + i))
        assert alert is not None
        ids.append(alert.id)
    # Both start on a full outbox: each sees every row due at once.
    hook = CountingReceiver().start()
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    workers = [
        _notifier(settings, hook, "notifier-a", logs[0]),
        _notifier(settings, hook, "notifier-b", logs[1]),
    ]
    try:
        wait_for(
            lambda: len(store.outbox.outbox(status="sent")) == TOTAL,
            timeout=60,
            what="every row sent",
        )
        more = lifecycle.report(condition("wh1/temp/late", at_ms=RECENT_T0 + TOTAL))
        assert more is not None
        ids.append(more.id)
        wait_for(lambda: len(hook.log.accepted) >= TOTAL + 1, timeout=30, what="one more")
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=15)
        hook.stop()
    delivered = sorted(r.body["alert"]["id"] for r in hook.log.accepted)
    assert delivered == ids  # each once: none lost, none twice
    statuses = {o.status for o in store.outbox.outbox()}
    assert statuses == {"sent"}
    texts = [log.read_text() for log in logs]
    assert sum(t.count("delivered to hook") for t in texts) == TOTAL + 1

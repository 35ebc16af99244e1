"""Two `stocksense notify` processes on one database: every alert reaches the webhook once."""

from __future__ import annotations

from pathlib import Path

import pytest

from core import db
from core.alerts import AlertStores
from core.settings import Settings
from rules.lifecycle import AlertLifecycle
from simulators.robots import WebhookReceiver
from tests.alertutil import (
    condition,
    connect,
    connections_closed,  # noqa: F401 - an autouse fixture
    notify_process,
)
from tests.conftest import RECENT_T0, wait_for

pytestmark = pytest.mark.integration

TOTAL = 120


def test_two_notifiers_on_one_database_send_each_row_once(
    tmp_path: Path, database: db.Target
) -> None:
    settings = Settings(data_dir=tmp_path / "data", database_url=database.url)
    store = AlertStores.over(connect(database), ["hook"])
    lifecycle = AlertLifecycle(store.state)
    ids = []
    for i in range(TOTAL):
        alert = lifecycle.report(condition(f"wh1/temp/probe-{i}", at_ms=RECENT_T0 + i))
        assert alert is not None
        ids.append(alert.id)
    # Both start on a full outbox: each sees every row due at once.
    hook = WebhookReceiver().start()  # records every POST, repeats included
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    workers = [
        notify_process(settings, hook.url, logs[0], client_id="notifier-a"),
        notify_process(settings, hook.url, logs[1], client_id="notifier-b"),
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
        # The robot has the last message before its sender marks the row sent.
        wait_for(
            lambda: {o.status for o in store.outbox.outbox()} == {"sent"},
            timeout=30,
            what="every row marked sent",
        )
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

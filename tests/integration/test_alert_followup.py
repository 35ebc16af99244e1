"""An alert followed up through what runs: a cold-chain excursion on the real broker, ingest,
rules and notifier to the local DingTalk (zh) and WeCom (en) robots and webhooks, and the API.

While the excursion lasts the alert's latest value, peak and duration move; the robots get a
reminder with them; the route gives it an owner, a person reassigns it (a viewer may not), the
acknowledge and resolve deadlines escalate to on-call, a person resolves it with a note and a
cause (both required), the robots get the resolved notice, and the CSV export carries it all.

The rules run on a simulated clock (``rules.tick(now_ms)``); the API stamps its changes with
the wall clock.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from api.app import create_app
from api.routes.alerts import EXPORT_COLUMNS
from core import db, topics
from core.alerts import Alert
from core.audit import AuditLog
from core.settings import (
    AlertingSettings,
    ChannelSettings,
    DuePolicy,
    NotifierSettings,
    OfflinePolicy,
    RouteSettings,
    Settings,
)
from rules.seed import Seed, SensorRef, Site, TempBand, Zone
from simulators.robots import DingTalkRobot, WebhookReceiver, WeComRobot
from stocksense.pipeline import Pipeline
from tests.authutil import bearer
from tests.conftest import RECENT_T0, Publisher, until

pytestmark = pytest.mark.integration

T0 = RECENT_T0
SITE = "fu-cold"
SECRET = "SECfollowup"
# Out of band from T0+10 s; past the 30 s allowance at T0+50 s (raised at 9.5 °C); peak 12.1 °C
# at T0+150 s; the last reading, 11.4 °C, at T0+300 s.
READINGS = [5.0, 9.0, 9.2, 9.3, 9.4, 9.5, 10.0, 10.8, 11.5, 11.9, 12.0, 12.1]
READINGS += [11.9, 11.8, 11.7, 11.6, 11.6, 11.5, 11.5, 11.5, 11.5, 11.4, 11.4, 11.4]
READINGS += [11.4, 11.4, 11.4, 11.4, 11.4, 11.4, 11.4]
RAISED_AT = T0 + 50_000
LAST_AT = T0 + 300_000


def _seed() -> Seed:
    zone = Zone(
        id="cold",
        name="Cold room",
        temp_band=TempBand(low=2, high=8),
        allowance_s=30,
        sensors=[SensorRef(device="p1")],
    )
    return Seed(sites=[Site(id=SITE, zones=[zone])])


def _events(receiver: WebhookReceiver) -> list[tuple[str, int]]:
    return [(r.body["event"], r.body["alert"]["id"]) for r in receiver.log.accepted]


def test_an_excursion_followed_up_to_its_resolution(
    settings: Settings, publisher: Publisher
) -> None:
    ding = DingTalkRobot(access_token="tok-fu", secret=SECRET).start()
    wecom = WeComRobot(key="key-fu").start()
    hook = WebhookReceiver().start()
    oncall = WebhookReceiver().start()
    channels = [
        ChannelSettings(
            name="ding", kind="dingtalk", url=SecretStr(ding.url), secret=SecretStr(SECRET)
        ),
        ChannelSettings(name="wecom", kind="wecom", url=SecretStr(wecom.url), language="en"),
        ChannelSettings(name="hook", kind="webhook", url=SecretStr(hook.url)),
        ChannelSettings(name="oncall", kind="webhook", url=SecretStr(oncall.url)),
    ]
    alerting = AlertingSettings(
        routes=[
            RouteSettings(
                sites=(SITE,),
                channels=("ding", "wecom", "hook"),
                owner="zhangwei",
                escalate_to=("oncall",),
                remind_every_s=600,
            )
        ],
        due={"critical": DuePolicy(ack_s=900, resolve_s=3600)},
        offline=OfflinePolicy(min_timeout_s=86_400),
    )
    cfg = settings.model_copy(
        update={
            "notifier": NotifierSettings(channels=channels, poll_interval_s=0.05),
            "alerting": alerting,
            "mqtt": settings.mqtt.model_copy(update={"sites": (SITE,)}),
        }
    )
    viewer = bearer(cfg, "viewer", "zhao")
    operator = bearer(cfg, "operator", "li.wei")
    admin = bearer(cfg, "admin", "wang")

    async def scenario() -> None:
        pipeline = Pipeline(
            cfg, seed=_seed(), anomaly_sites={SITE}, tick_interval_s=3600, clock=lambda: T0 / 1000
        )
        await pipeline.start()
        api = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(cfg)), base_url="http://api"
        )
        try:
            await _follow_up(pipeline, api)
        finally:
            await api.aclose()
            await pipeline.stop()

    async def settle(pipeline: Pipeline, published: int) -> None:
        publisher.flush()
        await until(lambda: pipeline.rules.processed >= published, what="rules caught up")
        await pipeline.notifier.deliver_due()

    def alert_of(pipeline: Pipeline) -> Alert:
        [alert] = pipeline.alerts.state.list(site=SITE)
        return alert

    async def _follow_up(pipeline: Pipeline, api: httpx.AsyncClient) -> None:
        # -- the excursion, kept current while it lasts --------------------------------------
        for i, celsius in enumerate(READINGS[:6]):
            _publish(publisher, i, celsius)
        await settle(pipeline, 6)
        raised = alert_of(pipeline)
        assert (raised.raised_at, raised.value, raised.peak_value) == (RAISED_AT, 9.5, 9.5)
        assert raised.owner == "zhangwei"  # the route's owner
        assert (raised.ack_due_at, raised.resolve_due_at) == (
            RAISED_AT + 900_000,
            RAISED_AT + 3_600_000,
        )
        await until(lambda: len(ding.log.accepted) == 1, what="the alert at DingTalk")
        for i, celsius in enumerate(READINGS[6:], start=6):
            _publish(publisher, i, celsius)
        await settle(pipeline, len(READINGS))
        current = alert_of(pipeline)
        assert (current.value, current.peak_value, current.last_seen_at) == (11.4, 12.1, LAST_AT)
        assert current.details["duration_s"] == 290.0  # out since T0+10 s
        assert current.raised_at == RAISED_AT

        # -- a reminder at exactly the interval, in both languages ---------------------------
        pipeline.rules.tick(RAISED_AT + 599_999)
        await pipeline.notifier.deliver_due()
        assert [e for e, _ in _events(hook)] == ["raised"]
        pipeline.rules.tick(RAISED_AT + 600_000)
        await until(lambda: len(ding.log.accepted) == 2, what="the reminder at DingTalk")
        await until(lambda: len(wecom.log.accepted) == 2, what="the reminder at WeCom")
        await until(lambda: len(hook.log.accepted) == 2, what="the reminder at the webhook")
        zh, en = ding.log.texts()[1], wecom.log.texts()[1]
        # 290 s at the last sighting (T0+300 s) + 350 s to the reminder (T0+650 s)
        assert "温度 11.4 °C（峰值 12.1 °C），高于上限 8 °C，已持续 10分40秒" in zh
        assert ding.log.accepted[1].body["markdown"]["title"].startswith("[提醒][严重]")
        assert "- **负责人**: zhangwei" in zh
        assert "Reads 11.4 °C (peak 12.1 °C), above the upper limit of 8 °C, for 10m 40s" in en
        assert en.startswith("### [REMINDER][CRITICAL] Cold-chain excursion")
        assert "- **Owner**: zhangwei" in en
        assert hook.log.accepted[1].body["event"] == "reminder"
        assert hook.log.accepted[1].body["alert"]["peak_value"] == 12.1
        assert (ding.log.errors, wecom.log.errors) == ([], [])

        # -- the acknowledge deadline escalates to on-call, exactly at its time -------------
        pipeline.rules.tick(RAISED_AT + 899_999)
        await pipeline.notifier.deliver_due()
        assert oncall.log.accepted == []
        pipeline.rules.tick(RAISED_AT + 900_000)
        await until(lambda: len(oncall.log.accepted) == 1, what="the escalation")
        assert _events(oncall) == [("escalated", raised.id)]
        assert oncall.log.accepted[0].body["alert"]["ack_overdue_at"] == RAISED_AT + 900_000

        # -- reassigned through the API: a viewer may not ------------------------------------
        url = f"/alerts/{raised.id}"
        refused = await api.post(f"{url}/assign", json={"owner": "chen"}, headers=viewer)
        assert refused.status_code == 403
        assert "alerts.assign" in refused.json()["detail"]
        moved = await api.post(f"{url}/assign", json={"owner": "chen"}, headers=operator)
        assert moved.status_code == 200, moved.text
        assert moved.json()["owner"] == "chen"
        acked = await api.post(f"{url}/ack", json={}, headers=operator)
        assert acked.status_code == 200, acked.text

        # -- the resolve deadline escalates again; acknowledged, no more reminders ----------
        pipeline.rules.tick(RAISED_AT + 3_600_000)
        await until(lambda: len(oncall.log.accepted) == 2, what="the second escalation")
        await pipeline.notifier.deliver_due()
        assert [e for e, _ in _events(hook)] == ["raised", "reminder"]

        # -- resolved by a person: note and cause required ----------------------------------
        for body, missing in (({"note": "compressor relay replaced"}, "cause"),
                              ({"cause": "equipment"}, "note")):  # fmt: skip
            answer = await api.post(f"{url}/resolve", json=body, headers=operator)
            assert answer.status_code == 422
            [problem] = answer.json()["detail"]
            assert (problem["loc"], problem["msg"]) == (["body", missing], "Field required")
        wrong = await api.post(
            f"{url}/resolve", json={"note": "x", "cause": "weather"}, headers=operator
        )
        assert wrong.status_code == 422
        assert (
            "'equipment', 'process', 'supplier', 'data', 'false_alarm' or 'other'"
            in (wrong.json()["detail"][0]["msg"])
        )
        assert (
            await api.post(f"{url}/resolve", json={"note": "n", "cause": "other"}, headers=viewer)
        ).status_code == 403
        done = await api.post(
            f"{url}/resolve",
            json={"note": "compressor relay replaced", "cause": "equipment"},
            headers=operator,
        )
        assert done.status_code == 200, done.text
        resolved = done.json()
        assert (resolved["state"], resolved["resolved_by"], resolved["cause"]) == (
            "cleared",
            "li.wei",
            "equipment",
        )
        assert resolved["resolution_note"] == "compressor relay replaced"
        again = await api.post(
            f"{url}/resolve", json={"note": "again", "cause": "other"}, headers=operator
        )
        assert again.status_code == 409
        await until(lambda: len(ding.log.accepted) == 3, what="the resolved notice at DingTalk")
        await until(lambda: len(wecom.log.accepted) == 3, what="the resolved notice at WeCom")
        await until(lambda: len(hook.log.accepted) == 3, what="the resolved notice at the hook")
        zh, en = ding.log.texts()[2], wecom.log.texts()[2]
        assert ding.log.accepted[2].body["markdown"]["title"].startswith("[已恢复][严重]")
        # A dotted name is kept from becoming a link by a word joiner after the dot.
        for line in ("- **处理人**: li.\u2060wei", "- **原因**: 设备"):
            assert line in zh.splitlines(), zh
        assert "- **Cause**: equipment" in en.splitlines()
        assert "- **Resolution**: compressor relay replaced" in en.splitlines()
        # The resolved notice goes to every channel told it was active, on-call included.
        await until(lambda: len(oncall.log.accepted) == 3, what="the resolved notice on call")
        assert [e for e, _ in _events(oncall)] == ["escalated", "escalated", "cleared"]
        stored = alert_of(pipeline)
        assert stored.acked_at is not None
        assert stored.cleared_at is not None
        assert stored.time_to_ack_s == (stored.acked_at - stored.raised_at) / 1000
        assert stored.time_to_resolve_s == (stored.cleared_at - stored.raised_at) / 1000

        # -- audited ------------------------------------------------------------------------
        conn = db.connect(cfg.database)
        try:
            entries = [e for e in AuditLog(conn).entries() if e.target == f"alert {raised.id}"]
        finally:
            conn.close()
        assert [(e.actor, e.action) for e in entries] == [
            ("li.wei", "alert.assign"),
            ("li.wei", "alert.ack"),
            ("li.wei", "alert.resolve"),
        ]
        assign = entries[0]
        assert (assign.before["owner"], assign.after["owner"]) == ("zhangwei", "chen")
        assert (assign.role, assign.site) == ("operator", SITE)

        # -- exported -----------------------------------------------------------------------
        export = await api.get(
            "/alerts/export", params={"format": "csv", "site": SITE}, headers=admin
        )
        assert export.status_code == 200
        assert export.headers["content-type"] == "text/csv; charset=utf-8"
        rows = list(csv.DictReader(io.StringIO(export.text)))
        assert tuple(rows[0]) == EXPORT_COLUMNS
        [row] = rows
        expected: dict[str, Any] = {
            "id": str(raised.id),
            "site": SITE,
            "zone": "cold",
            "type": "cold_chain_excursion",
            "severity": "critical",
            "state": "cleared",
            "owner": "chen",
            "acked_by": "li.wei",
            "time_to_ack_s": str(stored.time_to_ack_s),
            "ack_overdue": "true",
            "time_to_resolve_s": str(stored.time_to_resolve_s),
            "resolve_overdue": "true",
            "resolved_by": "li.wei",
            "cause": "equipment",
            "resolution_note": "compressor relay replaced",
            "value": "11.4",
            "peak_value": "12.1",
            "threshold": "8.0",
            "reminders": "1",
            "occurrence": "0",
        }
        assert {k: row[k] for k in expected} == expected
        assert row["raised_at"] == _iso(RAISED_AT)
        assert row["ack_due_at"] == _iso(RAISED_AT + 900_000)
        assert row["resolve_due_at"] == _iso(RAISED_AT + 3_600_000)
        listed = await api.get("/alerts", params={"site": SITE, "owner": "chen"}, headers=viewer)
        assert [a["time_to_resolve_s"] for a in listed.json()] == [stored.time_to_resolve_s]
        none = await api.get("/alerts/export", params={"site": SITE, "owner": "zhao"},
                             headers=viewer)  # fmt: skip
        assert none.text.strip() == ",".join(EXPORT_COLUMNS)

    try:
        asyncio.run(scenario())
    finally:
        for receiver in (ding, wecom, hook, oncall):
            receiver.stop()


def _publish(publisher: Publisher, round_: int, celsius: float) -> None:
    payload = {
        "ts": T0 + round_ * 10_000,
        "seq": round_,
        "readings": [{"sensor": "t", "celsius": celsius}],
    }
    publisher.publish(topics.build(SITE, "temp", "p1"), json.dumps(payload))


def _iso(ms: int) -> str:
    from datetime import UTC, datetime  # noqa: PLC0415

    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")

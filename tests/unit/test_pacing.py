"""The per-robot budget, and how the notifier paces, folds, retries and reports failures."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from core import db
from core.alerts import Alert, AlertEvent, AlertStores
from core.settings import ChannelSettings
from rules.lifecycle import AlertLifecycle
from rules.notify.base import DeliveryError
from rules.notify.digest import DigestEntry
from rules.notify.pacing import RobotChannel, TokenBucket
from rules.notify.service import Notifier
from rules.notify.wecom import WeComChannel
from tests.alertutil import (
    condition,
    connect,
    connections_closed,  # noqa: F401 - an autouse fixture
)
from tests.conftest import FakeClock

# -- bucket -----------------------------------------------------------------------------------


def _bucket(
    database: db.Target, clock: FakeClock, *, capacity: int = 19, window_s: float = 61.0
) -> TokenBucket:
    return TokenBucket(
        connect(database), "robot", capacity=capacity, window_s=window_s,
        clock=clock,
    )  # fmt: skip


def test_bucket_allows_capacity_then_refuses(database: db.Target) -> None:
    clock = FakeClock()
    bucket = _bucket(database, clock, capacity=3, window_s=60)
    assert [bucket.try_acquire() for _ in range(4)] == [True, True, True, False]
    assert bucket.available() == 0
    assert bucket.next_available_at() == 1_060.0


def test_tokens_return_exactly_one_window_after_they_were_spent(database: db.Target) -> None:
    clock = FakeClock()
    bucket = _bucket(database, clock, capacity=2, window_s=60)
    assert bucket.try_acquire()
    clock.advance(10)
    assert bucket.try_acquire()
    clock.advance(49.9)
    assert bucket.available() == 0
    clock.advance(0.1)  # t=60: the first token is back, the second is not
    assert bucket.available() == 1
    clock.advance(10)
    assert bucket.available() == 2


def test_robot_bucket_keeps_a_safety_margin(database: db.Target) -> None:
    bucket = TokenBucket.for_robot(connect(database), "robot", 20, clock=FakeClock())
    assert bucket.capacity == 19
    assert bucket.window_s == 61.0


def test_no_sliding_window_ever_exceeds_capacity_across_processes(database: db.Target) -> None:
    """Two buckets over separate connections to one database are one budget."""
    clock = FakeClock(0.0)
    first, second = (
        TokenBucket.for_robot(connect(database), "robot", 20, clock=clock) for _ in range(2)
    )
    other = TokenBucket.for_robot(connect(database), "other", 20, clock=clock)
    rng = random.Random(7)
    sent: list[float] = []
    for _ in range(3000):
        clock.advance(rng.choice([0.0, 0.05, 0.5, 1.0, 3.0]))
        if rng.choice([first, second]).try_acquire():
            sent.append(clock.now)
    assert len(sent) > 100
    for i, start in enumerate(sent):
        in_window = [t for t in sent[i:] if t - start < 61]
        assert len(in_window) <= 19
    assert other.available() == 19  # another robot has its own budget
    clock.advance(61)
    assert first.available() == second.available() == 19
    for _ in range(19):
        assert first.try_acquire()
    assert not second.try_acquire()
    assert second.next_available_at() == clock.now + 61


def test_pause_blocks_is_never_shortened_and_is_shared(database: db.Target) -> None:
    clock = FakeClock()
    bucket = _bucket(database, clock, capacity=5, window_s=60)
    twin = _bucket(database, clock, capacity=5, window_s=60)
    bucket.pause(600)
    twin.pause(60)
    assert bucket.available() == twin.available() == 0
    assert not twin.try_acquire()
    assert bucket.next_available_at() == twin.paused_until == 1_600.0
    clock.advance(599)
    assert bucket.available() == 0
    clock.advance(1)
    assert twin.available() == 5


def test_bad_parameters_are_rejected(database: db.Target) -> None:
    with pytest.raises(ValueError, match="capacity"):
        _bucket(database, FakeClock(), capacity=0, window_s=60)


# -- notifier with a scripted robot ----------------------------------------------------------


class ScriptedRobot:
    """A robot channel whose answers are scripted: each post pops one outcome."""

    rate_limit_per_minute = 20
    rate_limit_codes = frozenset({45009})
    throttle_penalty_s = 60.0

    def __init__(
        self, name: str = "robot", outcomes: list[DeliveryError | None] | None = None
    ) -> None:
        self.name = name
        self.outcomes = outcomes or []
        self.posted: list[dict[str, Any]] = []

    def render(self, alert: Alert, event: AlertEvent) -> list[dict[str, Any]]:
        return [{"alert": alert.id, "event": event}]

    def render_digest(
        self, entries: Sequence[DigestEntry]
    ) -> list[tuple[dict[str, Any], frozenset[int]]]:
        return [
            ({"digest": sorted(e.alert.id for e in entries)}, frozenset(e.key for e in entries))
        ]

    async def post(self, payload: dict[str, Any]) -> None:
        self.posted.append(payload)
        outcome = self.outcomes.pop(0) if self.outcomes else None
        if outcome is not None:
            raise outcome

    async def send(self, alert: Alert, event: AlertEvent) -> None:
        for payload in self.render(alert, event):
            await self.post(payload)

    async def aclose(self) -> None:
        return None


def make_store(database: db.Target, channels: list[str]) -> AlertStores:
    return AlertStores.over(connect(database), channels)


def raise_many(store: AlertStores, n: int, *, at_ms: int, probe: str = "t") -> list[int]:
    ids = []
    lifecycle = AlertLifecycle(store.state)
    for i in range(n):
        alert = lifecycle.report(
            condition(
                f"WH1/cold/{probe}{i}",
                at_ms=at_ms,
                type="cold_chain_excursion",
                severity="critical",
                site="WH1",
                zone="cold",
                value=9.0,
                threshold=8.0,
            )
        )
        assert alert is not None
        ids.append(alert.id)
    return ids


def test_scripted_robot_is_a_robot_channel() -> None:
    assert isinstance(ScriptedRobot(), RobotChannel)


def test_within_budget_each_event_is_its_own_message(database: db.Target) -> None:
    clock = FakeClock(time.time() + 10)
    store = make_store(database, ["robot"])
    ids = raise_many(store, 5, at_ms=int(clock() * 1000))
    robot = ScriptedRobot()
    notifier = Notifier(store, [robot], clock=clock)
    assert asyncio.run(notifier.deliver_due()) == 5
    assert robot.posted == [{"alert": i, "event": "raised"} for i in ids]
    assert notifier.health["robot"].messages == 5
    assert notifier.health["robot"].digests == 0
    assert notifier.buckets["robot"].available() == 14


def test_over_budget_events_are_folded_into_a_digest(database: db.Target) -> None:
    clock = FakeClock(time.time() + 10)
    store = make_store(database, ["robot"])
    ids = raise_many(store, 30, at_ms=int(clock() * 1000))
    robot = ScriptedRobot()
    notifier = Notifier(store, [robot], clock=clock)
    assert asyncio.run(notifier.deliver_due()) == 30
    assert robot.posted == [{"digest": ids}]
    assert {i.status for i in store.outbox.outbox()} == {"sent"}
    assert notifier.health["robot"].digests == 1
    assert notifier.health["robot"].sent == 30


def test_rate_limit_answer_pauses_the_robot_and_keeps_rows_pending(database: db.Target) -> None:
    clock = FakeClock(time.time() + 10)
    store = make_store(database, ["robot"])
    raise_many(store, 2, at_ms=int(clock() * 1000))
    robot = ScriptedRobot(outcomes=[DeliveryError("robot: 45009", retry_after_s=60.0, code=45009)])
    notifier = Notifier(store, [robot], clock=clock)
    assert asyncio.run(notifier.deliver_due()) == 0
    rows = store.outbox.outbox()
    assert [(r.status, r.attempts) for r in rows] == [("pending", 0), ("pending", 0)]
    assert notifier.health["robot"].throttled == 1
    assert notifier.buckets["robot"].paused_until == pytest.approx(clock() + 60)
    clock.advance(59)
    assert asyncio.run(notifier.deliver_due()) == 0
    assert len(robot.posted) == 1
    clock.advance(1)
    assert asyncio.run(notifier.deliver_due()) == 2


def test_permanent_failure_is_dead_at_once_and_reported_once(database: db.Target) -> None:
    clock = FakeClock(time.time() + 10)
    store = make_store(database, ["robot"])
    raise_many(store, 1, at_ms=int(clock() * 1000))
    bad_sign = DeliveryError(
        "robot: errcode 310000 sign not match", retry_after_s=None, code=310000
    )
    robot = ScriptedRobot(outcomes=[bad_sign, bad_sign])
    problems: list[tuple[str, str]] = []
    recovered: list[str] = []
    notifier = Notifier(
        store,
        [robot],
        clock=clock,
        on_channel_problem=lambda c, m: problems.append((c, m)),
        on_channel_recovered=recovered.append,
    )
    asyncio.run(notifier.deliver_due())
    clock.advance(3600)
    assert asyncio.run(notifier.deliver_due()) == 0
    assert len(robot.posted) == 1  # not retried
    assert [(r.status, r.last_error) for r in store.outbox.outbox()] == [("dead", str(bad_sign))]
    assert problems == [("robot", str(bad_sign))]
    health = notifier.health["robot"]
    assert health.problem == str(bad_sign)
    assert health.permanent_failures == [str(bad_sign)]
    # A second permanent failure is recorded but not reported again ...
    raise_many_second = AlertLifecycle(store.state).report(condition("other", at_ms=0, site="WH1"))
    assert raise_many_second is not None
    clock.advance(1)
    asyncio.run(notifier.deliver_due())
    assert problems == [("robot", str(bad_sign))]
    assert len(health.permanent_failures) == 2
    # ... and a success clears the problem.
    AlertLifecycle(store.state).report(condition("third", at_ms=0, site="WH1"))
    clock.advance(1)
    assert asyncio.run(notifier.deliver_due()) == 1
    assert health.problem is None
    assert recovered == ["robot"]


def test_transient_failure_backs_off_and_holds_the_channel(database: db.Target) -> None:
    clock = FakeClock(time.time() + 10)
    store = make_store(database, ["robot"])
    raise_many(store, 3, at_ms=int(clock() * 1000))
    down = DeliveryError("robot: network error (ConnectError)", retry_after_s=5.0)
    robot = ScriptedRobot(outcomes=[down])
    notifier = Notifier(store, [robot], clock=clock)
    assert asyncio.run(notifier.deliver_due()) == 0
    first = store.outbox.outbox()[0]
    assert (first.status, first.attempts, first.last_error) == ("pending", 1, str(down))
    assert len(robot.posted) == 1  # the other two were not tried against the outage
    assert 5.0 <= notifier.buckets["robot"].paused_until - clock() <= 5.5
    clock.advance(6)
    assert asyncio.run(notifier.deliver_due()) == 3
    assert {r.status for r in store.outbox.outbox()} == {"sent"}


def test_transient_failures_give_up_after_max_attempts(database: db.Target) -> None:
    clock = FakeClock(time.time() + 10)
    store = make_store(database, ["robot"])
    raise_many(store, 1, at_ms=int(clock() * 1000))
    down = DeliveryError("robot: HTTP 503", retry_after_s=5.0, code=503)
    robot = ScriptedRobot(outcomes=[down] * 3)
    problems: list[str] = []
    notifier = Notifier(
        store,
        [robot],
        clock=clock,
        max_attempts=3,
        on_channel_problem=lambda c, m: problems.append(m),
    )
    for _ in range(6):
        asyncio.run(notifier.deliver_due())
        clock.advance(400)
    assert len(robot.posted) == 3
    assert [(r.status, r.attempts) for r in store.outbox.outbox()] == [("dead", 3)]
    assert problems == ["gave up after 3 attempts: robot: HTTP 503"]


def test_hook_errors_do_not_stop_delivery(
    database: db.Target, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock(time.time() + 10)
    store = make_store(database, ["robot"])
    raise_many(store, 1, at_ms=int(clock() * 1000))
    robot = ScriptedRobot(outcomes=[DeliveryError("robot: 93000", retry_after_s=None, code=93000)])

    def broken(channel: str, message: str) -> None:
        raise RuntimeError(f"{channel} {message}")

    notifier = Notifier(store, [robot], clock=clock, on_channel_problem=broken)
    asyncio.run(notifier.deliver_due())
    assert "on_channel_problem hook failed for robot" in caplog.text


# -- real channel over a mock transport: 5xx retried, secrets kept out of errors --------------


def test_wecom_5xx_is_retried_and_key_never_in_errors(database: db.Target) -> None:
    key = "wecom-key-0123456789"
    answers = [httpx.Response(502, text="bad gateway"), httpx.Response(200, json={"errcode": 0})]
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return answers.pop(0)

    async def scenario() -> None:
        clock = FakeClock(time.time() + 10)
        store = make_store(database, ["wecom"])
        raise_many(store, 1, at_ms=int(clock() * 1000))
        settings = ChannelSettings(
            name="wecom",
            kind="wecom",
            url=SecretStr(f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={key}"),
        )
        client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        channel = WeComChannel(settings, console_url="http://c", client=client)
        notifier = Notifier(store, [channel], clock=clock)
        try:
            assert await notifier.deliver_due() == 0
            health = notifier.health["wecom"]
            assert health.last_error == "wecom: HTTP 502"
            assert health.last_error_code == 502
            row = store.outbox.outbox()[0]
            assert (row.status, row.attempts) == ("pending", 1)
            assert key not in (row.last_error or "")
            clock.advance(10)
            assert await notifier.deliver_due() == 1
        finally:
            await notifier.aclose()

    asyncio.run(scenario())
    assert len(seen) == 2


def test_two_notifiers_on_one_database_share_a_robots_budget(database: db.Target) -> None:
    clock = FakeClock(time.time() + 10)
    store = make_store(database, ["robot"])
    robot = ScriptedRobot()
    first = Notifier(store, [robot], clock=clock, worker="a")
    second = Notifier(
        AlertStores.over(connect(database), ["robot"]),
        [robot],
        clock=clock,
        worker="b",
    )
    ids = raise_many(store, 10, at_ms=int(clock() * 1000))
    assert asyncio.run(first.deliver_due()) == 10
    later = raise_many(store, 10, at_ms=int(clock() * 1000), probe="u")
    # 9 tokens are left of the robot's 19: the second notifier folds its 10 into a digest
    assert asyncio.run(second.deliver_due()) == 10
    assert robot.posted == [
        *({"alert": i, "event": "raised"} for i in ids),
        {"digest": later},
    ]
    assert second.buckets["robot"].available() == first.buckets["robot"].available() == 8

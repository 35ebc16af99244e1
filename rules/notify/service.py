"""The notifier: drains the persistent outbox into the channels.

An alert event is enqueued for every channel in the same transaction that records it, so an
accepted alert is delivered after a crash or restart. A row is marked sent only after the
channel accepted the message that carries it. Transient failures back off exponentially;
permanent ones (bad signature, bad key, oversize) stop at once, are kept with the channel's
own words, and are reported through ``on_channel_problem``.

Each pass claims the due rows for a lease (notifiers of several processes may share the
database), and a row is marked ``sending`` just before its request goes out. A crash between
the channel accepting a message and ``mark_sent`` leaves it ``sending``; at start the notifier
sends such rows of its worker again (at-least-once). Webhooks carry the outbox row id as an
idempotency key so the receiver drops the repeat; robots cannot deduplicate, and a rare
repeated chat message is the lesser harm than a lost alert.

Robot channels (DingTalk, WeCom) are paced by a :class:`~rules.notify.pacing.TokenBucket`
each, counted in the database so that notifiers share it. When more events are pending than
the bucket allows right now, they are folded into digest messages instead of waiting in line,
so a storm reaches people within a minute without tripping the robot's rate limit. Other
channels (InfluxDB, webhooks) get one delivery per event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from core import db
from core.alerts import Alert, AlertStores, OutboxItem
from core.db import worker_prefix
from core.influx import InfluxClient
from core.settings import Settings
from rules.lifecycle import AlertLifecycle, channel_health_hooks
from rules.notify.base import Channel, DeliveryError
from rules.notify.digest import DigestEntry
from rules.notify.dingtalk import DingTalkChannel
from rules.notify.influx import InfluxAlertChannel
from rules.notify.pacing import Clock, RobotChannel, TokenBucket
from rules.notify.render import SiteTimezones
from rules.notify.webhook import WebhookChannel
from rules.notify.wecom import WeComChannel
from rules.seed import Seed, load_seed

logger = logging.getLogger(__name__)

ProblemHook = Callable[[str, str], None]
RecoveryHook = Callable[[str], None]

MAX_BACKOFF_S = 300.0
# Enough rows per pass that a whole storm is folded into one digest rather than many.
DEFAULT_BATCH_LIMIT = 5000
_KEEP_FAILURES = 100
# How long a notifier's claim on outbox rows holds; renewed before each send, so it only has
# to outlast one send (HTTP timeouts are 10 s).
CLAIM_LEASE_S = 60.0


@dataclass
class ChannelHealth:
    """Delivery statistics of one channel, served by the API and the demo.

    ``sent`` counts outbox rows accepted, ``messages`` requests accepted (a digest is one
    message for many rows). ``problem`` is set while the channel fails permanently.
    """

    sent: int = 0
    failed: int = 0
    messages: int = 0
    digests: int = 0
    throttled: int = 0
    last_error: str | None = None
    last_error_code: int | None = None
    problem: str | None = None
    permanent_failures: list[str] = field(default_factory=list)


@dataclass
class _Message:
    """One request in a delivery plan: rows marked sent on success, rows blamed on failure."""

    payload: dict[str, Any]
    covers: list[OutboxItem]
    completes: list[OutboxItem]
    digest: bool


def build_channels(
    settings: Settings, influx: InfluxClient, *, seed: Seed | None = None
) -> list[Channel]:
    """Channels from settings, plus the InfluxDB alerts channel.

    Robot messages give times in each site's timezone, from ``seed`` (the pipeline's) or else
    the seed file of ``settings.rules`` (see :class:`~rules.notify.render.SiteTimezones`).
    """
    if seed is None:
        seed = load_seed(settings.rules.seed_file) if settings.rules.seed_file else Seed()
    timezones = SiteTimezones.from_seed(seed)
    channels: list[Channel] = [InfluxAlertChannel(influx)]
    client = httpx.AsyncClient(timeout=10)
    console_url = settings.notifier.console_url
    for cfg in settings.notifier.channels:
        if cfg.kind == "dingtalk":
            channels.append(
                DingTalkChannel(cfg, console_url=console_url, client=client, timezones=timezones)
            )
        elif cfg.kind == "webhook":
            channels.append(WebhookChannel(cfg, client=client))
        else:
            channels.append(
                WeComChannel(cfg, console_url=console_url, client=client, timezones=timezones)
            )
    return channels


def build_notifier(
    settings: Settings, stores: AlertStores, channels: list[Channel], lifecycle: AlertLifecycle
) -> Notifier:
    """The process's notifier over ``channels``, reporting failing channels through
    ``lifecycle`` as ``channel_health`` alerts; tuning from ``settings.notifier``."""
    on_problem, on_recovered = channel_health_hooks(lifecycle)
    return Notifier(
        stores,
        channels,
        poll_interval_s=settings.notifier.poll_interval_s,
        max_attempts=settings.notifier.max_attempts,
        # Every worker already has an MQTT client id of its own: it names its claims too.
        worker=settings.mqtt.client_id,
        on_channel_problem=on_problem,
        on_channel_recovered=on_recovered,
    )


class Notifier:
    """Delivers outbox rows; one instance per process.

    Notifiers of several processes may share one database: each claims the rows it sends (see
    :class:`~core.alerts.outbox.OutboxStore`), under ``worker`` (which must differ between
    processes that run at the same time; a restarted process of the same name sends again what
    its predecessor left mid-send). ``clock`` returns seconds since the epoch (inject a
    simulated one in tests); it drives the outbox schedule and the robots' buckets.
    ``on_channel_problem(channel, message)`` is called when a channel starts failing
    permanently, ``on_channel_recovered(channel)`` when it accepts a message again; both may be
    set after construction.
    """

    def __init__(
        self,
        stores: AlertStores,
        channels: list[Channel],
        *,
        poll_interval_s: float = 0.2,
        max_attempts: int = 8,
        worker: str = "notifier",
        clock: Clock = time.time,
        on_channel_problem: ProblemHook | None = None,
        on_channel_recovered: RecoveryHook | None = None,
        batch_limit: int = DEFAULT_BATCH_LIMIT,
    ) -> None:
        self._outbox = stores.outbox
        self._alerts = stores.state
        self._channels = {c.name: c for c in channels}
        self._poll_interval_s = poll_interval_s
        self._max_attempts = max_attempts
        self._clock = clock
        self._batch_limit = batch_limit
        self.worker = worker
        self.owner = f"{worker_prefix(worker)}{os.getpid()}-{secrets.token_hex(4)}"
        self._lease_ms = int(CLAIM_LEASE_S * 1000)
        self.on_channel_problem = on_channel_problem
        self.on_channel_recovered = on_channel_recovered
        self.health: dict[str, ChannelHealth] = {name: ChannelHealth() for name in self._channels}
        self._robots: dict[str, RobotChannel] = {
            c.name: c for c in channels if isinstance(c, RobotChannel)
        }
        # Counted in the database: every notifier posting to a robot spends from its budget.
        self.buckets: dict[str, TokenBucket] = {
            name: TokenBucket.for_robot(
                self._outbox.conn, name, robot.rate_limit_per_minute, clock=clock
            )
            for name, robot in self._robots.items()
        }
        self._wake = asyncio.Event()
        # One pass at a time: a shutdown flush racing the running loop would send rows twice.
        self._pass_lock = asyncio.Lock()

    def wake(self) -> None:
        """Deliver now instead of at the next poll (called after an alert is recorded)."""
        self._wake.set()

    def recover(self) -> int:
        """Requeue rows a crash left ``sending``; returns how many (run calls it at start)."""
        rows = self._outbox.recover_sending(self.worker)
        if rows:
            logger.warning(
                "%d deliveries were interrupted by a stop: sending them again (ids %s)",
                len(rows),
                ",".join(str(r.id) for r in rows[:20]),
            )
        return len(rows)

    async def run(self) -> None:
        """Deliver forever."""
        self.recover()
        while True:
            await self.deliver_due()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._poll_interval_s)

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    async def deliver_due(self) -> int:
        """Try every due row once (robots: as their budget allows); returns rows accepted."""
        async with self._pass_lock:
            return await self._deliver_pass()

    async def _deliver_pass(self) -> int:
        by_channel: dict[str, list[OutboxItem]] = {}
        claimed = self._outbox.claim(
            owner=self.owner, now=self._now_ms(), lease_ms=self._lease_ms, limit=self._batch_limit
        )
        for item in claimed:
            by_channel.setdefault(item.channel, []).append(item)
        try:
            # Channels are independent: a slow InfluxDB or webhook must not hold up a robot.
            counts = await asyncio.gather(
                *(self._deliver_channel(name, items) for name, items in by_channel.items())
            )
        finally:
            if claimed:
                self._outbox.release(self.owner)  # what a robot's budget left for later
        return sum(counts)

    def _hold(self, rows: list[OutboxItem]) -> bool:
        """Mark ``rows`` sending, renewing this notifier's claim on them; False if another
        notifier has taken them over (this one was stalled past its lease)."""
        if self._outbox.mark_sending(
            (row.id for row in rows), owner=self.owner, until=self._now_ms() + self._lease_ms
        ):
            return True
        logger.warning("outbox rows %s were taken over by another notifier", [r.id for r in rows])
        return False

    async def _deliver_channel(self, name: str, items: list[OutboxItem]) -> int:
        robot = self._robots.get(name)
        if robot is not None:
            return await self._deliver_paced(robot, items)
        accepted = 0
        for item in items:
            if await self._deliver(item):
                accepted += 1
        return accepted

    # -- one event per delivery (InfluxDB, webhooks) ---------------------------------------

    def _load(self, item: OutboxItem) -> Alert | None:
        channel = self._channels.get(item.channel)
        alert = self._alerts.get(item.alert_id)
        if channel is None or alert is None:
            reason = "channel not configured" if channel is None else "alert missing"
            self._outbox.mark_dead(item.id, error=reason)
            logger.error("outbox row %d for %s dropped: %s", item.id, item.channel, reason)
            return None
        return alert

    async def _deliver(self, item: OutboxItem) -> bool:
        alert = self._load(item)
        if alert is None:
            return False
        channel = self._channels[item.channel]
        health = self.health[channel.name]
        if not self._hold([item]):
            return False
        try:
            if isinstance(channel, WebhookChannel):
                await channel.send(alert, item.event, key=str(item.id))
            else:
                await channel.send(alert, item.event)
        except DeliveryError as exc:
            self._single_failure(item, exc)
            return False
        self._outbox.mark_sent(item.id)
        health.sent += 1
        health.messages += 1
        self._recovered(channel.name)
        logger.info("alert %d (%s) delivered to %s", alert.id, item.event, channel.name)
        return True

    def _single_failure(self, item: OutboxItem, exc: DeliveryError) -> None:
        self._record_failure(item.channel, exc)
        if exc.permanent or item.attempts + 1 >= self._max_attempts:
            self._outbox.mark_dead(item.id, error=str(exc))
            logger.error("alert %d not delivered to %s: %s", item.alert_id, item.channel, exc)
            self._problem(item.channel, str(exc))
            return
        delay = self._backoff(exc, item.attempts)
        retry_at = self._now_ms() + int(delay * 1000)
        self._outbox.mark_retry(item.id, next_attempt_at=retry_at, error=str(exc))
        logger.warning(
            "alert %d to %s will be retried in %.1fs: %s", item.alert_id, item.channel, delay, exc
        )

    # -- robots: paced, folded into digests when over budget -------------------------------

    def _plan(self, robot: RobotChannel, items: list[OutboxItem], tokens: int) -> list[_Message]:
        """One message per event when the budget allows it, else digests."""
        loaded = [(item, alert) for item in items if (alert := self._load(item)) is not None]
        if len(loaded) <= tokens:
            plan: list[_Message] = []
            for item, alert in loaded:
                payloads = robot.render(alert, item.event)
                plan += [
                    _Message(
                        payload,
                        covers=[item],
                        completes=[item] if i == len(payloads) - 1 else [],
                        digest=False,
                    )
                    for i, payload in enumerate(payloads)
                ]
            if len(plan) <= tokens:
                return plan
        by_id = {item.id: item for item, _ in loaded}
        entries = [
            DigestEntry(key=item.id, alert=alert, event=item.event) for item, alert in loaded
        ]
        plan = []
        for payload, keys in robot.render_digest(entries):
            rows = [by_id[k] for k in sorted(keys)]
            plan.append(_Message(payload, covers=rows, completes=rows, digest=True))
        return plan

    async def _deliver_paced(self, robot: RobotChannel, items: list[OutboxItem]) -> int:
        bucket = self.buckets[robot.name]
        tokens = bucket.available()
        if tokens <= 0:
            return 0
        health = self.health[robot.name]
        plan = self._plan(robot, items, tokens)
        if plan and plan[0].digest:
            logger.info(
                "%s: %d events pending, %d messages allowed now: sending a digest",
                robot.name,
                len(items),
                tokens,
            )
        accepted = 0
        for message in plan:
            if not bucket.try_acquire():
                break  # the rest stays pending for the next pass
            if not self._hold(message.covers):
                continue  # the token is spent all the same: the robot's limit still holds
            try:
                await robot.post(message.payload)
            except DeliveryError as exc:
                self._outbox.mark_pending(row.id for row in message.covers)
                self._paced_failure(robot, bucket, exc, message.covers)
                break
            health.messages += 1
            health.digests += int(message.digest)
            for row in message.completes:
                self._outbox.mark_sent(row.id)
            # A row split over several messages is done only with its last part.
            self._outbox.mark_pending(
                row.id for row in message.covers if row not in message.completes
            )
            health.sent += len(message.completes)
            accepted += len(message.completes)
            self._recovered(robot.name)
            if message.digest:
                logger.info(
                    "digest of %d events delivered to %s", len(message.completes), robot.name
                )
            else:
                for row in message.completes:
                    logger.info(
                        "alert %d (%s) delivered to %s", row.alert_id, row.event, robot.name
                    )
        return accepted

    def _paced_failure(
        self, robot: RobotChannel, bucket: TokenBucket, exc: DeliveryError, rows: list[OutboxItem]
    ) -> None:
        self._record_failure(robot.name, exc)
        if exc.code in robot.rate_limit_codes:
            # The robot's penalty applies to the whole channel; the rows did nothing wrong,
            # so they stay pending without spending an attempt.
            penalty = max(exc.retry_after_s or 0.0, robot.throttle_penalty_s)
            bucket.pause(penalty)
            self.health[robot.name].throttled += 1
            logger.warning(
                "%s rate-limited the notifier (errcode %s): pausing it for %.0fs",
                robot.name,
                exc.code,
                penalty,
            )
            return
        if exc.permanent:
            for row in rows:
                self._outbox.mark_dead(row.id, error=str(exc))
            logger.error("%d events not delivered to %s: %s", len(rows), robot.name, exc)
            self._problem(robot.name, str(exc))
            return
        attempts = max(row.attempts for row in rows)
        delay = self._backoff(exc, attempts)
        retry_at = self._now_ms() + int(delay * 1000)
        gave_up = 0
        for row in rows:
            if row.attempts + 1 >= self._max_attempts:
                self._outbox.mark_dead(row.id, error=str(exc))
                gave_up += 1
            else:
                self._outbox.mark_retry(row.id, next_attempt_at=retry_at, error=str(exc))
        # Later rows would meet the same outage: hold the whole channel, not just these rows.
        bucket.pause(delay)
        logger.warning(
            "%s: %d events will be retried in %.1fs: %s",
            robot.name,
            len(rows) - gave_up,
            delay,
            exc,
        )
        if gave_up:
            logger.error(
                "%d events not delivered to %s after %d attempts: %s",
                gave_up,
                robot.name,
                self._max_attempts,
                exc,
            )
            self._problem(robot.name, f"gave up after {self._max_attempts} attempts: {exc}")

    # -- health ---------------------------------------------------------------------------

    @staticmethod
    def _backoff(exc: DeliveryError, attempts: int) -> float:
        delay = max(exc.retry_after_s or 0.0, min(MAX_BACKOFF_S, 0.5 * 2.0**attempts))
        return delay * (1 + random.random() * 0.1)  # noqa: S311 - jitter, not security

    def _record_failure(self, name: str, exc: DeliveryError) -> None:
        health = self.health[name]
        health.failed += 1
        health.last_error = str(exc)
        health.last_error_code = exc.code

    def _problem(self, name: str, message: str) -> None:
        health = self.health[name]
        health.permanent_failures.append(message)
        del health.permanent_failures[:-_KEEP_FAILURES]
        first = health.problem is None
        health.problem = message
        if first and self.on_channel_problem is not None:
            try:
                self.on_channel_problem(name, message)
            except Exception:
                # A broken hook must not stop delivery to the other channels.
                logger.exception("on_channel_problem hook failed for %s", name)

    def _recovered(self, name: str) -> None:
        health = self.health[name]
        if health.problem is None:
            return
        health.problem = None
        logger.info("%s accepts messages again", name)
        if self.on_channel_recovered is not None:
            try:
                self.on_channel_recovered(name)
            except Exception:
                logger.exception("on_channel_recovered hook failed for %s", name)

    async def aclose(self) -> None:
        """Close every channel."""
        for channel in self._channels.values():
            await channel.aclose()


async def run_notifier(settings: Settings) -> None:
    """The notifier alone (``stocksense notify``): deliver the outbox until cancelled.

    Rows a previous process left ``sending`` are sent again first (see :meth:`Notifier.recover`).
    A channel failing permanently raises a ``channel_health`` alert through the store.
    """
    conn = db.connect(settings.database)
    influx = InfluxClient(settings.influx)
    channels = build_channels(settings, influx)
    stores = AlertStores.over(conn, [c.name for c in channels], alerting=settings.alerting)
    lifecycle = AlertLifecycle(stores.state, settings.alerting)
    notifier = build_notifier(settings, stores, channels, lifecycle)
    logger.info("notifier running: channels %s", ", ".join(c.name for c in channels))
    try:
        await notifier.run()
    finally:
        await notifier.aclose()
        await influx.aclose()
        conn.close()

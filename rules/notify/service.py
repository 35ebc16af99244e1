"""The notifier: drains the persistent outbox into the channels.

An alert event is enqueued for every channel in the same transaction that records it, so an
accepted alert is delivered after a crash or restart. A row is marked sent only after the
channel accepted it. Transient failures back off exponentially; permanent ones (bad signature,
bad key, oversize) stop at once and are kept with the channel's own words.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass, field

import httpx

from core.alerts import AlertStore, OutboxItem, now_ms
from core.influx import InfluxClient
from core.settings import Settings
from rules.notify.base import Channel, DeliveryError
from rules.notify.dingtalk import DingTalkChannel
from rules.notify.influx import InfluxAlertChannel
from rules.notify.webhook import WebhookChannel

logger = logging.getLogger(__name__)


@dataclass
class ChannelHealth:
    """Delivery statistics of one channel, served by the API and the demo."""

    sent: int = 0
    failed: int = 0
    last_error: str | None = None
    last_error_code: int | None = None
    permanent_failures: list[str] = field(default_factory=list)


def build_channels(settings: Settings, influx: InfluxClient) -> list[Channel]:
    """Channels from settings, plus the InfluxDB alerts channel."""
    channels: list[Channel] = [InfluxAlertChannel(influx)]
    client = httpx.AsyncClient(timeout=10)
    for cfg in settings.notifier.channels:
        if cfg.kind == "dingtalk":
            channels.append(
                DingTalkChannel(cfg, console_url=settings.notifier.console_url, client=client)
            )
        elif cfg.kind == "webhook":
            channels.append(WebhookChannel(cfg, client=client))
        else:
            from rules.notify.wecom import WeComChannel  # noqa: PLC0415

            channels.append(WeComChannel(cfg, console_url=settings.notifier.console_url, client=client))
    return channels


class Notifier:
    """Delivers outbox rows; one instance per process."""

    def __init__(
        self,
        store: AlertStore,
        channels: list[Channel],
        *,
        poll_interval_s: float = 0.2,
        max_attempts: int = 8,
    ) -> None:
        self._store = store
        self._channels = {c.name: c for c in channels}
        self._poll_interval_s = poll_interval_s
        self._max_attempts = max_attempts
        self.health: dict[str, ChannelHealth] = {name: ChannelHealth() for name in self._channels}
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Deliver now instead of at the next poll (called after an alert is recorded)."""
        self._wake.set()

    async def run(self) -> None:
        """Deliver forever."""
        while True:
            await self.deliver_due()
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self._poll_interval_s)
            except TimeoutError:
                pass

    async def deliver_due(self) -> int:
        """Try every due row once; returns how many were accepted."""
        accepted = 0
        for item in self._store.due(now=now_ms()):
            if await self._deliver(item):
                accepted += 1
        return accepted

    async def _deliver(self, item: OutboxItem) -> bool:
        channel = self._channels.get(item.channel)
        alert = self._store.get(item.alert_id)
        if channel is None or alert is None:
            reason = "channel not configured" if channel is None else "alert missing"
            self._store.mark_dead(item.id, error=reason)
            logger.error("outbox row %d for %s dropped: %s", item.id, item.channel, reason)
            return False
        health = self.health[channel.name]
        try:
            await channel.send(alert, item.event)
        except DeliveryError as exc:
            health.failed += 1
            health.last_error = str(exc)
            health.last_error_code = exc.code
            if exc.permanent or item.attempts + 1 >= self._max_attempts:
                self._store.mark_dead(item.id, error=str(exc))
                health.permanent_failures.append(str(exc))
                logger.error("alert %d not delivered to %s: %s", alert.id, channel.name, exc)
                return False
            delay = max(exc.retry_after_s or 0.0, min(300.0, 0.5 * 2**item.attempts))
            delay *= 1 + random.random() * 0.1  # noqa: S311 - jitter, not security
            self._store.mark_retry(item.id, next_attempt_at=now_ms() + int(delay * 1000), error=str(exc))
            logger.warning("alert %d to %s will be retried in %.1fs: %s", alert.id, channel.name, delay, exc)
            return False
        self._store.mark_sent(item.id)
        health.sent += 1
        logger.info("alert %d (%s) delivered to %s", alert.id, item.event, channel.name)
        return True

    async def aclose(self) -> None:
        """Close every channel."""
        for channel in self._channels.values():
            await channel.aclose()

"""Alert lifecycle between every rule and the store: debounce, severity, escalation, settling.

It is the one way alerts are raised and cleared: the cold-chain rule, the inventory rules,
the anomaly detectors, the InfluxDB refusal alarm and the notifier's channel health all hand
an :class:`~core.alerts.AlertCondition` to :meth:`AlertLifecycle.report` every time they see
their condition, and call :meth:`AlertLifecycle.resolve` when it is gone. A condition becomes
an alert only after it has held ``debounce_s`` seconds *and* been seen ``debounce_count``
times (per type, from ``AlertingSettings.types``; the defaults raise at once); the type's
``severity`` replaces the rule's. Progress is kept per (source, type) and forgotten when the
condition is resolved, so a condition that stops before its debounce raises nothing. It is
kept in memory: after a restart a pending condition starts counting again, which can only
delay an alert by one debounce period. Everything else (open alerts, flapping, silences,
escalation) is in the database, so :meth:`AlertLifecycle.tick` — escalation of unacked and
overdue alerts, reminders, and settling of flapping ones — behaves the same after a restart.

Rules keep reporting while their condition holds: each report of an open alert keeps it current
(latest value, peak, details, title, message, last sighting), written at most every
``update_interval_s`` of the condition's time per alert, or at once when the peak moves, so a
rule reporting every reading costs a database write only every few seconds. When the alert is no
longer open (a person resolved it while the condition held) the report raises it again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace

from core.alerts import CHANNEL_HEALTH_TYPE, Alert, AlertCondition, AlertStateStore
from core.readings import Sample
from core.settings import AlertingSettings
from rules.sites import keeps

logger = logging.getLogger(__name__)

ProblemHook = Callable[[str, str], None]
RecoveryHook = Callable[[str], None]
CHANNEL_HEALTH_SITE = "system"


@dataclass(slots=True)
class _Pending:
    first_ms: int
    count: int


@dataclass(slots=True)
class _Current:
    """What the lifecycle last wrote of an open alert."""

    written_ms: int
    peak: float | None


def farther(value: float | None, peak: float | None, threshold: float | None) -> float | None:
    """The peak after ``value``: the one farther beyond ``threshold`` (either side, as a band
    is left above or below), the larger without a threshold; ``peak`` on a tie."""
    if value is None:
        return peak
    if peak is None:
        return value
    if threshold is None:
        return max(value, peak)
    return value if abs(value - threshold) > abs(peak - threshold) else peak


class AlertLifecycle:
    """Debounces every rule's conditions into alerts; its ``tick`` escalates and settles.

    It is also a rules-engine processor (``process`` does nothing), so adding it to the
    engine's processors gets it ticked.
    """

    sample_types = ()  # readings are the detectors' business

    def __init__(
        self,
        store: AlertStateStore,
        settings: AlertingSettings | None = None,
        *,
        sites: Collection[str] = (),
    ) -> None:
        """``sites`` are the sites this worker keeps (empty: every site): the open alerts of
        others are theirs to keep current and clear."""
        self.store = store
        self.settings = settings or store.alerting
        self._pending: dict[tuple[str, str], _Pending] = {}
        self._current: dict[tuple[str, str], _Current] = {}
        # Conditions known to have an open alert: repeated reports cost no database query.
        self._open: set[tuple[str, str]] = {
            (a.source, a.type)
            for a in store.list(state="active", limit=1_000_000)
            if keeps(sites, a.site)
        }

    def is_open(self, source: str, type_: str) -> bool:
        """True if this lifecycle raised (or found) an open alert for (source, type)."""
        return (source, type_) in self._open

    def is_pending(self, source: str, type_: str) -> bool:
        """True if (source, type) has been reported but not yet raised (debouncing)."""
        return (source, type_) in self._pending

    def is_tracked(self, source: str, type_: str) -> bool:
        """True if (source, type) is open or debouncing: its condition has to be resolved."""
        return (source, type_) in self._open or (source, type_) in self._pending

    def tracked(self, types: Collection[str]) -> set[tuple[str, str]]:
        """(source, type) pairs of ``types`` that are pending or open."""
        return {k for k in (*self._pending, *self._open) if k[1] in types}

    def report(self, condition: AlertCondition) -> Alert | None:
        """The condition holds at ``condition.at_ms``; returns the alert once it is raised."""
        key = (condition.source, condition.type)
        if key in self._open:
            if self._keep_current(key, condition):
                return None
            # Resolved by a person while the condition holds: it is raised again.
            self._open.discard(key)
            self._current.pop(key, None)
        policy = self.settings.policy(condition.type)
        at_ms = condition.at_ms
        pending = self._pending.get(key)
        if pending is None:
            pending = _Pending(first_ms=at_ms, count=0)
            self._pending[key] = pending
        pending.count += 1
        held_s = (at_ms - pending.first_ms) / 1000
        if held_s < policy.debounce_s or pending.count < policy.debounce_count:
            return None
        del self._pending[key]
        alert, created = self.store.raise_alert(
            replace(
                condition,
                severity=policy.severity or condition.severity,
                details={
                    **condition.details,
                    "debounce_count": pending.count,
                    "held_s": round(held_s, 1),
                },
            )
        )
        self._open.add(key)
        self._current[key] = _Current(written_ms=condition.at_ms, peak=alert.peak_value)
        if created:
            logger.warning(
                "%s raised for %s (alert %d)", condition.type, condition.source, alert.id
            )
        return alert

    def _keep_current(self, key: tuple[str, str], condition: AlertCondition) -> bool:
        """Write the open alert's latest sighting when due; False if no alert is open."""
        current = self._current.get(key)
        if current is None:
            # Open before this process started: start from what is stored.
            stored = self.store.active(*key)
            if stored is None:
                return False
            current = _Current(written_ms=stored.last_seen_at or stored.raised_at,
                               peak=stored.peak_value)  # fmt: skip
            self._current[key] = current
        peak = farther(condition.value, current.peak, condition.threshold)
        interval_ms = int(self.settings.update_interval_s * 1000)
        if peak == current.peak and condition.at_ms - current.written_ms < interval_ms:
            return True
        written = self.store.update_active(
            condition.source,
            condition.type,
            value=condition.value,
            peak_value=peak,
            title=condition.title,
            message=condition.message,
            details=condition.details,
            at_ms=condition.at_ms,
        )
        if written:
            current.peak = peak
            current.written_ms = max(current.written_ms, condition.at_ms)
        return written

    def resolve(
        self, source: str, type_: str, *, at_ms: int, note: str | None = None
    ) -> Alert | None:
        """The condition is gone at ``at_ms``: forget debounce progress, clear the alert."""
        key = (source, type_)
        self._pending.pop(key, None)
        self._current.pop(key, None)
        if key not in self._open:
            return None
        self._open.discard(key)
        cleared = self.store.clear(source, type_, at_ms=at_ms, note=note)
        if cleared is not None:
            logger.info("%s cleared for %s", type_, source)
        return cleared

    def process(self, samples: Sequence[Sample]) -> None:
        """Readings are the detectors' business."""
        del samples

    def tick(self, now_ms: int) -> None:
        """At ``now_ms``: escalate unacked and overdue alerts, remind of active unacked ones,
        and settle flapping ones."""
        self.store.escalate_due(now_ms)
        self.store.remind_due(now_ms)
        self.store.settle_flapping(now_ms)


def channel_health_hooks(
    lifecycle: AlertLifecycle, *, clock: Callable[[], float] = time.time
) -> tuple[ProblemHook, RecoveryHook]:
    """``(on_channel_problem, on_channel_recovered)`` for the notifier.

    A channel failing permanently raises a ``channel_health`` alert (source
    ``notifier/<channel>``, sent to every *other* channel); its first accepted message clears it.
    """

    def on_problem(channel: str, message: str) -> None:
        lifecycle.report(
            AlertCondition(
                source=f"notifier/{channel}",
                type=CHANNEL_HEALTH_TYPE,
                severity="major",
                site=CHANNEL_HEALTH_SITE,
                title=f"Notification channel {channel} is failing",
                message=message,
                details={"channel": channel},
                at_ms=int(clock() * 1000),
            )
        )

    def on_recovered(channel: str) -> None:
        lifecycle.resolve(
            f"notifier/{channel}",
            CHANNEL_HEALTH_TYPE,
            at_ms=int(clock() * 1000),
            note="the channel accepts messages again",
        )

    return on_problem, on_recovered

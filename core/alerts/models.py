"""Alert records: alerts as stored and served, a rule's condition, outbox rows and silences."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict

from core import db

Severity = Literal["critical", "major", "minor", "warning", "info"]
AlertState = Literal["active", "cleared"]
AlertEvent = Literal["raised", "cleared", "escalated", "reminder"]
# Why an alert happened, given when a person resolves it.
Cause = Literal["equipment", "process", "supplier", "data", "false_alarm", "other"]
CAUSES: tuple[Cause, ...] = ("equipment", "process", "supplier", "data", "false_alarm", "other")

INFLUX_CHANNEL = "influxdb"
CHANNEL_HEALTH_TYPE = "channel_health"


def now_ms() -> int:
    """Wall-clock time in epoch milliseconds."""
    return time.time_ns() // 1_000_000


class Alert(BaseModel):
    """An alert as stored and served.

    While it is active, ``value`` is the latest value the rule reported, ``peak_value`` the
    one farthest beyond the threshold (the largest without one) and ``last_seen_at`` the time
    of the latest report written. ``owner`` is who answers for it; ``ack_due_at`` and
    ``resolve_due_at`` its deadlines (``*_overdue_at`` when they were found passed).
    ``time_to_ack_s`` and ``time_to_resolve_s`` count from ``raised_at`` of the occurrence.
    """

    model_config = ConfigDict(frozen=True)

    id: int
    source: str
    type: str
    severity: Severity
    state: AlertState
    site: str
    zone: str | None
    title: str
    message: str
    value: float | None
    threshold: float | None
    details: dict[str, Any]
    raised_at: int
    cleared_at: int | None
    acked_by: str | None
    acked_at: int | None
    updated_at: int
    flapping: bool = False
    pending_clear_at: int | None = None
    escalated_at: int | None = None
    silenced_by: int | None = None
    occurrence: int = 0
    peak_value: float | None = None
    last_seen_at: int | None = None
    owner: str | None = None
    ack_due_at: int | None = None
    resolve_due_at: int | None = None
    ack_overdue_at: int | None = None
    resolve_overdue_at: int | None = None
    reminded_at: int | None = None
    reminders: int = 0
    resolved_by: str | None = None
    resolution_note: str | None = None
    cause: Cause | None = None
    time_to_ack_s: float | None = None
    time_to_resolve_s: float | None = None

    @classmethod
    def from_row(cls, row: db.Row) -> Alert:
        """Build from a database row."""
        data = dict(row)
        data["details"] = json.loads(data["details"])
        return cls.model_validate(data)


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertCondition:
    """A rule's sighting of a condition, handed to the lifecycle (never to the store directly).

    ``severity``, ``title`` and ``message`` are the rule's own; the lifecycle may override the
    severity per type. ``at_ms`` is the time the condition was seen (reading or clock time).
    """

    source: str
    type: str
    site: str
    zone: str | None = None
    severity: Severity
    title: str
    message: str
    value: float | None = None
    threshold: float | None = None
    details: dict[str, Any] = field(default_factory=dict)
    at_ms: int


class AlertReporter(Protocol):
    """Where rules hand conditions over: :class:`rules.lifecycle.AlertLifecycle`."""

    def report(self, condition: AlertCondition) -> Alert | None:
        """The condition holds; returns the alert once it is raised."""
        ...

    def resolve(
        self, source: str, type_: str, *, at_ms: int, note: str | None = None
    ) -> Alert | None:
        """The condition is gone; returns the cleared alert, if one was open."""
        ...

    def is_open(self, source: str, type_: str) -> bool:
        """True if an alert is open for (source, type)."""
        ...


class OutboxItem(BaseModel):
    """One pending delivery of one alert event to one channel."""

    model_config = ConfigDict(frozen=True)

    id: int
    channel: str
    alert_id: int
    event: AlertEvent
    attempts: int
    status: str
    last_error: str | None
    occurrence: int = 0
    seq: int = 0


class Silence(BaseModel):
    """A silence or maintenance window: alerts matching it notify nobody while it lasts.

    ``site``, ``zone`` and ``type`` left empty match anything.
    """

    model_config = ConfigDict(frozen=True)

    id: int
    site: str | None
    zone: str | None
    type: str | None
    starts_at: int
    ends_at: int
    created_by: str
    reason: str
    created_at: int
    deleted_at: int | None
    deleted_by: str | None

    def matches(self, site: str, zone: str | None, type_: str, at_ms: int) -> bool:
        """True if an alert of this site/zone/type at ``at_ms`` is silenced."""
        return (
            self.deleted_at is None
            and self.starts_at <= at_ms < self.ends_at
            and (self.site is None or self.site == site)
            and (self.zone is None or self.zone == zone)
            and (self.type is None or self.type == type_)
        )

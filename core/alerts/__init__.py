"""Alerts, their notification outbox and silences, stored in the relational database.

- :mod:`~core.alerts.models`: alerts, conditions, outbox rows and silences as records;
- :class:`~core.alerts.state.AlertStateStore`: raise, clear, acknowledge, list and history,
  with reopening, flapping, routing and escalation;
- :class:`~core.alerts.outbox.OutboxStore`: queued deliveries, claimed and marked by the
  notifier;
- :class:`~core.alerts.silences.SilenceStore`: silences and maintenance windows.

:class:`AlertStores` builds the three over one connection.
"""

from core.alerts.models import (
    CAUSES,
    CHANNEL_HEALTH_TYPE,
    INFLUX_CHANNEL,
    Alert,
    AlertCondition,
    AlertEvent,
    AlertReporter,
    AlertState,
    Cause,
    OutboxItem,
    Severity,
    Silence,
    now_ms,
)
from core.alerts.outbox import OutboxStore
from core.alerts.silences import SilenceStore
from core.alerts.state import AlertStateStore
from core.alerts.stores import AlertStores

__all__ = [
    "CAUSES",
    "CHANNEL_HEALTH_TYPE",
    "INFLUX_CHANNEL",
    "Alert",
    "AlertCondition",
    "AlertEvent",
    "AlertReporter",
    "AlertState",
    "AlertStateStore",
    "AlertStores",
    "Cause",
    "OutboxItem",
    "OutboxStore",
    "Severity",
    "Silence",
    "SilenceStore",
    "now_ms",
]

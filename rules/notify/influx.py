"""Writes alert events to the InfluxDB ``alerts`` measurement (Grafana annotations and tables)."""

from __future__ import annotations

from core.alerts import Alert, AlertEvent
from core.errors import InfluxWriteError
from core.influx import InfluxClient, line
from rules.notify.base import DeliveryError

MEASUREMENT = "alerts"


def alert_line(alert: Alert, event: AlertEvent) -> str:
    """One point per alert event; the alert id is a field (unbounded), type/severity are tags."""
    if event == "raised":
        at_ms = alert.raised_at
    elif event == "escalated":
        at_ms = alert.escalated_at or alert.updated_at
    else:
        at_ms = alert.cleared_at or alert.updated_at
    tags = {
        "site": alert.site,
        "zone": alert.zone or "",
        "type": alert.type,
        "severity": alert.severity,
        "event": event,
    }
    fields: dict[str, float | int | bool | str | None] = {
        "alert_id": alert.id,
        "state": "cleared" if event == "cleared" else "active",
        "title": alert.title,
        "message": alert.message,
        "source": alert.source,
        "value": alert.value,
        "threshold": alert.threshold,
    }
    return line(MEASUREMENT, tags, fields, at_ms * 1_000_000)


class InfluxAlertChannel:
    """The outbox channel that lands every alert event in InfluxDB."""

    name = "influxdb"

    def __init__(self, client: InfluxClient) -> None:
        self._client = client

    async def send(self, alert: Alert, event: AlertEvent) -> None:
        """Write one point."""
        try:
            await self._client.write((alert_line(alert, event) + "\n").encode())
        except InfluxWriteError as exc:
            raise DeliveryError(
                f"influxdb: {exc}", retry_after_s=2.0 if exc.retryable else None, code=exc.status
            ) from None

    async def aclose(self) -> None:
        """Nothing to close: the client belongs to the caller."""

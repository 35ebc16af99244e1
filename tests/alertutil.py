"""One way for tests to hand the lifecycle a condition: only what a test cares about is named."""

from __future__ import annotations

from typing import Any

from core.alerts import AlertCondition, Severity


def condition(
    source: str,
    *,
    at_ms: int,
    type: str = "sensor_offline",  # noqa: A002 - the field's own name
    site: str = "wh1",
    severity: Severity = "major",
    title: str = "t",
    message: str = "m",
    zone: str | None = None,
    value: float | None = None,
    threshold: float | None = None,
    details: dict[str, Any] | None = None,
) -> AlertCondition:
    """An :class:`AlertCondition` with placeholder texts unless the test names them."""
    return AlertCondition(
        source=source,
        type=type,
        site=site,
        zone=zone,
        severity=severity,
        title=title,
        message=message,
        value=value,
        threshold=threshold,
        details=details or {},
        at_ms=at_ms,
    )

"""What every notification channel implements, and how delivery failures are classified."""

from __future__ import annotations

from typing import Protocol

from core.alerts import Alert, AlertEvent
from core.errors import StockSenseError


class DeliveryError(StockSenseError):
    """A channel did not accept a message.

    ``retry_after_s`` is None for permanent failures (bad signature, oversize, bad key): these
    are surfaced, not retried. ``code`` carries the robot's errcode or the HTTP status.
    """

    def __init__(
        self, message: str, *, retry_after_s: float | None, code: int | None = None
    ) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.code = code

    @property
    def permanent(self) -> bool:
        """True when sending the same message again cannot succeed."""
        return self.retry_after_s is None


class Channel(Protocol):
    """A destination for alert notifications."""

    name: str

    async def send(self, alert: Alert, event: AlertEvent) -> None:
        """Deliver one alert event or raise :class:`DeliveryError`."""
        ...

    async def aclose(self) -> None:
        """Release network resources."""
        ...

"""Plain JSON webhook: the alert as JSON, for ticketing systems and custom integrations."""

from __future__ import annotations

import httpx

from core.alerts import Alert, AlertEvent
from core.settings import ChannelSettings
from rules.notify.base import DeliveryError


class WebhookChannel:
    """POSTs ``{"event": ..., "alert": {...}, "id": key}``; 2xx is success, 5xx/429 are retried.

    ``key`` (the outbox row id) is also sent as the ``Idempotency-Key`` header: a message sent
    again after a crash carries the same key, so the receiver can drop the repeat.
    """

    def __init__(
        self, settings: ChannelSettings, *, client: httpx.AsyncClient | None = None
    ) -> None:
        self.name = settings.name
        self._url = settings.url
        self._client = client or httpx.AsyncClient(timeout=10)

    async def send(self, alert: Alert, event: AlertEvent, *, key: str | None = None) -> None:
        """Deliver one alert event; ``key`` identifies the delivery for deduplication."""
        payload: dict[str, object] = {"event": event, "alert": alert.model_dump(mode="json")}
        headers: dict[str, str] = {}
        if key is not None:
            payload["id"] = key
            headers["Idempotency-Key"] = key
        try:
            response = await self._client.post(
                self._url.get_secret_value(), json=payload, headers=headers
            )
        except httpx.HTTPError as exc:
            raise DeliveryError(
                f"{self.name}: network error ({type(exc).__name__})", retry_after_s=5.0
            ) from None
        if 200 <= response.status_code < 300:
            return
        retry = 5.0 if response.status_code >= 500 or response.status_code in (408, 429) else None
        raise DeliveryError(
            f"{self.name}: HTTP {response.status_code}",
            retry_after_s=retry,
            code=response.status_code,
        )

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()

"""What every notification channel implements, and how delivery failures are classified."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import httpx

from core.alerts import Alert, AlertEvent
from core.errors import StockSenseError
from rules.notify.textsplit import redact


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


class FailureFactory(Protocol):
    """Builds the channel's DeliveryError (with its secrets redacted)."""

    def __call__(
        self, message: str, *, retry_after_s: float | None, code: int | None
    ) -> DeliveryError: ...


async def post_robot(
    client: httpx.AsyncClient,
    url: str,
    body: bytes,
    *,
    name: str,
    vendor: str,
    errcodes: Mapping[int, str],
    throttle_code: int,
    throttle_s: float,
    fail: FailureFactory,
) -> None:
    """POST a JSON body to a group robot that answers ``{"errcode", "errmsg"}``.

    Returns on errcode 0. Raises through ``fail``: network errors, 5xx and errcode -1 (busy)
    are retried soon; ``throttle_code`` waits out the robot's penalty window; anything else is
    permanent (bad key or signature, oversize, malformed).
    """
    try:
        response = await client.post(
            url, content=body, headers={"Content-Type": "application/json; charset=utf-8"}
        )
    except httpx.HTTPError as exc:
        # The exception text can carry the URL with its token: keep only its type.
        raise fail(
            f"{name}: network error ({type(exc).__name__})", retry_after_s=5.0, code=None
        ) from None
    if response.status_code >= 500:
        raise fail(
            f"{name}: HTTP {response.status_code}", retry_after_s=5.0, code=response.status_code
        )
    try:
        result = response.json()
        errcode = int(result.get("errcode", -1))
        errmsg = str(result.get("errmsg", ""))
    except (ValueError, AttributeError):
        raise fail(
            f"{name}: HTTP {response.status_code} with a non-JSON body",
            retry_after_s=30.0,
            code=response.status_code,
        ) from None
    if errcode == 0:
        return
    meaning = errcodes.get(errcode, "unknown error")
    message = f"{name}: {vendor} errcode {errcode} ({meaning}): {errmsg}"
    if errcode == throttle_code:
        raise fail(message, retry_after_s=throttle_s, code=errcode)
    if errcode == -1:
        raise fail(message, retry_after_s=5.0, code=errcode)  # system busy
    raise fail(message, retry_after_s=None, code=errcode)


class RobotChannelBase:
    """Plumbing shared by the group-robot channels; subclasses render and post."""

    name: str
    _client: httpx.AsyncClient
    _secrets: Sequence[str]

    def render(self, alert: Alert, event: AlertEvent) -> list[dict[str, Any]]:
        """The message(s) for one alert event, each within the robot's size limits."""
        raise NotImplementedError

    async def post(self, payload: dict[str, Any]) -> None:
        """POST one message or raise :class:`DeliveryError`."""
        raise NotImplementedError

    async def send(self, alert: Alert, event: AlertEvent) -> None:
        """Send one alert event (unpaced; the notifier paces through :meth:`post`)."""
        for payload in self.render(alert, event):
            await self.post(payload)

    def _fail(
        self, message: str, *, retry_after_s: float | None, code: int | None
    ) -> DeliveryError:
        return DeliveryError(redact(message, self._secrets), retry_after_s=retry_after_s, code=code)

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()

"""WeCom (企业微信) group robot: markdown messages.

Contract (WeCom docs): ``POST .../cgi-bin/webhook/send?key=...``, no signing (the key is the
secret); markdown content at most 4,096 bytes (``<@userid>`` mentions), text at most 2,048
bytes; 20 messages/minute per robot, failures count too (errcode 45009).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx

from core.alerts import Alert, AlertEvent
from core.settings import ChannelSettings
from rules.notify import render
from rules.notify.base import DeliveryError

logger = logging.getLogger(__name__)

MARKDOWN_MAX_BYTES = 4096
TEXT_MAX_BYTES = 2048
ERRCODES = {
    45009: "over the robot's rate limit (20 messages/minute)",
    93000: "invalid webhook key",
    40058: "content too long or missing",
    40008: "invalid message type",
    44004: "empty content",
}


def truncate_utf8(text: str, max_bytes: int, marker: str = "…") -> str:
    """Cut ``text`` to at most ``max_bytes`` UTF-8 bytes, never inside a character."""
    encoded = text.encode()
    if len(encoded) <= max_bytes:
        return text
    room = max_bytes - len(marker.encode())
    return encoded[:room].decode("utf-8", errors="ignore") + marker


class WeComChannel:
    """One WeCom group robot."""

    def __init__(
        self,
        settings: ChannelSettings,
        *,
        console_url: str,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.name = settings.name
        self._settings = settings
        self._console_url = console_url
        self._client = client or httpx.AsyncClient(timeout=10)

    async def send(self, alert: Alert, event: AlertEvent) -> None:
        """Send one alert event as markdown, mentioning the configured users when raised."""
        text = render.markdown(alert, event, self._settings.language, self._console_url)
        if event == "raised" and self._settings.at_user_ids:
            text += "\n" + " ".join(f"<@{u}>" for u in self._settings.at_user_ids)
        payload = {"msgtype": "markdown", "markdown": {"content": truncate_utf8(text, MARKDOWN_MAX_BYTES)}}
        await self.post(payload)

    async def post(self, payload: dict[str, Any]) -> None:
        """POST one message; raise :class:`DeliveryError` on anything but errcode 0."""
        body = json.dumps(payload, ensure_ascii=False).encode()
        try:
            response = await self._client.post(
                self._settings.url.get_secret_value(),
                content=body,
                headers={"Content-Type": "application/json; charset=utf-8"},
            )
        except httpx.HTTPError as exc:
            raise DeliveryError(
                f"{self.name}: network error ({type(exc).__name__})", retry_after_s=5.0
            ) from None
        if response.status_code >= 500:
            raise DeliveryError(
                f"{self.name}: HTTP {response.status_code}", retry_after_s=5.0, code=response.status_code
            )
        try:
            result = response.json()
            errcode = int(result.get("errcode", -1))
            errmsg = str(result.get("errmsg", ""))
        except (ValueError, AttributeError):
            raise DeliveryError(
                f"{self.name}: HTTP {response.status_code} with a non-JSON body",
                retry_after_s=30.0,
                code=response.status_code,
            ) from None
        if errcode == 0:
            return
        message = f"{self.name}: WeCom errcode {errcode} ({ERRCODES.get(errcode, 'unknown error')}): {errmsg}"
        if errcode == 45009:
            raise DeliveryError(message, retry_after_s=60.0, code=errcode)
        if errcode == -1:
            raise DeliveryError(message, retry_after_s=5.0, code=errcode)
        raise DeliveryError(message, retry_after_s=None, code=errcode)

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()

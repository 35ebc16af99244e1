"""DingTalk custom robot: signed markdown messages.

Contract (DingTalk docs): ``POST .../robot/send?access_token=...``; a signed robot adds
``&timestamp=<ms>&sign=<urlencode(base64(HMAC-SHA256(secret, f"{timestamp}\\n{secret}")))>``.
Success is ``{"errcode":0,"errmsg":"ok"}``; 130101 = over 20 messages/minute (10-minute
throttle); 310000 = keyword/sign/timestamp/IP rejected; 460101 = body over 20,000 bytes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
import urllib.parse
from typing import Any

import httpx

from core.alerts import Alert, AlertEvent
from core.settings import ChannelSettings
from rules.notify import render
from rules.notify.base import DeliveryError

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 20_000
THROTTLE_PENALTY_S = 600.0
ERRCODES = {
    130101: "sending too fast: over 20 messages per minute",
    310000: "keyword, signature, timestamp or IP allow-list rejected",
    300001: "invalid access token",
    400013: "robot disabled",
    460101: "message body over 20,000 bytes",
}


def sign(secret: str, timestamp_ms: int) -> str:
    """The URL-encoded signature for ``timestamp_ms``."""
    to_sign = f"{timestamp_ms}\n{secret}".encode()
    digest = hmac.new(secret.encode(), to_sign, hashlib.sha256).digest()
    return urllib.parse.quote_plus(base64.b64encode(digest).decode())


def signed_url(url: str, secret: str | None, timestamp_ms: int) -> str:
    """The robot URL with ``timestamp`` and ``sign`` appended when the robot is signed."""
    if not secret:
        return url
    return f"{url}&timestamp={timestamp_ms}&sign={sign(secret, timestamp_ms)}"


def markdown_payload(
    title: str, text: str, *, at_mobiles: tuple[str, ...] = (), at_user_ids: tuple[str, ...] = ()
) -> dict[str, Any]:
    """A markdown message; mentions must also appear in the text to notify on phones."""
    mentions = " ".join([f"@{m}" for m in at_mobiles] + [f"@{u}" for u in at_user_ids])
    return {
        "msgtype": "markdown",
        "markdown": {"title": title, "text": f"{text}\n\n{mentions}".rstrip()},
        "at": {"atMobiles": list(at_mobiles), "atUserIds": list(at_user_ids), "isAtAll": False},
    }


class DingTalkChannel:
    """One DingTalk robot."""

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
        """Send one alert event as markdown."""
        language = self._settings.language
        payload = markdown_payload(
            render.title(alert, event, language),
            render.markdown(alert, event, language, self._console_url),
            at_mobiles=self._settings.at_mobiles if event == "raised" else (),
            at_user_ids=self._settings.at_user_ids if event == "raised" else (),
        )
        await self.post(payload)

    async def post(self, payload: dict[str, Any]) -> None:
        """POST one message; raise :class:`DeliveryError` on anything but errcode 0."""
        body = json.dumps(payload, ensure_ascii=False).encode()
        if len(body) > MAX_BODY_BYTES:
            raise DeliveryError(
                f"{self.name}: body is {len(body)} bytes, DingTalk accepts {MAX_BODY_BYTES}",
                retry_after_s=None,
                code=460101,
            )
        secret = self._settings.secret.get_secret_value() if self._settings.secret else None
        url = signed_url(self._settings.url.get_secret_value(), secret, time.time_ns() // 1_000_000)
        try:
            response = await self._client.post(
                url, content=body, headers={"Content-Type": "application/json; charset=utf-8"}
            )
        except httpx.HTTPError as exc:
            # The exception text can carry the URL with its token: log only its type.
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
        meaning = ERRCODES.get(errcode, "unknown error")
        message = f"{self.name}: DingTalk errcode {errcode} ({meaning}): {errmsg}"
        if errcode == 130101:
            raise DeliveryError(message, retry_after_s=THROTTLE_PENALTY_S, code=errcode)
        if errcode == -1:
            raise DeliveryError(message, retry_after_s=5.0, code=errcode)  # system busy
        raise DeliveryError(message, retry_after_s=None, code=errcode)

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()

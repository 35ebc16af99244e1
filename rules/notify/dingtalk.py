"""DingTalk custom robot: signed markdown or actionCard messages.

Contract (DingTalk docs): ``POST .../robot/send?access_token=...``; a signed robot adds
``&timestamp=<ms>&sign=<urlencode(base64(HMAC-SHA256(secret, f"{timestamp}\\n{secret}")))>``,
and the timestamp must be within one hour of DingTalk's clock. Success is
``{"errcode":0,"errmsg":"ok"}``; 130101 = over 20 messages/minute (10-minute throttle);
310000 = keyword/sign/timestamp/IP rejected; 460101 = body over 20,000 bytes. ``at.atMobiles``
and ``at.atUserIds`` notify people only when the text also contains ``@<mobile>``/``@<userid>``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
import urllib.parse
from collections.abc import Callable, Sequence
from typing import Any, Literal

import httpx

from core.alerts import Alert, AlertEvent
from core.settings import ChannelSettings
from rules.notify import render
from rules.notify.base import RobotChannelBase, post_robot
from rules.notify.digest import DEFAULT_TOP, DigestEntry, build_digest
from rules.notify.textsplit import (
    json_utf8_len,
    protect_in_logs,
    split_numbered,
    url_secrets,
)

logger = logging.getLogger(__name__)

Clock = Callable[[], float]
DingTalkMsgType = Literal["markdown", "actionCard"]

MAX_BODY_BYTES = 20_000
THROTTLE_PENALTY_S = 600.0
# Bytes kept free below the body limit, against rounding in our own size arithmetic.
_BODY_MARGIN = 64
# Digest titles are short; this bounds them when sizing the body before the title is known.
_TITLE_ROOM = "x" * 120
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


def _mentions(at_mobiles: Sequence[str], at_user_ids: Sequence[str]) -> str:
    return " ".join([f"@{m}" for m in at_mobiles] + [f"@{u}" for u in at_user_ids])


def _at(at_mobiles: Sequence[str], at_user_ids: Sequence[str]) -> dict[str, Any]:
    return {"atMobiles": list(at_mobiles), "atUserIds": list(at_user_ids), "isAtAll": False}


def markdown_payload(
    title: str, text: str, *, at_mobiles: tuple[str, ...] = (), at_user_ids: tuple[str, ...] = ()
) -> dict[str, Any]:
    """A markdown message; mentions must also appear in the text to notify on phones."""
    mentions = _mentions(at_mobiles, at_user_ids)
    return {
        "msgtype": "markdown",
        "markdown": {"title": title, "text": f"{text}\n\n{mentions}".rstrip()},
        "at": _at(at_mobiles, at_user_ids),
    }


def action_card_payload(
    title: str,
    text: str,
    *,
    button: str,
    url: str,
    at_mobiles: tuple[str, ...] = (),
    at_user_ids: tuple[str, ...] = (),
) -> dict[str, Any]:
    """An actionCard with one button to ``url``; mentions are written into the text too."""
    mentions = _mentions(at_mobiles, at_user_ids)
    return {
        "msgtype": "actionCard",
        "actionCard": {
            "title": title,
            "text": f"{text}\n\n{mentions}".rstrip(),
            "btnOrientation": "0",
            "singleTitle": button,
            "singleURL": url,
        },
        "at": _at(at_mobiles, at_user_ids),
    }


def body_bytes(payload: dict[str, Any]) -> bytes:
    """The request body exactly as sent (its length is what DingTalk limits)."""
    return json.dumps(payload, ensure_ascii=False).encode()


class DingTalkChannel(RobotChannelBase):
    """One DingTalk robot.

    ``clock`` (seconds since the epoch) stamps the signature; inject the clock the receiver
    uses in tests. ``msgtype`` chooses markdown or an actionCard with a console button.
    ``timezones`` gives each site's timezone for the times in messages (UTC when not given).
    """

    rate_limit_per_minute = 20
    rate_limit_codes = frozenset({130101})
    throttle_penalty_s = THROTTLE_PENALTY_S

    def __init__(
        self,
        settings: ChannelSettings,
        *,
        console_url: str,
        client: httpx.AsyncClient | None = None,
        clock: Clock = time.time,
        msgtype: DingTalkMsgType = "markdown",
        digest_top: int = DEFAULT_TOP,
        timezones: render.SiteTimezones | None = None,
    ) -> None:
        self.name = settings.name
        self.language: render.Language = settings.language
        self.msgtype: DingTalkMsgType = msgtype
        self._settings = settings
        self._console_url = console_url
        self._client = client or httpx.AsyncClient(timeout=10)
        self._clock = clock
        self._digest_top = digest_top
        self._timezones = timezones or render.SiteTimezones()
        self._secrets = url_secrets(settings.url.get_secret_value())
        if settings.secret:
            self._secrets.append(settings.secret.get_secret_value())
        protect_in_logs(self._secrets)

    # -- rendering ------------------------------------------------------------------------

    def _payload(self, title: str, text: str, link: str, *, mention: bool) -> dict[str, Any]:
        mobiles = self._settings.at_mobiles if mention else ()
        users = self._settings.at_user_ids if mention else ()
        if self.msgtype == "actionCard":
            return action_card_payload(
                title,
                text,
                button=render.label("console", self.language),
                url=link,
                at_mobiles=mobiles,
                at_user_ids=users,
            )
        return markdown_payload(title, text, at_mobiles=mobiles, at_user_ids=users)

    def _text_budget(self, title: str, link: str) -> int:
        """Bytes left for the (JSON-escaped) text once everything else in the body is counted."""
        empty = body_bytes(self._payload(title, "", link, mention=True))
        return MAX_BODY_BYTES - len(empty) - _BODY_MARGIN

    def render(self, alert: Alert, event: AlertEvent) -> list[dict[str, Any]]:
        """Payloads for one alert event; several only when its text exceeds the body limit."""
        # The title field is shown as plain text (chat list, push notification).
        title = render.title(alert, event, self.language, "text")
        link = render.alert_link(alert, self._console_url)
        tz = self._timezones(alert.site)
        text = render.markdown(alert, event, self.language, self._console_url, tz)
        chunks = split_numbered(text, self._text_budget(title, link), measure=json_utf8_len)
        mention = event != "cleared"
        return [
            self._payload(title, chunk, link, mention=mention and i == 0)
            for i, chunk in enumerate(chunks)
        ]

    def render_digest(
        self, entries: Sequence[DigestEntry]
    ) -> list[tuple[dict[str, Any], frozenset[int]]]:
        """Digest payloads, each with the keys of the entries it names."""
        parts = build_digest(
            entries,
            language=self.language,
            console_url=self._console_url,
            max_size=self._text_budget(_TITLE_ROOM, self._console_url),
            measure=json_utf8_len,
            top=self._digest_top,
            timezones=self._timezones,
        )
        out: list[tuple[dict[str, Any], frozenset[int]]] = []
        mentioned = False
        for part in parts:
            # One notification per digest is enough; later parts arrive silently.
            mention = part.has_raised and not mentioned
            mentioned = mentioned or mention
            out.append(
                (
                    self._payload(part.title, part.text, self._console_url, mention=mention),
                    part.keys,
                )
            )
        return out

    # -- delivery -------------------------------------------------------------------------

    async def post(self, payload: dict[str, Any]) -> None:
        """POST one message; raise :class:`DeliveryError` on anything but errcode 0."""
        body = body_bytes(payload)
        if len(body) > MAX_BODY_BYTES:
            raise self._fail(
                f"{self.name}: body is {len(body)} bytes, DingTalk accepts {MAX_BODY_BYTES}",
                retry_after_s=None,
                code=460101,
            )
        secret = self._settings.secret.get_secret_value() if self._settings.secret else None
        url = signed_url(self._settings.url.get_secret_value(), secret, int(self._clock() * 1000))
        await post_robot(
            self._client,
            url,
            body,
            name=self.name,
            vendor="DingTalk",
            errcodes=ERRCODES,
            throttle_code=130101,
            throttle_s=THROTTLE_PENALTY_S,
            fail=self._fail,
        )

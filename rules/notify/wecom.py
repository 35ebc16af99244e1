"""WeCom (企业微信) group robot: markdown or text messages.

Contract (WeCom docs): ``POST .../cgi-bin/webhook/send?key=...``, no signing (the key is the
secret); markdown content at most 4,096 bytes (``<@userid>`` mentions), text content at most
2,048 bytes (mentions in ``mentioned_list`` / ``mentioned_mobile_list``); 20 messages/minute
per robot, failures count too (errcode 45009, cleared once the minute has passed).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any, Literal

import httpx

from core.alerts import Alert, AlertEvent
from core.settings import ChannelSettings
from rules.notify import render
from rules.notify.base import RobotChannelBase, post_robot
from rules.notify.digest import DEFAULT_TOP, DigestEntry, build_digest
from rules.notify.textsplit import (
    protect_in_logs,
    split_numbered,
    truncate,
    url_secrets,
    utf8_len,
)

logger = logging.getLogger(__name__)

WeComMsgType = Literal["markdown", "text"]

MARKDOWN_MAX_BYTES = 4096
TEXT_MAX_BYTES = 2048
THROTTLE_PENALTY_S = 60.0
ERRCODES = {
    45009: "over the robot's rate limit (20 messages/minute)",
    93000: "invalid webhook key",
    40058: "content too long or missing",
    40008: "invalid message type",
    44004: "empty content",
}


def truncate_utf8(text: str, max_bytes: int, marker: str = "…") -> str:
    """Cut ``text`` to at most ``max_bytes`` UTF-8 bytes, never inside a character."""
    return truncate(text, max_bytes, measure=utf8_len, marker=marker)


class WeComChannel(RobotChannelBase):
    """One WeCom group robot.

    ``msgtype`` defaults to text when mobile numbers are to be mentioned (markdown can only
    mention user ids), else markdown. ``timezones`` gives each site's timezone for the times
    in messages (UTC when not given).
    """

    rate_limit_per_minute = 20
    rate_limit_codes = frozenset({45009})
    throttle_penalty_s = THROTTLE_PENALTY_S

    def __init__(
        self,
        settings: ChannelSettings,
        *,
        console_url: str,
        client: httpx.AsyncClient | None = None,
        msgtype: WeComMsgType | None = None,
        digest_top: int = DEFAULT_TOP,
        timezones: render.SiteTimezones | None = None,
    ) -> None:
        self.name = settings.name
        self.language: render.Language = settings.language
        self.msgtype: WeComMsgType = msgtype or ("text" if settings.at_mobiles else "markdown")
        if self.msgtype == "markdown" and settings.at_mobiles:
            logger.warning(
                "%s: WeCom markdown cannot mention mobile numbers; only user ids are mentioned",
                settings.name,
            )
        self._settings = settings
        self._console_url = console_url
        self._client = client or httpx.AsyncClient(timeout=10)
        self._digest_top = digest_top
        self._timezones = timezones or render.SiteTimezones()
        self._secrets = url_secrets(settings.url.get_secret_value())
        protect_in_logs(self._secrets)

    # -- rendering ------------------------------------------------------------------------

    def _mention_suffix(self) -> str:
        if self.msgtype != "markdown" or not self._settings.at_user_ids:
            return ""
        return "\n" + " ".join(f"<@{u}>" for u in self._settings.at_user_ids)

    def _budget(self) -> int:
        """Bytes of content available before mentions are appended."""
        limit = MARKDOWN_MAX_BYTES if self.msgtype == "markdown" else TEXT_MAX_BYTES
        return limit - utf8_len(self._mention_suffix())

    def _payload(self, content: str, *, mention: bool) -> dict[str, Any]:
        if self.msgtype == "markdown":
            suffix = self._mention_suffix() if mention else ""
            return {"msgtype": "markdown", "markdown": {"content": content + suffix}}
        text: dict[str, Any] = {"content": content}
        if mention and self._settings.at_user_ids:
            text["mentioned_list"] = list(self._settings.at_user_ids)
        if mention and self._settings.at_mobiles:
            text["mentioned_mobile_list"] = list(self._settings.at_mobiles)
        return {"msgtype": "text", "text": text}

    def render(self, alert: Alert, event: AlertEvent) -> list[dict[str, Any]]:
        """Payloads for one alert event; several only when it exceeds the content limit."""
        tz = self._timezones(alert.site)
        if self.msgtype == "markdown":
            content = render.markdown(alert, event, self.language, self._console_url, tz)
        else:
            content = render.plain(alert, event, self.language, self._console_url, tz)
        chunks = split_numbered(content, self._budget())
        mention = event != "cleared"
        return [self._payload(chunk, mention=mention and i == 0) for i, chunk in enumerate(chunks)]

    def render_digest(
        self, entries: Sequence[DigestEntry]
    ) -> list[tuple[dict[str, Any], frozenset[int]]]:
        """Digest payloads, each with the keys of the entries it names."""
        parts = build_digest(
            entries,
            language=self.language,
            console_url=self._console_url,
            max_size=self._budget(),
            style="markdown" if self.msgtype == "markdown" else "text",
            top=self._digest_top,
            timezones=self._timezones,
        )
        out: list[tuple[dict[str, Any], frozenset[int]]] = []
        mentioned = False
        for part in parts:
            # One notification per digest is enough; later parts arrive silently.
            mention = part.has_raised and not mentioned
            mentioned = mentioned or mention
            out.append((self._payload(part.text, mention=mention), part.keys))
        return out

    # -- delivery -------------------------------------------------------------------------

    async def post(self, payload: dict[str, Any]) -> None:
        """POST one message; raise :class:`DeliveryError` on anything but errcode 0."""
        await post_robot(
            self._client,
            self._settings.url.get_secret_value(),
            json.dumps(payload, ensure_ascii=False).encode(),
            name=self.name,
            vendor="WeCom",
            errcodes=ERRCODES,
            throttle_code=45009,
            throttle_s=THROTTLE_PENALTY_S,
            fail=self._fail,
        )

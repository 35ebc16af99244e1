"""Local HTTP receivers that behave like the real DingTalk and WeCom group robots.

They enforce the published contracts, so the notifier is tested against the rules it will meet
in production: DingTalk signatures and the one-hour timestamp window, 20 messages per minute
per robot with the real error codes (and DingTalk's 10-minute throttle), body size limits and
JSON shapes. A plain webhook receiver records JSON posts.

Each robot also tells what a group member's client makes of a message it accepted
(:meth:`DingTalkRobot.rendered`, :meth:`WeComRobot.rendered`): the links a reader can tap, the
headings, the mentions and the tags that take effect. The model is a generous worst case over
the robots' clients, so a test that finds nothing there has found nothing a client would act on.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

logger = logging.getLogger(__name__)

Clock = Callable[[], float]
RATE_LIMIT_PER_MINUTE = 20
DINGTALK_MAX_BODY = 20_000
DINGTALK_THROTTLE_S = 600.0
DINGTALK_TIMESTAMP_WINDOW_S = 3600.0
WECOM_MARKDOWN_MAX = 4096
WECOM_TEXT_MAX = 2048


@dataclass
class Received:
    """One accepted message."""

    at: float
    body: dict[str, Any]


@dataclass
class RobotLog:
    """What a receiver saw: accepted messages and every error code it answered."""

    accepted: list[Received] = field(default_factory=list)
    errors: list[int] = field(default_factory=list)

    def texts(self) -> list[str]:
        """Markdown/text content of accepted messages."""
        out: list[str] = []
        for r in self.accepted:
            body = r.body
            kind = body.get("msgtype", "")
            part = body.get(kind) or {}
            out.append(str(part.get("text") or part.get("content") or ""))
        return out


# -- what a client renders -------------------------------------------------------------------


@dataclass(frozen=True)
class Rendering:
    """Where markup takes effect in one message, as the group's clients show it.

    ``mentions`` are the people the robot notifies; ``mention_marks`` every ``@x`` (or
    ``<@x>``) a reader takes for a mention, honoured or not. ``tags`` are HTML-ish tags the
    client interprets (``font``, ``a``). ``title`` is DingTalk's plain-text title field.
    """

    text: str
    links: tuple[str, ...] = ()
    headings: tuple[str, ...] = ()
    mentions: tuple[str, ...] = ()
    mention_marks: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    title: str = ""


# Generous on purpose: any "](" opens a link (inline links, images, nested brackets).
_LINK_TARGET = re.compile(r"\]\(\s*<?([^)\s>]*)")
_LINK_SPAN = re.compile(r"!?\[[^\]\n]*\]\([^)\n]*\)?")
_REF_DEF = re.compile(r"^ {0,3}\[([^\]\n]+)\]:[ \t]*<?([^\s>]+)>?.*$", re.MULTILINE)
_REF_USE = re.compile(r"\[([^\]\n]+)\](?:\[([^\]\n]*)\])?")
_ANGLE_LINK = re.compile(r"<([A-Za-z][A-Za-z0-9+.\-]{1,31}:[^\s<>]*|[^\s<>@]+@[^\s<>@]+)>")
_HTML_LINK = re.compile(r"<(?:a|img)\b[^>]*?\b(?:href|src)\s*=\s*[\"']?([^\"'\s>]+)", re.I)
# Bare text clients turn into links: URLs, www. hosts, e-mail addresses, host names, IPv4.
_BARE_LINKS = (
    re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s<>]+"),
    re.compile(r"www\.[\w\-][^\s<>]*", re.I),
    re.compile(r"[\w.+\-]+@[\w\-]+(?:\.[\w\-]+)+"),
    re.compile(r"[\w\-]+(?:\.[\w\-]+)*\.[^\W\d_]{2,}(?:[/:?#][^\s<>]*)?"),
    re.compile(r"\d{1,3}(?:\.\d{1,3}){3}(?:[/:?#][^\s<>]*)?"),
)
_TRAILING = ".,;:!?'\")]}"
# Block containers a heading may sit in: quotes and list items, nested.
_CONTAINERS = re.compile(r"^(?:[ \t]{0,3}(?:>[ \t]?|[-+*][ \t]+|\d{1,9}[.)][ \t]+))*")
_ATX = re.compile(r"[ \t]{0,3}#{1,6}(?:[ \t]+(.*?))?[ \t#]*")
_SETEXT = re.compile(r"[ \t]{0,3}(?:=+|-+)[ \t]*")
_HTML_HEADING = re.compile(r"<h[1-6]\b[^>]*>([^<]*)", re.I)
_TAG = re.compile(r"</?([A-Za-z][\w\-]*)(?:\s[^<>]*)?/?>")
_AT_MARK = re.compile(r"@([^\s@<>]+)")
_WECOM_MENTION = re.compile(r"<@([^<>\s]+)>")


def _take(pattern: re.Pattern[str], text: str, found: list[str], group: int = 0) -> str:
    """Collect matches of ``pattern`` into ``found``; return ``text`` with them blanked."""

    def blank(match: re.Match[str]) -> str:
        found.append(match.group(group).rstrip(_TRAILING))
        return " "

    return pattern.sub(blank, text)


def text_links(text: str) -> list[str]:
    """Links a client makes of plain text: ``<a href>``, bare URLs, hosts, addresses."""
    found: list[str] = []
    rest = _take(_HTML_LINK, text, found, 1)
    for pattern in _BARE_LINKS:
        rest = _take(pattern, rest, found)
    return found


def markdown_links(text: str) -> list[str]:
    """Links a client makes of markdown: inline and reference links, images, autolinks, bare."""
    defs: dict[str, str] = {m.group(1).strip().lower(): m.group(2) for m in _REF_DEF.finditer(text)}
    rest = _REF_DEF.sub(" ", text)
    found = [m.group(1) for m in _LINK_TARGET.finditer(rest)]
    rest = _LINK_SPAN.sub(" ", rest)

    def reference(match: re.Match[str]) -> str:
        name = (match.group(2) or match.group(1)).strip().lower()
        if name in defs:
            found.append(defs[name])
            return " "
        return match.group(0)

    rest = _REF_USE.sub(reference, rest)
    rest = _take(_ANGLE_LINK, rest, found, 1)
    return found + text_links(rest)


def markdown_headings(text: str) -> list[str]:
    """Headings: ATX (also inside quotes and list items), setext, and ``<h1>``..``<h6>``."""
    out: list[str] = []
    previous = ""
    for raw in text.splitlines():
        line = _CONTAINERS.sub("", raw)
        atx = _ATX.fullmatch(line)
        if atx:
            out.append((atx.group(1) or "").strip())
        elif _SETEXT.fullmatch(raw) and previous.strip():
            out.append(previous.strip())
        previous = raw
    out += [m.group(1).strip() for m in _HTML_HEADING.finditer(text)]
    return out


def markup_tags(text: str) -> list[str]:
    """Names of the HTML-ish tags in ``text`` (``<@userid>`` mentions are not tags)."""
    return [m.group(1).lower() for m in _TAG.finditer(text)]


def at_marks(text: str) -> list[str]:
    """Every ``@x`` in ``text``, as a reader sees mentions."""
    return [m.group(1).rstrip(_TRAILING) for m in _AT_MARK.finditer(text)]


def dingtalk_rendering(body: dict[str, Any]) -> Rendering:
    """What DingTalk's clients make of one robot message.

    ``@<mobile|userid>`` in the text notifies that person when it is also listed in
    ``at.atMobiles``/``at.atUserIds``; ``isAtAll`` notifies everyone.
    """
    kind = str(body.get("msgtype", ""))
    part: dict[str, Any] = body.get(kind) or {}
    at: dict[str, Any] = body.get("at") or {}
    listed = [str(x) for x in [*at.get("atMobiles", []), *at.get("atUserIds", [])]]
    if kind == "text":
        text = str(part.get("content", ""))
        links, headings, tags = text_links(text), [], []
    else:
        text = str(part.get("text", ""))
        links, headings, tags = markdown_links(text), markdown_headings(text), markup_tags(text)
    for key in ("singleURL", "messageUrl", "picUrl"):
        if part.get(key):
            links.append(str(part[key]))
    links += [str(b.get("actionURL", "")) for b in part.get("btns", []) if isinstance(b, dict)]
    marks = at_marks(text)
    mentions = [who for who in listed if any(mark.startswith(who) for mark in marks)]
    if at.get("isAtAll"):
        mentions.append("all")
    return Rendering(
        text=text,
        links=tuple(links),
        headings=tuple(headings),
        mentions=tuple(mentions),
        mention_marks=tuple(marks),
        tags=tuple(tags),
        title=str(part.get("title", "")),
    )


def wecom_rendering(body: dict[str, Any]) -> Rendering:
    """What WeCom's clients make of one robot message.

    Markdown mentions are ``<@userid>`` in the content; text messages mention the people in
    ``mentioned_list``/``mentioned_mobile_list`` only, though ``@x`` in the content reads alike.
    """
    kind = str(body.get("msgtype", ""))
    part: dict[str, Any] = body.get(kind) or {}
    text = str(part.get("content", ""))
    if kind == "text":
        listed = [*part.get("mentioned_list", []), *part.get("mentioned_mobile_list", [])]
        mentions = [str(x) for x in listed]
        return Rendering(
            text=text,
            links=tuple(text_links(text)),
            mentions=tuple(mentions),
            mention_marks=tuple(at_marks(text)),
            tags=tuple(markup_tags(text)),
        )
    mentions = [m.group(1) for m in _WECOM_MENTION.finditer(text)]
    plain = _WECOM_MENTION.sub(" ", text)
    return Rendering(
        text=text,
        links=tuple(markdown_links(plain)),
        headings=tuple(markdown_headings(plain)),
        mentions=tuple(mentions),
        mention_marks=tuple(mentions + at_marks(plain)),
        tags=tuple(markup_tags(plain)),
    )


class _Receiver:
    """Shared HTTP plumbing; subclasses implement ``handle``."""

    def __init__(self, *, clock: Clock = time.time) -> None:
        self.clock = clock
        self.log = RobotLog()
        self.lock = threading.Lock()
        self.condition = threading.Condition(self.lock)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                url = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
                with receiver.condition:
                    status, answer = receiver.handle(url.path, query, raw)
                    receiver.condition.notify_all()
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                del format, args

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        """The port the receiver listens on."""
        return int(self._server.server_address[1])

    def start(self) -> Self:
        """Serve in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()

    def wait_for(self, predicate: Callable[[RobotLog], bool], timeout: float) -> bool:
        """Block until ``predicate(log)`` holds or ``timeout`` s pass; returns whether it held."""
        with self.condition:
            return self.condition.wait_for(lambda: predicate(self.log), timeout=timeout)

    def handle(self, path: str, query: dict[str, str], raw: bytes) -> tuple[int, dict[str, Any]]:
        """Answer one POST; called with the lock held."""
        raise NotImplementedError


class _RateLimiter:
    """A sliding one-minute window of request times."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._times: deque[float] = deque()

    def over(self) -> bool:
        """Record a request and tell whether it exceeds 20 in the last 60 s."""
        now = self._clock()
        while self._times and now - self._times[0] >= 60:
            self._times.popleft()
        self._times.append(now)
        return len(self._times) > RATE_LIMIT_PER_MINUTE


class DingTalkRobot(_Receiver):
    """A DingTalk custom robot at ``/robot/send?access_token=...`` (signed when ``secret``)."""

    def __init__(self, access_token: str, secret: str | None, *, clock: Clock = time.time) -> None:
        super().__init__(clock=clock)
        self.access_token = access_token
        self.secret = secret
        self._rate = _RateLimiter(clock)
        self._throttled_until = 0.0

    @property
    def url(self) -> str:
        """The webhook URL the notifier is configured with."""
        return f"http://127.0.0.1:{self.port}/robot/send?access_token={self.access_token}"

    def _error(self, code: int, message: str) -> tuple[int, dict[str, Any]]:
        self.log.errors.append(code)
        return 200, {"errcode": code, "errmsg": message}

    def handle(self, path: str, query: dict[str, str], raw: bytes) -> tuple[int, dict[str, Any]]:
        """Apply the DingTalk contract."""
        now = self.clock()
        if path != "/robot/send":
            return 404, {"errcode": 404, "errmsg": "not found"}
        if query.get("access_token") != self.access_token:
            return self._error(300001, "token is not exist")
        if now < self._throttled_until:
            return self._error(130101, "send too fast, exceed 20 times per minute")
        if self._rate.over():
            self._throttled_until = now + DINGTALK_THROTTLE_S
            return self._error(130101, "send too fast, exceed 20 times per minute")
        if self.secret is not None:
            problem = self._check_signature(query, now)
            if problem:
                return self._error(310000, problem)
        if len(raw) > DINGTALK_MAX_BODY:
            return self._error(460101, "message too long, exceed 20000 bytes")
        try:
            body = json.loads(raw)
        except ValueError:
            return self._error(400, "param error: body is not JSON")
        problem = _dingtalk_shape(body)
        if problem:
            return self._error(400, problem)
        self.log.accepted.append(Received(at=now, body=body))
        return 200, {"errcode": 0, "errmsg": "ok"}

    def rendered(self) -> list[Rendering]:
        """What the group's clients show of each accepted message."""
        with self.lock:
            return [dingtalk_rendering(r.body) for r in self.log.accepted]

    def _check_signature(self, query: dict[str, str], now: float) -> str | None:
        assert self.secret is not None
        timestamp, signature = query.get("timestamp"), query.get("sign")
        if not timestamp or not signature:
            return "sign not match: timestamp and sign are required"
        if (
            not timestamp.isdigit()
            or abs(now * 1000 - int(timestamp)) > DINGTALK_TIMESTAMP_WINDOW_S * 1000
        ):
            return "timestamp is outside the one-hour window"
        digest = hmac.new(
            self.secret.encode(), f"{timestamp}\n{self.secret}".encode(), hashlib.sha256
        ).digest()
        if not hmac.compare_digest(base64.b64encode(digest).decode(), signature):
            return "sign not match"
        return None


def _dingtalk_shape(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "param error: body must be an object"
    kind = body.get("msgtype")
    if kind == "text":
        ok = isinstance(body.get("text"), dict) and isinstance(body["text"].get("content"), str)
    elif kind == "markdown":
        md = body.get("markdown")
        ok = (
            isinstance(md, dict)
            and isinstance(md.get("title"), str)
            and isinstance(md.get("text"), str)
        )
    elif kind == "actionCard":
        card = body.get("actionCard")
        ok = (
            isinstance(card, dict)
            and isinstance(card.get("title"), str)
            and isinstance(card.get("text"), str)
        )
    elif kind in ("link", "feedCard"):
        ok = isinstance(body.get(kind), dict)
    else:
        return f"param error: unknown msgtype {kind!r}"
    at = body.get("at")
    if at is not None and not (
        isinstance(at, dict)
        and all(isinstance(at.get(k, []), list) for k in ("atMobiles", "atUserIds"))
        and isinstance(at.get("isAtAll", False), bool)
    ):
        return "param error: at must hold atMobiles/atUserIds lists and isAtAll"
    return None if ok else f"param error: {kind} content is missing or malformed"


class WeComRobot(_Receiver):
    """A WeCom group robot at ``/cgi-bin/webhook/send?key=...``."""

    def __init__(self, key: str, *, clock: Clock = time.time) -> None:
        super().__init__(clock=clock)
        self.key = key
        self._rate = _RateLimiter(clock)

    @property
    def url(self) -> str:
        """The webhook URL the notifier is configured with."""
        return f"http://127.0.0.1:{self.port}/cgi-bin/webhook/send?key={self.key}"

    def _error(self, code: int, message: str) -> tuple[int, dict[str, Any]]:
        self.log.errors.append(code)
        return 200, {"errcode": code, "errmsg": message}

    def rendered(self) -> list[Rendering]:
        """What the group's clients show of each accepted message."""
        with self.lock:
            return [wecom_rendering(r.body) for r in self.log.accepted]

    def handle(self, path: str, query: dict[str, str], raw: bytes) -> tuple[int, dict[str, Any]]:
        """Apply the WeCom contract; failed requests count against the rate limit too."""
        if path != "/cgi-bin/webhook/send":
            return 404, {"errcode": 404, "errmsg": "not found"}
        if self._rate.over():
            return self._error(45009, "api freq out of limit")
        if query.get("key") != self.key:
            return self._error(93000, "invalid webhook url")
        try:
            body = json.loads(raw)
        except ValueError:
            return self._error(40035, "invalid parameter: body is not JSON")
        kind = body.get("msgtype") if isinstance(body, dict) else None
        part = body.get(kind) if isinstance(body, dict) and isinstance(kind, str) else None
        if kind not in (
            "text",
            "markdown",
            "markdown_v2",
            "news",
            "template_card",
            "image",
            "file",
        ):
            return self._error(40008, f"invalid message type {kind!r}")
        if not isinstance(part, dict):
            return self._error(40035, f"invalid parameter: {kind} must be an object")
        if kind in ("text", "markdown", "markdown_v2"):
            content = part.get("content")
            if not isinstance(content, str) or not content:
                return self._error(44004, "empty content")
            limit = WECOM_TEXT_MAX if kind == "text" else WECOM_MARKDOWN_MAX
            if len(content.encode()) > limit:
                return self._error(40058, f"content exceeds {limit} bytes")
            for list_key in ("mentioned_list", "mentioned_mobile_list"):
                if list_key in part and not isinstance(part[list_key], list):
                    return self._error(40035, f"invalid parameter: {list_key} must be a list")
        self.log.accepted.append(Received(at=self.clock(), body=body))
        return 200, {"errcode": 0, "errmsg": "ok"}


class WebhookReceiver(_Receiver):
    """Records JSON posts to ``/hook``."""

    @property
    def url(self) -> str:
        """The webhook URL."""
        return f"http://127.0.0.1:{self.port}/hook"

    def handle(self, path: str, query: dict[str, str], raw: bytes) -> tuple[int, dict[str, Any]]:
        """Accept any JSON object."""
        del query
        if path != "/hook":
            return 404, {"error": "not found"}
        try:
            body = json.loads(raw)
        except ValueError:
            self.log.errors.append(400)
            return 400, {"error": "body is not JSON"}
        self.log.accepted.append(Received(at=self.clock(), body=body))
        return 200, {"ok": True}

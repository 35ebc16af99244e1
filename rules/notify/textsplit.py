"""Text helpers for robot messages: size by UTF-8 bytes, split on line boundaries, redact secrets.

Robot limits are in bytes of UTF-8 (WeCom content) or of the whole JSON body (DingTalk), so a
Chinese character counts three and a JSON-escaped newline two. Sizes are measured with a
``measure`` callable that must be additive over concatenation (true for both measures here),
which lets the splitter pack lines without re-measuring whole chunks.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.parse
from collections.abc import Callable, Iterable

Measure = Callable[[str], int]

NUMBERING = "({i}/{n}) "
_NUMBERING_ROOM = NUMBERING.format(i=999, n=999)


def utf8_len(text: str) -> int:
    """Bytes of ``text`` in UTF-8."""
    return len(text.encode())


def json_utf8_len(text: str) -> int:
    """Bytes ``text`` takes inside a JSON string (``ensure_ascii=False``), quotes excluded."""
    return len(json.dumps(text, ensure_ascii=False).encode()) - 2


def _longest_prefix(text: str, max_size: int, measure: Measure) -> int:
    """Largest k with ``measure(text[:k]) <= max_size`` (measure grows with k)."""
    low, high = 0, len(text)
    while low < high:
        mid = (low + high + 1) // 2
        if measure(text[:mid]) <= max_size:
            low = mid
        else:
            high = mid - 1
    return low


def _cut_line(line: str, max_size: int, measure: Measure) -> list[str]:
    """Cut one over-long line into pieces, preferring a space near the end of each piece."""
    pieces: list[str] = []
    rest = line
    while measure(rest) > max_size:
        k = _longest_prefix(rest, max_size, measure)
        if k == 0:
            raise ValueError(f"a single character does not fit in {max_size}")
        space = rest.rfind(" ", 0, k)
        # A break at a space reads better, but not at the cost of tiny pieces.
        if space > k // 2:
            k = space + 1
        pieces.append(rest[:k])
        rest = rest[k:]
    if rest:
        pieces.append(rest)
    return pieces


def split_text(text: str, max_size: int, *, measure: Measure = utf8_len) -> list[str]:
    """Split ``text`` into chunks of at most ``max_size`` (by ``measure``), on line boundaries.

    Lines longer than ``max_size`` are cut between characters (never inside one, since the
    cut is made on the decoded string). Joining the chunks with ``"\\n"`` gives back the text,
    except that a line cut in the middle gains line breaks.
    """
    if max_size <= 0:
        raise ValueError("max_size must be positive")
    if measure(text) <= max_size:
        return [text]
    newline = measure("\n")
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for raw_line in text.split("\n"):
        for line in _cut_line(raw_line, max_size, measure) or [""]:
            line_size = measure(line)
            extra = line_size + (newline if current else 0)
            if current and size + extra > max_size:
                chunks.append("\n".join(current))
                current, size = [], 0
                extra = line_size
            current.append(line)
            size += extra
    if current:
        chunks.append("\n".join(current))
    return [c for c in chunks if c.strip()] or [text[: _longest_prefix(text, max_size, measure)]]


def split_numbered(text: str, max_size: int, *, measure: Measure = utf8_len) -> list[str]:
    """Like :func:`split_text`, prefixing ``(i/n)`` to every chunk when there is more than one."""
    if measure(text) <= max_size:
        return [text]
    chunks = split_text(text, max_size - measure(_NUMBERING_ROOM), measure=measure)
    n = len(chunks)
    return [NUMBERING.format(i=i, n=n) + chunk for i, chunk in enumerate(chunks, start=1)]


def truncate(text: str, max_size: int, *, measure: Measure = utf8_len, marker: str = "…") -> str:
    """Cut ``text`` to at most ``max_size``, ending with ``marker`` when something was cut."""
    if measure(text) <= max_size:
        return text
    return text[: _longest_prefix(text, max_size - measure(marker), measure)] + marker


# -- secrets -------------------------------------------------------------------------------

REDACTED = "***"
_MIN_SECRET_LEN = 6


def url_secrets(url: str) -> list[str]:
    """The query-string values of a robot URL (access_token, key): each is a credential."""
    query = urllib.parse.urlsplit(url).query
    return [v for _, v in urllib.parse.parse_qsl(query) if len(v) >= _MIN_SECRET_LEN]


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of each secret (raw or URL-encoded) replaced."""
    for secret in secrets:
        if len(secret) < _MIN_SECRET_LEN:
            continue
        text = text.replace(secret, REDACTED)
        quoted = urllib.parse.quote_plus(secret)
        if quoted != secret:
            text = text.replace(quoted, REDACTED)
    return text


class _RedactingFilter(logging.Filter):
    """Rewrites log records of HTTP client libraries, which log request URLs with their tokens."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._secrets: set[str] = set()

    def add(self, secrets: Iterable[str]) -> None:
        with self._lock:
            self._secrets.update(s for s in secrets if len(s) >= _MIN_SECRET_LEN)

    def filter(self, record: logging.LogRecord) -> bool:
        with self._lock:
            secrets = tuple(self._secrets)
        if secrets:
            message = record.getMessage()
            cleaned = redact(message, secrets)
            if cleaned != message:
                record.msg, record.args = cleaned, None
        return True


_FILTER = _RedactingFilter()
_HTTP_LOGGERS = ("httpx", "httpcore")


def protect_in_logs(secrets: Iterable[str]) -> None:
    """Keep these secrets out of the HTTP client's own log lines (httpx logs each URL at INFO)."""
    _FILTER.add(secrets)
    for name in _HTTP_LOGGERS:
        target = logging.getLogger(name)
        if _FILTER not in target.filters:
            target.addFilter(_FILTER)

"""InfluxDB client speaking only the v1 HTTP API (``/write`` line protocol, ``/query`` InfluxQL).

The same API is served by InfluxDB 1.x natively and by 2.x/3.x through their v1 compatibility
endpoints, so one client covers every deployment. See DESIGN: the v2 client cannot talk to 1.x.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from core.errors import InfluxWriteError, StoreError
from core.settings import InfluxSettings

logger = logging.getLogger(__name__)

_TAG_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": "", "\r": ""})
_MEASUREMENT_ESCAPES = str.maketrans({",": r"\,", " ": r"\ ", "\n": "", "\r": ""})


def escape_tag(value: str) -> str:
    """Escape a tag key or value (also used for field keys)."""
    return value.translate(_TAG_ESCAPES)


def escape_measurement(value: str) -> str:
    """Escape a measurement name."""
    return value.translate(_MEASUREMENT_ESCAPES)


def field_str(value: str) -> str:
    """A quoted string field value."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def field_value(value: float | int | bool | str) -> str:
    """Format one field value: integers get the ``i`` suffix, booleans are t/f."""
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        return repr(value)
    return field_str(value)


def line(
    measurement: str,
    tags: dict[str, str],
    fields: dict[str, float | int | bool | str | None],
    ts_ns: int,
) -> str:
    """One line of line protocol; ``None`` fields are left out, tags sorted as InfluxDB prefers."""
    tag_part = "".join(
        f",{escape_tag(k)}={escape_tag(v)}" for k, v in sorted(tags.items()) if v != ""
    )
    field_part = ",".join(
        f"{escape_tag(k)}={field_value(v)}" for k, v in fields.items() if v is not None
    )
    return f"{escape_measurement(measurement)}{tag_part} {field_part} {ts_ns}"


# Statuses where sending the same batch again later can succeed: InfluxDB down or overloaded
# (5xx, 408, 429), the database not created yet (404), or credentials being fixed (401, 403).
# Spooling them loses nothing; rejecting them would dead-letter every reading of an outage.
RETRYABLE_STATUSES = frozenset({401, 403, 404, 408, 429})

RefusalKind = Literal[
    "field_type_conflict",
    "invalid_field",
    "max_values_per_tag",
    "max_series",
    "beyond_retention",
    "unparsable",
    "too_large",
    "refused",
]

_QUOTED = r'"((?:[^"\\]|\\.)*)"'
_DROPPED = re.compile(r" dropped=(\d+)$")
_CONFLICT = re.compile(
    rf"field type conflict: input field {_QUOTED} on measurement {_QUOTED}"
    r" is type (\w+), already exists as type (\w+)"
)
_INVALID_FIELD = re.compile(
    rf"invalid field name: input field {_QUOTED} on measurement {_QUOTED} is invalid"
)
_MAX_VALUES = re.compile(
    rf"max-values-per-tag limit exceeded \(\d+/\d+\): measurement={_QUOTED} tag={_QUOTED}"
    rf" value={_QUOTED}"
)
_UNPARSABLE_PREFIX = "unable to parse '"
_GO_ESCAPES = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-7]{3}|.)")
_GO_SIMPLE = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


def _go_unquote(text: str) -> str:
    """Undo Go's ``%q`` quoting, which InfluxDB uses for names in its messages."""

    def one(match: re.Match[str]) -> str:
        esc = match.group(1)
        if esc[0] in "xuU" and len(esc) > 1:
            return chr(int(esc[1:], 16))
        if len(esc) == 3 and esc.isdigit():
            return chr(int(esc, 8))
        return _GO_SIMPLE.get(esc, esc)

    return _GO_ESCAPES.sub(one, text)


class InfluxRefusedError(InfluxWriteError):
    """InfluxDB refused points of a write for what they are (HTTP 400, 413, 422 ...).

    ``partial`` is True when InfluxDB stored the rest of the batch ("partial write"), and
    ``dropped`` is the count it gave: a lower bound, since with points in several shards it
    reports one shard only. InfluxDB names at most one reason per answer (the first it met),
    so :meth:`named` can only point at the lines of that reason; the writer finds the others
    by sending again.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        kind: RefusalKind,
        reason: str,
        partial: bool = False,
        dropped: int = 0,
        measurement: str | None = None,
        field: str | None = None,
        field_type: str | None = None,
        tag: str | None = None,
        tag_value: str | None = None,
        unparsable: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message, retryable=False, status=status)
        self.kind: RefusalKind = kind
        self.reason = reason
        self.partial = partial
        self.dropped = dropped
        self.measurement = measurement
        self.field = field
        self.field_type = field_type
        self.tag = tag
        self.tag_value = tag_value
        self.unparsable = unparsable or {}

    def named(self, lines: Sequence[str]) -> list[str]:
        """The lines this answer names as refused (empty when it names none).

        A bare "field type conflict" (two types of a new field in one batch) names nothing:
        the lines of the less common type are the ones to send apart.
        """
        if self.kind == "unparsable":
            return [ln for ln in lines if ln in self.unparsable]
        if self.measurement is None:
            return _minority_types(lines) if self.kind == "field_type_conflict" else []
        found: list[str] = []
        for ln in lines:
            view = LineView.parse(ln)
            if view is None or view.measurement != self.measurement:
                continue
            if self.kind == "field_type_conflict":
                if view.fields.get(self.field or "") == self.field_type:
                    found.append(ln)
            elif self.kind == "invalid_field":
                if self.field in view.fields:
                    found.append(ln)
            elif self.tag is not None and view.tags.get(self.tag) == self.tag_value:
                found.append(ln)
        return found

    def reason_for(self, line_text: str) -> str:
        """InfluxDB's words about one refused line."""
        return self.unparsable.get(line_text, self.reason)


def write_error(status: int, text: str) -> InfluxWriteError:
    """Classify a failed ``/write`` answer; refusals are parsed for what they name."""
    if status >= 500 or status in RETRYABLE_STATUSES:
        return InfluxWriteError(
            f"InfluxDB write failed with HTTP {status}: {text[:500]}", retryable=True, status=status
        )
    message = text.strip()
    try:
        payload = json.loads(message)
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        # 1.x answers {"error": ...}; 2.x and 3.x {"code": ..., "message": ...}.
        message = str(payload.get("error") or payload.get("message") or message)
    return _refusal(status, message)


def _refusal(status: int, message: str) -> InfluxRefusedError:
    reason = message
    partial = False
    dropped = 0
    marker = message.find("partial write: ")
    if marker >= 0:
        partial = True
        reason = message[marker + len("partial write: ") :]
        found = _DROPPED.search(reason)
        if found is not None:
            dropped = int(found.group(1))
            reason = reason[: found.start()]
    kind: RefusalKind = "refused"
    measurement = field = field_type = tag = tag_value = None
    unparsable: dict[str, str] = {}
    if status == 413:
        kind = "too_large"
    elif reason.startswith(_UNPARSABLE_PREFIX):
        kind, unparsable = "unparsable", _unparsable(reason)
    elif (conflict := _CONFLICT.search(reason)) is not None:
        kind, field_type = "field_type_conflict", conflict.group(3)
        field, measurement = _go_unquote(conflict.group(1)), _go_unquote(conflict.group(2))
    elif (invalid := _INVALID_FIELD.search(reason)) is not None:
        kind = "invalid_field"
        field, measurement = _go_unquote(invalid.group(1)), _go_unquote(invalid.group(2))
    elif (limit := _MAX_VALUES.search(reason)) is not None:
        kind, measurement = "max_values_per_tag", _go_unquote(limit.group(1))
        tag, tag_value = _go_unquote(limit.group(2)), _go_unquote(limit.group(3))
    elif "max-series-per-database" in reason:
        kind = "max_series"
    elif "beyond retention policy" in reason:
        kind = "beyond_retention"
    elif "field type conflict" in reason:
        kind = "field_type_conflict"  # two types of a new field within one batch: no names
    return InfluxRefusedError(
        f"InfluxDB refused a write with HTTP {status}: {message[:500]}",
        status=status,
        kind=kind,
        reason=reason,
        partial=partial,
        dropped=dropped,
        measurement=measurement,
        field=field,
        field_type=field_type,
        tag=tag,
        tag_value=tag_value,
        unparsable=unparsable,
    )


def _unparsable(reason: str) -> dict[str, str]:
    """Line -> InfluxDB's message, from ``unable to parse '<line>': <why>`` entries.

    The line is quoted verbatim (it may itself contain ``': ``), so every split point is kept
    as a candidate; :meth:`InfluxRefusedError.named` matches them against the batch.
    """
    found: dict[str, str] = {}
    for entry in reason.split("\n"):
        if not entry.startswith(_UNPARSABLE_PREFIX):
            continue
        body = entry[len(_UNPARSABLE_PREFIX) :]
        at = body.find("': ")
        while at >= 0:
            found.setdefault(body[:at], entry)
            at = body.find("': ", at + 1)
    return found


_BOOLEANS = frozenset({"t", "T", "true", "True", "TRUE", "f", "F", "false", "False", "FALSE"})


@dataclass(frozen=True, slots=True)
class LineView:
    """Measurement, tags and field types of one line of line protocol (refusals only)."""

    measurement: str
    tags: dict[str, str]
    fields: dict[str, str]  # field -> InfluxDB type: float, integer, unsigned, string, boolean

    @classmethod
    def parse(cls, text: str) -> LineView | None:
        """Read a line as InfluxDB 1.x does; None when it is not line protocol."""
        n = len(text)
        end = _unescaped(text, 0, ", ")
        if end in (0, n):
            return None
        tags: dict[str, str] = {}
        i = end
        while i < n and text[i] == ",":
            j = _unescaped(text, i + 1, ", ")
            eq = _unescaped(text, i + 1, "=", j)
            if eq >= j:
                return None
            tags[_unescape(text[i + 1 : eq])] = _unescape(text[eq + 1 : j])
            i = j
        if i >= n:
            return None
        fields: dict[str, str] = {}
        i += 1
        while i < n:
            eq = _unescaped(text, i, "=")
            if eq >= n:
                return None
            key = _unescape(text[i:eq])
            i = eq + 1
            if i < n and text[i] == '"':
                j = i + 1
                while j < n and text[j] != '"':
                    j += 2 if text[j] == "\\" else 1
                fields[key], i = "string", j + 1
            else:
                j = i
                while j < n and text[j] not in ", ":
                    j += 1
                fields[key], i = _value_type(text[i:j]), j
            if i >= n or text[i] == " ":
                break
            i += 1
        return cls(_unescape(text[:end]), tags, fields)


def _minority_types(lines: Sequence[str]) -> list[str]:
    """Lines with a field whose type is not the most common one for it in ``lines``."""
    views = [LineView.parse(ln) for ln in lines]
    counts: dict[tuple[str, str], dict[str, int]] = {}
    for view in views:
        if view is None:
            continue
        for name, type_ in view.fields.items():
            seen = counts.setdefault((view.measurement, name), {})
            seen[type_] = seen.get(type_, 0) + 1
    usual = {key: max(seen, key=seen.__getitem__) for key, seen in counts.items() if len(seen) > 1}
    return [
        ln
        for ln, view in zip(lines, views, strict=True)
        if view is not None
        and any(usual.get((view.measurement, f), t) != t for f, t in view.fields.items())
    ]


def _unescaped(text: str, start: int, stops: str, end: int | None = None) -> int:
    """Index of the first of ``stops`` from ``start`` not escaped by a backslash, else ``end``."""
    stop = len(text) if end is None else end
    for i in range(start, stop):
        if text[i] in stops and (i == 0 or text[i - 1] != "\\"):
            return i
    return stop


def _unescape(name: str) -> str:
    if "\\" not in name:
        return name
    return name.replace("\\,", ",").replace("\\=", "=").replace("\\ ", " ")


def _value_type(value: str) -> str:
    if value in _BOOLEANS:
        return "boolean"
    if value.endswith("i"):
        return "integer"
    if value.endswith("u"):
        return "unsigned"
    return "float"


class InfluxClient:
    """Async v1 HTTP client: gzip writes with clear, classified errors, and InfluxQL queries."""

    def __init__(
        self, settings: InfluxSettings, *, client: httpx.AsyncClient | None = None
    ) -> None:
        self._settings = settings
        self._client = client or httpx.AsyncClient(timeout=settings.timeout_s)
        self._owns_client = client is None

    @property
    def settings(self) -> InfluxSettings:
        """The settings this client was built with."""
        return self._settings

    def _auth(self) -> tuple[dict[str, str], dict[str, str]]:
        headers: dict[str, str] = {}
        params: dict[str, str] = {}
        if self._settings.token is not None:
            headers["Authorization"] = f"Token {self._settings.token.get_secret_value()}"
        elif self._settings.username:
            params["u"] = self._settings.username
            if self._settings.password is not None:
                params["p"] = self._settings.password.get_secret_value()
        return headers, params

    async def write(self, body: bytes, *, precision: str = "ns") -> None:
        """Write line protocol; raise :class:`InfluxWriteError` (retryable or not) on failure."""
        headers, params = self._auth()
        params["db"] = self._settings.database
        params["precision"] = precision
        if self._settings.retention_policy:
            params["rp"] = self._settings.retention_policy
        if self._settings.gzip:
            # zlib releases the GIL: compressing in a thread overlaps with message handling.
            body = await asyncio.to_thread(gzip.compress, body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        headers["Content-Type"] = "text/plain; charset=utf-8"
        try:
            response = await self._client.post(
                f"{self._settings.url}/write", params=params, content=body, headers=headers
            )
        except httpx.HTTPError as exc:
            raise InfluxWriteError(f"InfluxDB unreachable: {exc!r}", retryable=True) from exc
        if response.status_code == 204:
            return
        raise write_error(response.status_code, response.text)

    async def query(self, influxql: str, *, method: str = "GET") -> list[dict[str, Any]]:
        """Run InfluxQL and return the ``series`` of the first statement (empty if none)."""
        headers, params = self._auth()
        params["db"] = self._settings.database
        params["q"] = influxql
        params["epoch"] = "ns"
        try:
            if method == "POST":
                response = await self._client.post(
                    f"{self._settings.url}/query", data=params, headers=headers
                )
            else:
                response = await self._client.get(
                    f"{self._settings.url}/query", params=params, headers=headers
                )
        except httpx.HTTPError as exc:
            raise StoreError(f"InfluxDB unreachable: {exc!r}") from exc
        return _series(response)

    async def ensure_database(self) -> None:
        """``CREATE DATABASE`` (idempotent on 1.x; 2.x/3.x map databases to buckets instead)."""
        if self._settings.create_database:
            await self.query(f'CREATE DATABASE "{self._settings.database}"', method="POST")

    async def ping(self) -> bool:
        """True when InfluxDB answers ``/ping``."""
        try:
            response = await self._client.get(f"{self._settings.url}/ping")
        except httpx.HTTPError:
            return False
        return response.status_code == 204

    async def aclose(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._owns_client:
            await self._client.aclose()


def _series(response: httpx.Response) -> list[dict[str, Any]]:
    if response.status_code != 200:
        raise StoreError(f"InfluxDB query failed with HTTP {response.status_code}: {response.text}")
    payload = response.json()
    results = payload.get("results") or [{}]
    first = results[0]
    if "error" in first:
        raise StoreError(f"InfluxQL error: {first['error']}")
    series: list[dict[str, Any]] = first.get("series", [])
    return series


def query_sync(settings: InfluxSettings, influxql: str) -> list[dict[str, Any]]:
    """Blocking InfluxQL query, for CLIs, tests and benchmarks."""
    params = {"db": settings.database, "q": influxql, "epoch": "ns"}
    headers: dict[str, str] = {}
    if settings.token is not None:
        headers["Authorization"] = f"Token {settings.token.get_secret_value()}"
    with httpx.Client(timeout=settings.timeout_s) as client:
        return _series(client.get(f"{settings.url}/query", params=params, headers=headers))


def rows(series: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Flatten InfluxQL series into dicts (tags of grouped series merged in)."""
    out: list[dict[str, Any]] = []
    for s in series:
        columns = s["columns"]
        tags = s.get("tags") or {}
        for values in s.get("values", []):
            row = dict(zip(columns, values, strict=True))
            row.update(tags)
            out.append(row)
    return out

"""InfluxDB client speaking only the v1 HTTP API (``/write`` line protocol, ``/query`` InfluxQL).

The same API is served by InfluxDB 1.x natively and by 2.x/3.x through their v1 compatibility
endpoints, so one client covers every deployment. See DESIGN: the v2 client cannot talk to 1.x.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
from typing import Any

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
        text = response.text[:500]
        # 4xx other than 404/429 means the data itself is rejected: resending cannot help.
        retryable = response.status_code >= 500 or response.status_code in (404, 408, 429)
        if response.status_code == 400 and "partial write" in text:
            logger.warning("InfluxDB dropped part of a batch: %s", text)
            return
        raise InfluxWriteError(
            f"InfluxDB write failed with HTTP {response.status_code}: {text}",
            retryable=retryable,
            status=response.status_code,
        )

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

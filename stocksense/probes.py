"""Can the broker and InfluxDB be reached? Bounded retries at start, and the checks of /health.

A probe answers None when the service answers, else a short reason. :func:`wait_reachable`
tries every service a bounded number of times with a doubling pause, logging one line per
failed attempt that names the address, and raises :class:`ServiceError` in one line (naming
the setting to change) when one never answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import httpx

from api.routes.health import Check, HealthCheck
from core.mqtt_settings import MqttSettings
from core.settings import InfluxSettings, Settings, StartupSettings
from stocksense.devservices import ServiceError

logger = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 2.0
MAX_BACKOFF_S = 10.0

Probe = Callable[[], Awaitable[str | None]]


def _reason(exc: BaseException) -> str:
    """What went wrong, short: 'connection refused', 'host name not found', ..."""
    # httpx (and anyio below it) wrap the socket error that says it plainly.
    chain: list[BaseException] = [exc]
    while (inner := chain[-1].__cause__ or chain[-1].__context__) is not None and len(chain) < 8:
        chain.append(inner)
    exc = next((e for e in chain if isinstance(e, ConnectionRefusedError | socket.gaierror)), exc)
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return "host name not found"
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return f"no answer within {PROBE_TIMEOUT_S:.0f} s"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def broker_problem(mqtt: MqttSettings, *, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """None when the broker's port accepts a TCP connection (TLS and login come later)."""
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(mqtt.host, mqtt.port), timeout=timeout
        )
    except (OSError, TimeoutError) as exc:
        return _reason(exc)
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return None


async def influx_problem(influx: InfluxSettings, *, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """None when InfluxDB answers ``/ping`` (any answer but a 5xx: 2.x/3.x may want a token)."""
    try:
        async with httpx.AsyncClient(timeout=timeout) as client:
            response = await client.get(f"{influx.url.rstrip('/')}/ping")
    except httpx.HTTPError as exc:
        return _reason(exc)
    if response.status_code >= 500:
        return f"it answered HTTP {response.status_code}"
    return None


@dataclass(frozen=True)
class Service:
    """Something a command needs at start: how to name it, where it is, how to fix it."""

    name: str
    address: str
    setting: str
    probe: Probe


def broker(mqtt: MqttSettings) -> Service:
    """The MQTT broker of ``mqtt``."""
    return Service(
        name="MQTT broker",
        address=f"{mqtt.host}:{mqtt.port}",
        setting="STOCKSENSE_MQTT__HOST / STOCKSENSE_MQTT__PORT",
        probe=lambda: broker_problem(mqtt),
    )


def influxdb(influx: InfluxSettings) -> Service:
    """The InfluxDB of ``influx``."""
    return Service(
        name="InfluxDB",
        address=influx.url,
        setting="STOCKSENSE_INFLUX__URL",
        probe=lambda: influx_problem(influx),
    )


async def wait_reachable(services: Sequence[Service], startup: StartupSettings) -> None:
    """Return once every service answers; raise ServiceError after ``startup.attempts`` tries."""
    waiting = list(services)
    delay = startup.backoff_s
    problems: dict[Service, str] = {}
    for attempt in range(1, startup.attempts + 1):
        found = await asyncio.gather(*(service.probe() for service in waiting))
        problems = {s: p for s, p in zip(waiting, found, strict=True) if p is not None}
        if not problems:
            return
        last = attempt == startup.attempts
        for service, problem in problems.items():
            logger.warning(
                "%s at %s is not reachable (attempt %d of %d): %s%s",
                service.name,
                service.address,
                attempt,
                startup.attempts,
                problem,
                "" if last else f"; trying again in {delay:.1f} s",
            )
        if not last:
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF_S)
        waiting = list(problems)
    raise ServiceError(
        "; ".join(
            f"{service.name} at {service.address} is unreachable after {startup.attempts} "
            f"attempts ({problem}): start it, or point {service.setting} at it"
            for service, problem in problems.items()
        )
    )


def health_checks(settings: Settings) -> dict[str, HealthCheck]:
    """What /health of ``stocksense run`` checks besides the database: broker and InfluxDB."""

    async def mqtt() -> Check:
        where = f"{settings.mqtt.host}:{settings.mqtt.port}"
        problem = await broker_problem(settings.mqtt)
        return Check(ok=problem is None, detail=f"{where}: {problem or 'reachable'}")

    async def influx() -> Check:
        problem = await influx_problem(settings.influx)
        return Check(ok=problem is None, detail=f"{settings.influx.url}: {problem or 'reachable'}")

    return {"broker": mqtt, "influxdb": influx}

"""Serve the API and the ops console (and /metrics) inside an already running event loop."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.supervisors import Multiprocess

from api.app import create_app
from api.routes.health import HealthCheck, install
from core.errors import ConfigError
from core.settings import Settings
from stocksense.devservices import ServiceError


def bind(host: str, port: int, *, what: str, fix: str) -> socket.socket:
    """A listening socket on ``host:port``; ConfigError saying ``fix`` when it is taken.

    Binding before anything else starts turns "address in use" into one clear line instead
    of an error deep inside the server after the pipeline is already up.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # Named TCP, not protocol 0: asyncio sets TCP_NODELAY on accepted sockets only then, and
    # without it every keep-alive response after the first waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    # Same options as uvicorn: a port in TIME_WAIT after a restart is not "in use".
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        why = "is in use" if exc.errno == errno.EADDRINUSE else f"cannot be opened ({exc.strerror})"
        raise ConfigError(f"{what} {host}:{port} {why}: {fix}") from None
    return sock


# Requests in flight get this long to finish when the server stops.
GRACEFUL_SHUTDOWN_S = 2


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handlers: the command that embeds it owns SIGINT and
    SIGTERM and stops every part in order (uvicorn would re-raise the signal after exit)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class AsgiServer:
    """An ASGI app on a bound socket, as a task of the caller's loop; ``stop`` shuts it down."""

    def __init__(self, app: Any, sock: socket.socket) -> None:
        host, port = sock.getsockname()[:2]
        self.port: int = port
        self.url = f"http://{host}:{port}"
        # Open console event streams would hold a graceful shutdown for their whole 20 s.
        config = uvicorn.Config(
            app,
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        )
        self._server = _EmbeddedServer(config)
        self._sock = sock
        self._task: asyncio.Task[None] | None = None

    async def start(self, *, timeout: float = 10.0) -> None:
        """Start serving; returns once the server accepts connections."""
        self._task = asyncio.create_task(self._server.serve(sockets=[self._sock]), name="http")
        deadline = asyncio.get_running_loop().time() + timeout
        while not self._server.started:
            if self._task.done():
                self._task.result()  # re-raise why it could not start
                raise ServiceError(f"HTTP server at {self.url} stopped while starting")
            if asyncio.get_running_loop().time() > deadline:
                raise ServiceError(f"HTTP server at {self.url} did not start in {timeout:.0f}s")
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        """Ask the server to exit and wait for it; closes the socket."""
        if self._task is not None:
            self._server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._sock.close()


class ApiServer(AsgiServer):
    """The API and console on ``host:port`` (or an already bound ``sock``).

    ``health_checks`` and ``spool_batches`` are what ``/health`` reports besides the database.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        host: str = "127.0.0.1",
        port: int = 8000,
        sock: socket.socket | None = None,
        health_checks: Mapping[str, HealthCheck] | None = None,
        spool_batches: Callable[[], int] | None = None,
    ) -> None:
        app = create_app(settings)
        if health_checks is not None or spool_batches is not None:
            install(app, health_checks or {}, spool_batches)
        if sock is None:
            sock = bind(host, port, what="API port", fix="stop it or pass another --port")
        super().__init__(app, sock)


def worker_app() -> FastAPI:
    """The app of one ``stocksense api --workers N`` process: settings from its environment,
    which it inherits from the command."""
    from core.settings import load_settings  # noqa: PLC0415
    from stocksense.cli import configure_logging  # noqa: PLC0415

    settings = load_settings()
    configure_logging(settings.log_level)
    return create_app(settings)


def serve_workers(sock: socket.socket, workers: int) -> None:
    """Serve the API from ``workers`` processes sharing the listening socket ``sock``, until
    SIGINT or SIGTERM.

    One Python process runs on one core at a time: its requests queue behind each other's
    CPU. uvicorn's supervisor starts the processes, restarts one that dies, and stops them
    all on a signal; the kernel hands each new connection to one of them.
    """
    config = uvicorn.Config(
        "stocksense.apiserver:worker_app",
        factory=True,
        workers=workers,
        log_level="warning",
        lifespan="off",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
    try:
        Multiprocess(config, sockets=[sock]).run()
    finally:
        sock.close()

"""Serve the API and the ops console inside an already running event loop (run and demo)."""

from __future__ import annotations

import asyncio
import contextlib

import uvicorn

from api.app import create_app
from core.settings import Settings
from stocksense.devservices import ServiceError


class ApiServer:
    """uvicorn on ``host:port`` as a task of the caller's loop; ``stop`` shuts it down."""

    def __init__(self, settings: Settings, *, host: str, port: int) -> None:
        self.url = f"http://{host}:{port}"
        config = uvicorn.Config(
            create_app(settings), host=host, port=port, log_level="warning", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self, *, timeout: float = 10.0) -> None:
        """Start serving; returns once the socket listens."""
        self._task = asyncio.create_task(self._server.serve(), name="api")
        deadline = asyncio.get_running_loop().time() + timeout
        while not self._server.started:
            if self._task.done():
                self._task.result()  # re-raise why it could not start
                raise ServiceError(f"API server at {self.url} stopped while starting")
            if asyncio.get_running_loop().time() > deadline:
                raise ServiceError(f"API server at {self.url} did not start in {timeout:.0f}s")
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        """Ask the server to exit and wait for it."""
        if self._task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

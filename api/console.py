"""The ops console: one static page over the API, in Chinese and English, usable on a phone
(docs/console.md). Alert messages link to ``/console#alert-<id>``.

Also here: the stream of alert changes the console listens to (``GET /console/events``,
server-sent events), the page's own assets under ``/static``, and ``/docs`` and ``/redoc``
served with local copies of Swagger UI and ReDoc, so the API's docs work without internet.
"""

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles

from api.deps import get_settings
from api.security import CanRead
from core import db
from core.alerts import Alert
from core.auth import Principal
from core.settings import Settings

logger = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
PAGE = STATIC / "console.html"
ASSETS_PATH = "/static"
SWAGGER_JS = f"{ASSETS_PATH}/vendor/swagger-ui/swagger-ui-bundle.js"
SWAGGER_CSS = f"{ASSETS_PATH}/vendor/swagger-ui/swagger-ui.css"
REDOC_JS = f"{ASSETS_PATH}/vendor/redoc/redoc.standalone.js"
FAVICON = f"{ASSETS_PATH}/vendor/swagger-ui/favicon-32x32.png"

LANGUAGES = ("en", "zh")
# How often a stream looks for changes, and how long one response lasts: the browser's
# EventSource reconnects by itself (after RETRY_MS), so each connection signs in again (a
# session ended or revoked stops getting changes) and a server stopping waits for no stream
# longer than STREAM_S.
POLL_S = 1.0
STREAM_S = 20.0
RETRY_MS = 1000
KEEPALIVE_S = 10.0

router = APIRouter(tags=["console"])


def preferred_language(accept_language: str | None) -> str:
    """The console language for an ``Accept-Language`` header: ``zh`` or ``en`` (the default).

    The first of the two in the header's order of preference wins; ``q=0`` rules one out.
    """
    choices: list[tuple[float, int, str]] = []
    for index, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and quality > 0:
            choices.append((-quality, index, primary))
    return min(choices)[2] if choices else "en"


@router.get("/console", response_class=HTMLResponse, include_in_schema=False)
def console(request: Request) -> HTMLResponse:
    """The console page, its language preset from the browser's ``Accept-Language`` (the page
    keeps a language chosen with its switch instead)."""
    lang = preferred_language(request.headers.get("accept-language"))
    html = PAGE.read_text(encoding="utf-8")
    html = html.replace(
        '<html lang="en" data-lang="en">', f'<html lang="{lang}" data-lang="{lang}">'
    )
    return HTMLResponse(html)


class AlertWatch:
    """Changes of alerts since the last look, read cheaply enough to ask every second.

    Every lifecycle step of an alert (raised, acknowledged, assigned, escalated, cleared,
    resolved ...) appends to ``alert_events``, whose newest id is a primary-key lookup; the
    few active alerts are also compared by ``updated_at`` and their values (the latest value
    and peak change without an event). On SQLite, ``PRAGMA data_version`` says first whether
    another connection committed anything at all.
    """

    def __init__(self, conn: db.Connection) -> None:
        self._conn = conn
        self._version = self._data_version()
        self._cursor = self._last_event()
        self._active = self._active_versions()

    def _data_version(self) -> int | None:
        return self._conn.data_version()

    def _last_event(self) -> int:
        return int(
            self._conn.execute("SELECT COALESCE(MAX(id), 0) FROM alert_events").fetchone()[0]
        )

    def _active_versions(self) -> dict[int, tuple[object, ...]]:
        # Two writes within one millisecond share updated_at: the values tell them apart.
        rows = self._conn.execute(
            "SELECT id, updated_at, last_seen_at, value, peak_value, owner FROM alerts"
            " WHERE state = 'active'"
        )
        return {int(r[0]): tuple(r)[1:] for r in rows.fetchall()}

    def changes(self) -> list[Alert]:
        """Alerts changed since the previous call (or since this watch was made), by id."""
        version = self._data_version()
        if version is not None and version == self._version:
            return []
        self._version = version
        rows = self._conn.execute(
            "SELECT DISTINCT alert_id FROM alert_events WHERE id > ?", (self._cursor,)
        ).fetchall()
        changed = {int(r[0]) for r in rows}
        self._cursor = self._last_event()
        active = self._active_versions()
        changed.update(i for i, at in active.items() if self._active.get(i) != at)
        self._active = active
        if not changed:
            return []
        marks = ",".join("?" * len(changed))
        found = self._conn.execute(
            f"SELECT * FROM alerts WHERE id IN ({marks}) ORDER BY id",  # noqa: S608 - marks only
            sorted(changed),
        )
        return [Alert.from_row(r) for r in found.fetchall()]


def _event(name: str, data: str) -> str:
    return f"event: {name}\ndata: {data}\n\n"


async def alert_stream(
    settings: Settings, who: Principal, *, lifetime_s: float = STREAM_S
) -> AsyncIterator[str]:
    """Server-sent events: ``ready`` once, then ``alert`` with each changed alert of ``who``'s
    sites as JSON, a comment line every KEEPALIVE_S; ends after ``lifetime_s``."""
    conn = db.connect(settings.database)
    try:
        loop = asyncio.get_running_loop()
        watch = AlertWatch(conn)
        yield f"retry: {RETRY_MS}\n" + _event("ready", json.dumps({"user": who.name}))
        end = loop.time() + lifetime_s
        quiet_since = loop.time()
        while loop.time() < end:
            await asyncio.sleep(min(POLL_S, max(0.0, end - loop.time())))
            sent = False
            for alert in watch.changes():
                if who.covers(alert.site):
                    yield _event("alert", alert.model_dump_json())
                    sent = True
            if sent:
                quiet_since = loop.time()
            elif loop.time() - quiet_since >= KEEPALIVE_S:
                # Keeps proxies from closing an idle stream.
                yield ": keepalive\n\n"
                quiet_since = loop.time()
    finally:
        conn.close()


# Not in the OpenAPI spec: a stream for the console (docs/console.md), not a request/response
# operation a client or the schema tests would call.
@router.get("/console/events", include_in_schema=False)
def console_events(
    who: CanRead, settings: Annotated[Settings, Depends(get_settings)]
) -> StreamingResponse:
    """Alert changes of the caller's sites as server-sent events (``text/event-stream``)."""
    return StreamingResponse(
        alert_stream(settings, who),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def install_docs(app: FastAPI) -> None:
    """Serve ``/docs`` and ``/redoc`` with the local Swagger UI and ReDoc, and the console's
    assets under ``/static``. Build the app with ``docs_url=None, redoc_url=None``."""
    openapi_url = app.openapi_url or "/openapi.json"
    redirect_url = app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect"

    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=root + SWAGGER_JS,
            swagger_css_url=root + SWAGGER_CSS,
            swagger_favicon_url=root + FAVICON,
            oauth2_redirect_url=root + redirect_url,
            # The default validator badge calls a public validator service.
            swagger_ui_parameters={"validatorUrl": None},
        )

    async def swagger_ui_redirect(request: Request) -> HTMLResponse:
        del request
        return get_swagger_ui_oauth2_redirect_html()

    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        page = get_redoc_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=root + REDOC_JS,
            redoc_favicon_url=root + FAVICON,
            with_google_fonts=False,
        )
        # ReDoc shows its maker's logo from a CDN (and hides it when that fails): images
        # come from here only, so the page asks nothing of the internet.
        page.headers["Content-Security-Policy"] = "img-src 'self' data:"
        return page

    app.add_route("/docs", swagger_ui, include_in_schema=False)
    app.add_route(redirect_url, swagger_ui_redirect, include_in_schema=False)
    app.add_route("/redoc", redoc, include_in_schema=False)
    app.mount(ASSETS_PATH, StaticFiles(directory=STATIC), name="static")

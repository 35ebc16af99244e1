"""The ops console: served in the browser's language, every API call its script makes exists
with that method, its assets and those of /docs and /redoc come from the API itself, and the
stream of alert changes (server-sent events) through the real server."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import closing
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from api.app import create_app
from api.console import STATIC, AlertWatch, alert_stream, preferred_language
from core import db
from core.alerts import AlertStores
from core.auth import Principal, Role
from core.settings import Settings
from rules.lifecycle import AlertLifecycle
from stocksense.apiserver import ApiServer
from tests.alertutil import condition
from tests.authutil import bearer, store_settings

SCRIPT = STATIC / "console.js"
PAGE = STATIC / "console.html"


def _route_patterns() -> dict[str, set[str]]:
    """Path regex (with {params} as one segment) -> allowed methods, from the app's OpenAPI."""
    paths: dict[str, dict[str, object]] = create_app(Settings()).openapi()["paths"]
    return {
        "^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$": {m.upper() for m in methods}
        for path, methods in paths.items()
    }


def _calls() -> list[tuple[str, str]]:
    """(method, path) of every api(...) call in the script, template parts made concrete."""
    source = SCRIPT.read_text(encoding="utf-8")
    calls = []
    for match in re.finditer(r"api\(\s*[`\"]([^`\"]+)[`\"](?:,\s*\{method:\s*\"(\w+)\")?", source):
        path = re.sub(r"\$\{[^}]+\}", "x1", match.group(1)).split("?")[0]
        calls.append((match.group(2) or "GET", path))
    return calls


def test_every_call_of_the_script_hits_a_real_route() -> None:
    calls = set(_calls())
    # Sign-in, alerts (list, one, timeline, ack), silences (list, create, end), stock, SKUs,
    # lots, KPIs, requisitions (list, approve, reject), suggestions and picks.
    assert {
        ("POST", "/auth/login"), ("GET", "/auth/me"), ("POST", "/auth/logout"),
        ("GET", "/alerts"), ("GET", "/alerts/x1"), ("GET", "/alerts/x1/events"),
        ("POST", "/alerts/x1/ack"), ("POST", "/alerts/silences"), ("GET", "/inventory/stock"),
        ("GET", "/inventory/skus"), ("GET", "/inventory/lots"), ("GET", "/kpi"),
        ("GET", "/requisitions"), ("POST", "/requisitions/x1/approve"),
        ("POST", "/requisitions/x1/reject"), ("GET", "/inventory/picks"),
        ("POST", "/inventory/picks"), ("GET", "/alerts/silences"),
        ("DELETE", "/alerts/silences/x1"), ("GET", "/inventory/suggestions"),
        ("POST", "/inventory/suggestions/x1/x1"),
    } <= calls  # fmt: skip
    patterns = _route_patterns()
    for method, path in calls:
        matching = [methods for pattern, methods in patterns.items() if re.match(pattern, path)]
        assert matching, f"{method} {path}: no such route"
        assert any(method in methods for methods in matching), f"{method} {path}: wrong method"


def test_both_languages_have_every_word() -> None:
    source = (STATIC / "console-i18n.js").read_text(encoding="utf-8")
    en, zh = (
        set(re.findall(r'"([\w.]+)":', block))
        for block in re.split(r"\n  zh: \{", source.split("\n  en: {", 1)[1], maxsplit=1)
    )
    assert len(en) > 140
    assert en == zh
    # Keys named whole (t("stock.pick")), not those made at run time (t("sev." + s)).
    used = set(re.findall(r'\bt\("([\w.]+)"[,)]', SCRIPT.read_text(encoding="utf-8")))
    used |= set(re.findall(r'data-i18n="([\w.]+)"', PAGE.read_text(encoding="utf-8")))
    assert used <= en, used - en


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, "en"),
        ("", "en"),
        ("zh-CN,zh;q=0.9,en;q=0.8", "zh"),
        ("en-US,en;q=0.9,zh-CN;q=0.8", "en"),
        ("fr-FR, zh-TW;q=0.2", "zh"),  # the first one the console speaks
        ("de, en;q=0.3, zh;q=0.7", "zh"),  # by quality, not position
        ("zh;q=0, en;q=0.1", "en"),  # q=0 rules Chinese out
        ("zh;q=0", "en"),
        ("ZH-hans", "zh"),
        ("ja, ko", "en"),
        ("zh;q=abc, en", "en"),  # an unreadable quality counts as none
    ],
)
def test_the_language_follows_accept_language(header: str | None, expected: str) -> None:
    assert preferred_language(header) == expected


async def _get(
    app_settings: Settings, path: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    transport = httpx.ASGITransport(app=create_app(app_settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        return await client.get(path, headers=headers or {})


def test_console_is_served_as_html_in_the_browsers_language(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    english = asyncio.run(_get(settings, "/console"))
    assert english.status_code == 200
    assert english.headers["content-type"].startswith("text/html")
    assert "<title>StockSense console</title>" in english.text
    assert 'id="alerts"' in english.text
    assert '<html lang="en" data-lang="en">' in english.text
    chinese = asyncio.run(_get(settings, "/console", {"Accept-Language": "zh-CN,zh;q=0.9"}))
    assert '<html lang="zh" data-lang="zh">' in chinese.text


class _Refs(HTMLParser):
    """Every src and href of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        del tag
        self.urls += [v for k, v in attrs if k in ("src", "href") and v]


@pytest.mark.parametrize("path", ["/console", "/docs", "/redoc"])
def test_pages_load_only_assets_the_api_serves(tmp_path: Path, path: str) -> None:
    settings = Settings(data_dir=tmp_path)
    page = asyncio.run(_get(settings, path))
    assert page.status_code == 200
    parser = _Refs()
    parser.feed(page.text)
    assert len(parser.urls) >= 2
    assert all(u.startswith("/") and not u.startswith("//") for u in parser.urls), parser.urls
    text = page.text
    assert "http://" not in text  # no CDN, no web fonts
    assert "https://" not in text
    for url in parser.urls:
        asset = asyncio.run(_get(settings, url))
        assert asset.status_code == 200, url
        assert len(asset.content) > 100, url
    if path == "/docs":
        assert '"validatorUrl": null' in text
        spec = asyncio.run(_get(settings, "/openapi.json"))
        assert spec.json()["info"]["title"] == "StockSense API"
    if path == "/redoc":
        assert page.headers["content-security-policy"] == "img-src 'self' data:"


def test_assets_have_their_types_and_unknown_ones_are_404(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    js = asyncio.run(_get(settings, "/static/vendor/swagger-ui/swagger-ui-bundle.js"))
    assert js.headers["content-type"].startswith(("text/javascript", "application/javascript"))
    css = asyncio.run(_get(settings, "/static/console.css"))
    assert css.headers["content-type"].startswith("text/css")
    assert asyncio.run(_get(settings, "/static/nothing.js")).status_code == 404
    assert asyncio.run(_get(settings, "/static/../console.py")).status_code == 404


# -- the alert stream --------------------------------------------------------------------


@pytest.fixture
def stores(database: db.Target) -> Iterator[AlertStores]:
    """The alert stores over a connection of the test's own to its database."""
    conn = db.connect(database)
    try:
        yield AlertStores.over(conn, [])
    finally:
        conn.close()


def test_the_watch_sees_each_kind_of_change_once(database: db.Target, stores: AlertStores) -> None:
    lifecycle = AlertLifecycle(stores.state)
    cold = lifecycle.report(condition("wh1/cold", at_ms=1000, type="cold", value=9.0))
    assert cold is not None
    with closing(db.connect(database)) as watched:
        watch = AlertWatch(watched)
        assert watch.changes() == []

        stores.state.ack(cold.id, by="li.wei")
        assert [(a.id, a.acked_by) for a in watch.changes()] == [(cold.id, "li.wei")]
        assert watch.changes() == []  # told once

        door = lifecycle.report(condition("wh1/door", at_ms=2000, type="door"))
        assert door is not None
        assert [a.id for a in watch.changes()] == [door.id]

        # A later reading of an open alert changes its value without a lifecycle event.
        assert stores.state.update_active(
            "wh1/cold", "cold", value=10.5, peak_value=10.5, title="t", message="m", details={},
            at_ms=5000,
        )  # fmt: skip
        assert [(a.id, a.value) for a in watch.changes()] == [(cold.id, 10.5)]

        lifecycle.resolve("wh1/door", "door", at_ms=9000)
        changed = watch.changes()
        assert [(a.id, a.state) for a in changed] == [(door.id, "cleared")]


def test_a_stream_ends_by_itself(database: db.Target, tmp_path: Path) -> None:
    settings = store_settings(database, tmp_path)
    who = Principal(name="li.wei", role=Role.VIEWER, via="session")

    async def read_all() -> list[str]:
        return [chunk async for chunk in alert_stream(settings, who, lifetime_s=0.3)]

    chunks = asyncio.run(asyncio.wait_for(read_all(), timeout=10))
    assert chunks == ['retry: 1000\nevent: ready\ndata: {"user": "li.wei"}\n\n']


async def _events(response: httpx.Response) -> AsyncIterator[tuple[str, dict[str, object]]]:
    """(event, data) of each server-sent event of a streamed response."""
    name, data = "message", ""
    async for line in response.aiter_lines():
        if line.startswith("event: "):
            name = line[len("event: ") :]
        elif line.startswith("data: "):
            data = line[len("data: ") :]
        elif line == "" and data:
            yield name, json.loads(data)
            name, data = "message", ""


def test_the_stream_pushes_changes_of_the_callers_sites_through_the_server(
    database: db.Target, stores: AlertStores, tmp_path: Path
) -> None:
    settings = store_settings(database, tmp_path)
    lifecycle = AlertLifecycle(stores.state)
    wh1 = lifecycle.report(condition("wh1/cold", at_ms=1000, type="cold", site="wh1"))
    wh2 = lifecycle.report(condition("wh2/cold", at_ms=1000, type="cold", site="wh2"))
    assert wh1 is not None
    assert wh2 is not None
    everyone = bearer(settings, "viewer", "wang.fang")
    second_site = bearer(settings, "viewer", "sun.li", sites=["wh2"])

    async def run() -> tuple[int, list[tuple[str, object]], list[tuple[str, object]]]:
        server = ApiServer(settings, port=0)
        await server.start()
        try:
            async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
                refused = await client.get("/console/events")

                async def first_alert(headers: dict[str, str]) -> list[tuple[str, object]]:
                    seen: list[tuple[str, object]] = []
                    async with client.stream("GET", "/console/events", headers=headers) as r:
                        assert r.headers["content-type"].startswith("text/event-stream")
                        async for name, data in _events(r):
                            seen.append((name, data.get("id", data.get("user"))))
                            if name == "ready":
                                ready.set()
                            if name == "alert":
                                return seen
                    return seen

                ready = asyncio.Event()
                a = asyncio.create_task(first_alert(everyone))
                await asyncio.wait_for(ready.wait(), 10)
                ready.clear()
                b = asyncio.create_task(first_alert(second_site))
                await asyncio.wait_for(ready.wait(), 10)
                stores.state.ack(wh1.id, by="li.wei")
                stores.state.ack(wh2.id, by="li.wei")
                seen_a, seen_b = await asyncio.wait_for(asyncio.gather(a, b), 15)
            return refused.status_code, seen_a, seen_b
        finally:
            await server.stop()

    status, seen_a, seen_b = asyncio.run(run())
    assert status == 401
    assert seen_a == [("ready", "wang.fang"), ("alert", wh1.id)]
    # Only its own site: the first change it hears of is wh2's, though wh1's came first.
    assert seen_b == [("ready", "sun.li"), ("alert", wh2.id)]

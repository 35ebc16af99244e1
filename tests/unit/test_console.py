"""The ops console page: served, and every API call it makes exists with that method."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx

from api.app import create_app
from core.settings import Settings

PAGE = Path(__file__).resolve().parents[2] / "api" / "static" / "console.html"


def _route_patterns() -> dict[str, set[str]]:
    """Path regex (with {params} as one segment) -> allowed methods, from the app's OpenAPI."""
    paths: dict[str, dict[str, object]] = create_app(Settings()).openapi()["paths"]
    return {
        "^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$": {m.upper() for m in methods}
        for path, methods in paths.items()
    }


def _calls() -> list[tuple[str, str]]:
    """(method, path) of every api(...) call in the page, template parts made concrete."""
    source = PAGE.read_text(encoding="utf-8")
    calls = []
    for match in re.finditer(r"api\(\s*[`\"]([^`\"]+)[`\"](?:,\s*\{method:\s*\"(\w+)\")?", source):
        path = re.sub(r"\$\{[^}]+\}", "x1", match.group(1)).split("?")[0]
        calls.append((match.group(2) or "GET", path))
    return calls


def test_every_call_of_the_page_hits_a_real_route() -> None:
    calls = _calls()
    assert len(calls) >= 8  # alerts, ack, silence create/list/delete, stock, suggestions, steps
    patterns = _route_patterns()
    for method, path in calls:
        matching = [methods for pattern, methods in patterns.items() if re.match(pattern, path)]
        assert matching, f"{method} {path}: no such route"
        assert any(method in methods for methods in matching), f"{method} {path}: wrong method"


def test_console_is_served_as_html(tmp_path: Path) -> None:
    async def fetch() -> httpx.Response:
        transport = httpx.ASGITransport(app=create_app(Settings(data_dir=tmp_path)))
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            return await client.get("/console")

    response = asyncio.run(fetch())
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "<title>StockSense console</title>" in response.text
    assert 'id="alerts"' in response.text

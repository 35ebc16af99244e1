"""API over a real SQLite database."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from api.app import create_app
from core import db
from core.alerts import AlertStore
from core.settings import Settings

Scenario = Callable[[httpx.AsyncClient, AlertStore], Awaitable[None]]


def _run(tmp_path: Path, scenario: Scenario) -> None:
    """Serve the app in-process through httpx's ASGI transport."""
    settings = Settings(data_dir=tmp_path)
    store = AlertStore(db.connect(settings.sqlite_path), ["webhook"])

    async def main() -> None:
        transport = httpx.ASGITransport(app=create_app(settings))
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            await scenario(client, store)

    asyncio.run(main())


def _json(response: httpx.Response) -> Any:
    return response.json()


def test_alerts_list_get_and_ack(tmp_path: Path) -> None:
    _run(tmp_path, _list_get_and_ack)


async def _list_get_and_ack(client: httpx.AsyncClient, store: AlertStore) -> None:
    alert, _ = store.raise_alert(
        source="wh1/cold",
        type_="cold_chain_excursion",
        severity="critical",
        site="wh1",
        zone="cold",
        title="t",
        message="m",
        value=9.5,
        threshold=8.0,
        details={},
        at_ms=1000,
    )
    listed = _json(await client.get("/alerts", params={"state": "active"}))
    assert [(a["id"], a["source"], a["value"]) for a in listed] == [(alert.id, "wh1/cold", 9.5)]
    acked = await client.post(f"/alerts/{alert.id}/ack", json={"by": "li.wei"})
    assert acked.status_code == 200
    assert acked.json()["acked_by"] == "li.wei"
    assert [e["event"] for e in store.events(alert.id)] == ["raised", "acked"]
    latest = {name: len(steps) for name, steps in db.COMPONENTS.items() if steps}
    assert latest["alerts"] >= 1
    assert _json(await client.get("/health")) == {"status": "ok", "schema_versions": latest}


def test_bad_input_gets_a_clear_4xx(tmp_path: Path) -> None:
    _run(tmp_path, _bad_input)


async def _bad_input(client: httpx.AsyncClient, store: AlertStore) -> None:
    del store
    missing = await client.get("/alerts/999")
    assert missing.status_code == 404
    assert missing.json()["detail"] == "alert 999 does not exist"
    empty_actor = await client.post("/alerts/1/ack", json={"by": ""})
    assert empty_actor.status_code == 422
    assert "at least 1 character" in empty_actor.text
    assert (await client.get("/alerts", params={"state": "open"})).status_code == 422
    assert (await client.get("/alerts", params={"limit": 0})).status_code == 422

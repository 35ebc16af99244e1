"""API over a real database (SQLite or PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from api.app import create_app
from core import db
from core.alerts import AlertStores
from core.migrations import HEAD
from core.settings import Settings
from rules.lifecycle import AlertLifecycle
from tests.alertutil import condition
from tests.authutil import bearer, store_settings

Scenario = Callable[[httpx.AsyncClient, AlertStores], Awaitable[None]]


def _run(database: db.Target, tmp_path: Path, scenario: Scenario) -> None:
    """Serve the app in-process through httpx's ASGI transport."""
    settings = store_settings(database, tmp_path)
    conn = db.connect(database)
    store = AlertStores.over(conn, ["webhook"])

    async def main() -> None:
        transport = httpx.ASGITransport(app=create_app(settings))
        headers = bearer(settings, "operator")
        async with httpx.AsyncClient(
            transport=transport, base_url="http://api", headers=headers
        ) as client:
            await scenario(client, store)

    try:
        asyncio.run(main())
    finally:
        conn.close()


def _json(response: httpx.Response) -> Any:
    return response.json()


def test_alerts_list_get_and_ack(database: db.Target, tmp_path: Path) -> None:
    _run(database, tmp_path, _list_get_and_ack)


async def _list_get_and_ack(client: httpx.AsyncClient, store: AlertStores) -> None:
    alert = AlertLifecycle(store.state).report(
        condition(
            "wh1/cold",
            at_ms=1000,
            type="cold_chain_excursion",
            severity="critical",
            zone="cold",
            value=9.5,
            threshold=8.0,
        )
    )
    assert alert is not None
    listed = _json(await client.get("/alerts", params={"state": "active"}))
    assert [(a["id"], a["source"], a["value"]) for a in listed] == [(alert.id, "wh1/cold", 9.5)]
    acked = await client.post(f"/alerts/{alert.id}/ack", json={"by": "li.wei"})
    assert acked.status_code == 200
    assert acked.json()["acked_by"] == "li.wei"
    assert [e["event"] for e in store.state.events(alert.id)] == ["raised", "acked"]
    assert _json(await client.get("/health")) == {"status": "ok", "schema_revision": HEAD}


def test_bad_input_gets_a_clear_4xx(database: db.Target, tmp_path: Path) -> None:
    _run(database, tmp_path, _bad_input)


async def _bad_input(client: httpx.AsyncClient, store: AlertStores) -> None:
    del store
    missing = await client.get("/alerts/999")
    assert missing.status_code == 404
    assert missing.json()["detail"] == "alert 999 does not exist"
    empty_actor = await client.post("/alerts/1/ack", json={"by": ""})
    assert empty_actor.status_code == 422
    assert "at least 1 character" in empty_actor.text
    assert (await client.get("/alerts", params={"state": "open"})).status_code == 422
    assert (await client.get("/alerts", params={"limit": 0})).status_code == 422


def test_ids_beyond_64_bits_are_refused_not_crashed_on(database: db.Target, tmp_path: Path) -> None:
    _run(database, tmp_path, _huge_ids)


async def _huge_ids(client: httpx.AsyncClient, store: AlertStores) -> None:
    del store
    for path in ("/alerts/9223372036854775808", "/alerts/9223372036854775808/events"):
        too_big = await client.get(path)
        assert too_big.status_code == 422
        (error,) = too_big.json()["detail"]
        assert (error["loc"], error["msg"]) == (
            ["path", "alert_id"],
            "Input should be less than or equal to 9223372036854775807",
        )
    largest = await client.get("/alerts/9223372036854775807")
    assert largest.status_code == 404
    assert largest.json() == {"detail": "alert 9223372036854775807 does not exist"}
    silence = await client.delete("/alerts/silences/18446744073709551616", params={"by": "li"})
    assert silence.status_code == 422


def test_silence_bounds(database: db.Target, tmp_path: Path) -> None:
    _run(database, tmp_path, _silence_bounds)


async def _silence_bounds(client: httpx.AsyncClient, store: AlertStores) -> None:
    del store
    base = {"created_by": "li.wei", "reason": "maintenance"}
    backwards = await client.post(
        "/alerts/silences", json={**base, "starts_at": 2000, "ends_at": 1000}
    )
    assert backwards.status_code == 422
    (error,) = backwards.json()["detail"]
    assert (error["loc"], error["msg"]) == (
        ["body", "ends_at"],
        "the silence must end after it starts",
    )
    far = await client.post("/alerts/silences", json={**base, "ends_at": 2**63})
    assert far.status_code == 422
    assert far.json()["detail"][0]["loc"] == ["body", "ends_at"]
    whole = await client.post(
        "/alerts/silences", json={**base, "starts_at": 1000.0, "duration_s": 60}
    )
    assert whole.status_code == 201
    assert (whole.json()["starts_at"], whole.json()["ends_at"]) == (1000, 61_000)
    flag = await client.post("/alerts/silences", json={**base, "starts_at": True, "duration_s": 60})
    assert flag.status_code == 422


def test_a_crash_still_answers_in_the_error_shape(database: db.Target, tmp_path: Path) -> None:
    # A store that cannot be opened: a file where the SQLite file's directory should be, or
    # a PostgreSQL database that does not exist on the server.
    occupied = tmp_path / "data"
    occupied.write_text("a file where the data directory should be")
    if database.engine is db.Engine.POSTGRESQL:
        broken = Settings(data_dir=occupied, database_url=f"{database.url}_missing")
    else:
        broken = Settings(data_dir=occupied)

    async def fetch() -> httpx.Response:
        app = create_app(broken)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            return await client.get("/alerts")

    response = asyncio.run(fetch())
    assert response.status_code == 500
    assert response.json() == {"detail": "internal error"}


def test_text_with_a_nul_character_is_refused_on_either_engine(
    database: db.Target, tmp_path: Path
) -> None:
    _run(database, tmp_path, _nul_text)


async def _nul_text(client: httpx.AsyncClient, store: AlertStores) -> None:
    # PostgreSQL text cannot hold U+0000: a 422 naming the field on both engines, not a 500.
    silence = {"created_by": "li.wei", "reason": "de\x00frost", "duration_s": 60}
    refused = await client.post("/alerts/silences", json=silence)
    assert refused.status_code == 422
    assert [e["loc"] for e in refused.json()["detail"]] == [["body", "reason"]]
    listed = await client.get("/alerts", params={"owner": "li\x00wei"})
    assert listed.status_code == 422
    assert [e["loc"] for e in listed.json()["detail"]] == [["query", "owner"]]
    assert store.silences.silences() == []

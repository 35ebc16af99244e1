"""Sign-in, roles, sites, CSRF, login limits, CORS and the audit log, through the app as
``create_app`` builds it, over a real database (SQLite or PostgreSQL)."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
from argon2 import PasswordHasher

from api.app import create_app
from api.security import PUBLIC_PATHS, access_table, route_access
from core import auth as auth_module
from core import db
from core.auth import PERMISSIONS, AuthStore, Role, TokenCache
from core.inventory import InventoryStores, Sku
from core.settings import ApiSettings, Settings
from tests.authutil import api_token, bearer, store_settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "access.md"
SESSION_ROUTES = {("POST", "/auth/login"), ("POST", "/auth/logout")}

Scenario = Callable[[httpx.AsyncClient, Settings], Awaitable[None]]


def _serve(settings: Settings, scenario: Scenario) -> None:
    async def main() -> None:
        transport = httpx.ASGITransport(app=create_app(settings), client=("10.0.0.7", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            await scenario(client, settings)

    asyncio.run(main())


def _raise(settings: Settings, site: str, source: str) -> int:
    """An active alert row of ``site``, as the rules leave one."""
    conn = db.connect(settings.database)
    try:
        return conn.insert(
            "INSERT INTO alerts (source, type, severity, state, site, zone, title, message,"
            " value, threshold, raised_at, updated_at) VALUES"
            " (?, 'cold_chain_excursion', 'critical', 'active', ?, 'cold', 't', 'm', 9.5, 8.0,"
            " 1000, 1000)",
            (source, site),
        )
    finally:
        conn.close()


# -- every route is guarded -------------------------------------------------------------------


def test_every_route_requires_sign_in_and_changes_a_role_above_viewer() -> None:
    routes = route_access(create_app(Settings()))
    assert len(routes) > 40
    for method, path, permission, signed_in in routes:
        if path in PUBLIC_PATHS:
            assert not signed_in, f"{method} {path} is public by design"
            continue
        assert signed_in, f"{method} {path} answers without sign-in"
        if method != "GET" and (method, path) not in SESSION_ROUTES:
            assert permission is not None, f"{method} {path} has no permission"
            assert Role.VIEWER not in PERMISSIONS[permission], f"{method} {path}: viewer may"
        elif (method, path) not in SESSION_ROUTES and path != "/auth/me":
            assert permission is not None, f"{method} {path} has no permission"
    mutating = [r for r in routes if r[0] != "GET" and (r[0], r[1]) not in SESSION_ROUTES]
    assert len(mutating) == 29


def test_the_access_doc_lists_every_route_as_the_app_guards_it() -> None:
    text = DOC.read_text(encoding="utf-8")
    table = re.search(r"<!-- routes -->\n(.*?)<!-- /routes -->", text, re.S)
    assert table is not None
    assert table.group(1) == access_table(create_app(Settings()))


def test_the_spec_declares_both_ways_in_and_the_401_403_answers() -> None:
    spec = create_app(Settings()).openapi()
    assert set(spec["components"]["securitySchemes"]) == {"HTTPBearer", "APIKeyCookie"}
    ack = spec["paths"]["/alerts/{alert_id}/ack"]["post"]
    assert {"401", "403", "409"} <= set(ack["responses"])
    assert "security" not in spec["paths"]["/health"]["get"]


# -- tokens, roles and sites ----------------------------------------------------------------


def test_tokens_roles_and_sites(database: db.Target, tmp_path: Path) -> None:
    settings = store_settings(database, tmp_path)
    wh1 = _raise(settings, "wh1", "wh1/cold")
    wh2 = _raise(settings, "wh2", "wh2/cold")
    viewer = bearer(settings, "viewer", "zhao")
    operator = bearer(settings, "operator", "li.wei", sites=["wh1"])
    buyer = bearer(settings, "buyer", "chen")
    admin = bearer(settings, "admin", "wang")

    async def scenario(client: httpx.AsyncClient, settings: Settings) -> None:
        anonymous = await client.get("/alerts")
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"] == 'Bearer realm="stocksense"'
        wrong = await client.get("/alerts", headers={"Authorization": "Bearer not-a-token"})
        assert wrong.status_code == 401
        assert 'error="invalid_token"' in wrong.headers["www-authenticate"]
        basic = await client.get("/alerts", headers={"Authorization": "Basic bGk6d2Vp"})
        assert basic.status_code == 401
        assert (await client.get("/health")).status_code == 200
        assert (await client.get("/console")).status_code == 200

        listed = (await client.get("/alerts", headers=viewer)).json()
        assert [a["id"] for a in listed] == [wh2, wh1]
        refused = await client.post(f"/alerts/{wh1}/ack", json={}, headers=viewer)
        assert refused.status_code == 403
        assert refused.json()["detail"] == (
            "alerts.ack needs the role admin, approver, operator (you are viewer)"
        )
        assert (await client.post(f"/alerts/{wh1}/ack", json={}, headers=buyer)).status_code == 403

        # The site-limited operator sees wh1 only, and cannot touch wh2.
        mine = (await client.get("/alerts", headers=operator)).json()
        assert [a["id"] for a in mine] == [wh1]
        other = await client.get(f"/alerts/{wh2}", headers=operator)
        assert other.status_code == 403
        assert other.json()["detail"] == f"alert {wh2} belongs to site wh2, outside your sites"
        assert (
            await client.post(f"/alerts/{wh2}/ack", json={}, headers=operator)
        ).status_code == 403
        by_site = await client.get("/alerts", params={"site": "wh2"}, headers=operator)
        assert by_site.status_code == 403

        # Who acked is the signed-in user, whatever the body says, and it is not overwritten.
        acked = await client.post(f"/alerts/{wh1}/ack", json={"by": "boss"}, headers=operator)
        assert acked.status_code == 200
        assert acked.json()["acked_by"] == "li.wei"
        again = await client.post(f"/alerts/{wh1}/ack", json={}, headers=admin)
        assert again.status_code == 409
        assert again.json()["detail"] == f"alert {wh1} is acknowledged already by li.wei"

        # A silence of every site is refused to a site-limited user; of their own site, fine.
        silence = {"duration_s": 3600, "reason": "defrost"}
        everywhere = await client.post("/alerts/silences", json=silence, headers=operator)
        assert everywhere.status_code == 403
        own = await client.post("/alerts/silences", json={**silence, "site": "wh1"},
                                headers=operator)  # fmt: skip
        assert own.status_code == 201
        assert own.json()["created_by"] == "li.wei"
        wh2_silence = await client.post(
            "/alerts/silences", json={**silence, "site": "wh2"}, headers=admin
        )
        assert [
            s["site"] for s in (await client.get("/alerts/silences", headers=operator)).json()
        ] == ["wh1"]
        end = await client.delete(f"/alerts/silences/{wh2_silence.json()['id']}", headers=operator)
        assert end.status_code == 403

        # Catalog and lots are admin's; the buyer orders.
        sku = {"sku": "TEA", "min_qty": 10, "max_qty": 40}
        assert (await client.post("/inventory/skus", json=sku, headers=buyer)).status_code == 403
        assert (await client.post("/inventory/skus", json=sku, headers=operator)).status_code == 403
        lot = {"lot": "L1", "sku": "TEA", "site": "wh1", "location": "A1", "qty": 1_000_000}
        assert (await client.post("/inventory/lots", json=lot, headers=operator)).status_code == 403
        assert (await client.delete("/inventory/skus/TEA", headers=operator)).status_code == 403

    _serve(settings, scenario)


def test_a_removed_user_or_revoked_token_is_refused_at_once(
    database: db.Target, tmp_path: Path
) -> None:
    settings = store_settings(database, tmp_path)
    token = api_token(settings, "viewer", "zhao")
    second = api_token(settings, "viewer", "zhao")

    async def scenario(client: httpx.AsyncClient, settings: Settings) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        assert (await client.get("/auth/me", headers=headers)).json()["name"] == "zhao"
        conn = db.connect(settings.database)
        try:
            AuthStore(conn).revoke_token(token[:8])
            assert (await client.get("/alerts", headers=headers)).status_code == 401
            other = {"Authorization": f"Bearer {second}"}
            assert (await client.get("/alerts", headers=other)).status_code == 200
            AuthStore(conn).remove_user("zhao")
            assert (await client.get("/alerts", headers=other)).status_code == 401
        finally:
            conn.close()

    _serve(settings, scenario)


def test_stored_secrets_are_argon2_hashes(database: db.Target) -> None:
    conn = db.connect(database)
    try:
        store = AuthStore(conn)
        _, password = store.add_user("li.wei", Role.OPERATOR, ["wh1"])
        _, token = store.create_token("li.wei")
        (user,) = conn.execute("SELECT password_hash FROM auth_users").fetchall()
        (row,) = conn.execute("SELECT prefix, token_hash FROM auth_tokens").fetchall()
    finally:
        conn.close()
    assert user[0].startswith("$argon2id$")
    assert password not in user[0]
    assert row[1].startswith("$argon2id$")
    assert token not in row[1]
    assert row[0] == token[:8]
    assert len(token) == 43


def test_users_are_listed_by_name_in_code_point_order(database: db.Target) -> None:
    conn = db.connect(database)
    try:
        store = AuthStore(conn)
        for name in ("zhao", "li_wei", "Wang", "li.wei", "liwei", "陈杰"):
            store.add_user(name, Role.VIEWER)
        listed = [user.name for user in store.users()]
    finally:
        conn.close()
    assert listed == ["Wang", "li.wei", "li_wei", "liwei", "zhao", "陈杰"]


# -- console sessions -------------------------------------------------------------------------


def _user(settings: Settings, name: str, role: Role, sites: tuple[str, ...] = ()) -> str:
    conn = db.connect(settings.database)
    try:
        return AuthStore(conn).add_user(name, role, sites)[1]
    finally:
        conn.close()


def test_console_session_with_csrf(database: db.Target, tmp_path: Path) -> None:
    settings = store_settings(database, tmp_path)
    password = _user(settings, "li.wei", Role.OPERATOR)
    alert = _raise(settings, "wh1", "wh1/cold")

    async def scenario(client: httpx.AsyncClient, settings: Settings) -> None:
        login = await client.post("/auth/login", json={"username": "li.wei", "password": password})
        assert login.status_code == 200
        cookie = login.headers["set-cookie"]
        assert cookie.startswith("stocksense_session=")
        assert {"HttpOnly", "SameSite=strict", "Max-Age=28800", "Path=/"} <= {
            part.strip() for part in cookie.split(";")
        }
        me = login.json()
        assert (me["name"], me["role"], me["via"]) == ("li.wei", "operator", "session")
        csrf = me["csrf_token"]
        assert (await client.get("/alerts")).status_code == 200  # reads need no CSRF
        assert (await client.get("/auth/me")).json()["csrf_token"] == csrf
        bare = await client.post(f"/alerts/{alert}/ack", json={})
        assert bare.status_code == 403
        assert bare.json()["detail"] == "a change from a session needs the X-CSRF-Token header"
        forged = await client.post(f"/alerts/{alert}/ack", json={}, headers={"X-CSRF-Token": "x"})
        assert forged.status_code == 403
        acked = await client.post(f"/alerts/{alert}/ack", json={}, headers={"X-CSRF-Token": csrf})
        assert acked.status_code == 200
        assert acked.json()["acked_by"] == "li.wei"
        assert (await client.post("/auth/logout")).status_code == 403  # CSRF applies to it too
        out = await client.post("/auth/logout", headers={"X-CSRF-Token": csrf})
        assert out.status_code == 204
        session = login.cookies["stocksense_session"]
        client.cookies.set("stocksense_session", session)  # kept by a client despite logout
        after = await client.get("/alerts")
        assert after.status_code == 401
        assert after.json()["detail"] == "the session has expired: sign in again"

    _serve(settings, scenario)


def test_sessions_expire(database: db.Target, tmp_path: Path) -> None:
    settings = store_settings(database, tmp_path, api=ApiSettings(session_ttl_s=2.0))
    password = _user(settings, "li.wei", Role.VIEWER)

    async def scenario(client: httpx.AsyncClient, settings: Settings) -> None:
        login = await client.post("/auth/login", json={"username": "li.wei", "password": password})
        assert (await client.get("/alerts")).status_code == 200
        await asyncio.sleep(2.1)  # past the TTL: sessions expire on the wall clock
        assert (await client.get("/alerts")).status_code == 401
        del login

    _serve(settings, scenario)


def test_failed_logins_are_limited_per_name_and_per_address(
    database: db.Target, tmp_path: Path
) -> None:
    settings = store_settings(database, tmp_path)
    password = _user(settings, "li.wei", Role.VIEWER)

    async def scenario(client: httpx.AsyncClient, settings: Settings) -> None:
        for _ in range(5):
            bad = await client.post("/auth/login", json={"username": "li.wei", "password": "no"})
            assert bad.status_code == 401
            assert bad.json()["detail"] == "wrong name or password"
        right = await client.post("/auth/login", json={"username": "li.wei", "password": password})
        assert right.status_code == 429
        assert 295 <= int(right.headers["retry-after"]) <= 300
        assert right.json()["detail"].startswith("too many failed logins: try again in ")
        assert "set-cookie" not in right.headers

    _serve(settings, scenario)

    # Another address may still sign in with the right password: the name is limited, and
    # the address of the failures, not the user everywhere ... until the name's count runs out.
    conn = db.connect(settings.database)
    try:
        conn.execute("DELETE FROM auth_login_failures WHERE key LIKE 'user:%'")
    finally:
        conn.close()

    async def same_address(client: httpx.AsyncClient, settings: Settings) -> None:
        blocked = await client.post(
            "/auth/login", json={"username": "li.wei", "password": password}
        )
        assert blocked.status_code == 429  # the address 10.0.0.7 is still over its limit

    _serve(settings, same_address)

    async def other_address() -> None:
        transport = httpx.ASGITransport(app=create_app(settings), client=("10.0.0.8", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            ok = await client.post("/auth/login", json={"username": "li.wei", "password": password})
            assert ok.status_code == 200

    asyncio.run(other_address())


def test_unknown_names_count_against_the_address(database: db.Target, tmp_path: Path) -> None:
    settings = store_settings(database, tmp_path, api=ApiSettings(login_max_failures=3))

    async def scenario(client: httpx.AsyncClient, settings: Settings) -> None:
        codes = [
            (
                await client.post("/auth/login", json={"username": f"u{i}", "password": "x"})
            ).status_code
            for i in range(4)
        ]
        assert codes == [401, 401, 401, 429]

    _serve(settings, scenario)


# -- CORS -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("origins", "expected"),
    [((), None), (("https://erp.wh1.internal",), "https://erp.wh1.internal")],
)
def test_cors_is_off_unless_origins_are_configured(
    database: db.Target, tmp_path: Path, origins: tuple[str, ...], expected: str | None
) -> None:
    settings = store_settings(database, tmp_path, api=ApiSettings(cors_origins=origins))
    headers = bearer(settings, "viewer", "erp")

    async def scenario(client: httpx.AsyncClient, settings: Settings) -> None:
        origin = {"Origin": "https://erp.wh1.internal"}
        got = await client.get("/alerts", headers={**headers, **origin})
        assert got.status_code == 200
        assert got.headers.get("access-control-allow-origin") == expected
        assert "access-control-allow-credentials" not in got.headers
        evil = await client.get("/alerts", headers={**headers, "Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in evil.headers

    _serve(settings, scenario)


def test_sign_in_can_be_turned_off(database: db.Target, tmp_path: Path) -> None:
    settings = store_settings(database, tmp_path, api=ApiSettings(auth=False))
    alert = _raise(settings, "wh1", "wh1/cold")

    async def scenario(client: httpx.AsyncClient, settings: Settings) -> None:
        acked = await client.post(f"/alerts/{alert}/ack", json={"by": "li.wei"})
        assert acked.json()["acked_by"] == "li.wei"

    _serve(settings, scenario)


# -- audit ------------------------------------------------------------------------------------


def _entries(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    body: list[dict[str, Any]] = response.json()
    return body


def test_every_change_is_audited_with_before_and_after(database: db.Target, tmp_path: Path) -> None:
    settings = store_settings(database, tmp_path)
    alert = _raise(settings, "wh1", "wh1/cold")
    conn = db.connect(settings.database)
    try:
        inventory = InventoryStores.over(conn)
        suggestion = inventory.planning.add_suggestion(
            site="wh1", sku="TEA", qty=36, reason="min", projected=9, trigger_level=10, ts_ms=1
        )
        inventory.catalog.put_sku(Sku(sku="TEA", min_qty=10, max_qty=40, pack_multiple=6))
    finally:
        conn.close()
    admin = bearer(settings, "admin", "wang")
    operator = bearer(settings, "operator", "li.wei")
    buyer = bearer(settings, "buyer", "chen")

    async def scenario(client: httpx.AsyncClient, settings: Settings) -> None:
        async def ok(response: Awaitable[httpx.Response]) -> dict[str, Any]:
            answer = await response
            assert answer.status_code < 300, answer.text
            return answer.json() if answer.content else {}

        await ok(client.post(f"/alerts/{alert}/ack", json={}, headers=operator))
        silence = await ok(client.post("/alerts/silences", json={"site": "wh1", "duration_s": 60,
                                                                 "reason": "defrost"},
                                       headers=operator))  # fmt: skip
        await ok(client.delete(f"/alerts/silences/{silence['id']}", headers=operator))
        rice = {"sku": "RICE", "unit_grams": 1000, "max_qty": 20}
        await ok(client.post("/inventory/skus", json=rice, headers=admin))
        await ok(client.put("/inventory/skus/RICE", json={**rice, "max_qty": 30}, headers=admin))
        shelf = {"site": "wh1", "device": "s1", "cell": "c1", "sku": "RICE"}
        await ok(client.put("/inventory/shelves/wh1/s1/c1", json=shelf, headers=admin))
        await ok(client.delete("/inventory/shelves/wh1/s1/c1", headers=admin))
        zone = {"site": "wh1", "device": "dock", "antenna": 1, "zone": "in"}
        await ok(client.put("/inventory/rfid-zones/wh1/dock/1", json=zone, headers=admin))
        await ok(client.delete("/inventory/rfid-zones/wh1/dock/1", headers=admin))
        lot_in = {"lot": "L1", "sku": "RICE", "site": "wh1", "location": "A1", "qty": 8}
        lot = await ok(client.post("/inventory/lots", json=lot_in, headers=admin))
        await ok(client.patch(f"/inventory/lots/{lot['id']}", json={"qty": 0}, headers=admin))
        await ok(client.delete(f"/inventory/lots/{lot['id']}", headers=admin))
        await ok(client.delete("/inventory/skus/RICE", headers=admin))
        await ok(client.post(f"/inventory/suggestions/{suggestion.id}/ordered", json={},
                             headers=buyer))  # fmt: skip
        line = {"site": "wh1", "sku": "TEA", "qty": 5, "due_at": 2_000_000_000_000}
        demand = await ok(client.post("/inventory/demand", json=line, headers=buyer))
        await ok(client.post(f"/inventory/demand/{demand['id']}/fulfilled", headers=buyer))
        await ok(client.post("/inventory/inbound", json={"site": "wh1", "sku": "TEA", "qty": 6},
                             headers=buyer))  # fmt: skip

        assert (await client.get("/audit", headers=operator)).status_code == 403
        entries = _entries(await client.get("/audit", headers=admin))
        assert [(e["actor"], e["action"]) for e in entries] == [
            ("li.wei", "alert.ack"), ("li.wei", "silence.create"), ("li.wei", "silence.end"),
            ("wang", "sku.create"), ("wang", "sku.put"), ("wang", "shelf.put"),
            ("wang", "shelf.delete"), ("wang", "rfid_zone.put"), ("wang", "rfid_zone.delete"),
            ("wang", "lot.create"), ("wang", "lot.update"), ("wang", "lot.delete"),
            ("wang", "sku.delete"), ("chen", "suggestion.ordered"), ("chen", "demand.create"),
            ("chen", "demand.fulfilled"), ("chen", "inbound.create"),
        ]  # fmt: skip
        ack = entries[0]
        assert (ack["before"]["acked_by"], ack["after"]["acked_by"]) == (None, "li.wei")
        assert (ack["via"], ack["role"], ack["site"], ack["target"]) == (
            "token", "operator", "wh1", f"alert {alert}",
        )  # fmt: skip
        put = entries[4]
        assert (put["before"]["max_qty"], put["after"]["max_qty"]) == (20, 30)
        assert (entries[12]["before"]["sku"], entries[12]["after"]) == ("RICE", None)
        assert entries[3]["before"] is None
        lot_change = entries[10]
        assert (lot_change["before"]["qty"], lot_change["after"]["qty"]) == (8, 0)
        ordered = entries[13]
        assert (ordered["before"]["state"], ordered["after"]["state"]) == ("suggested", "ordered")

        by_actor = _entries(await client.get("/audit", params={"actor": "chen"}, headers=admin))
        assert [e["action"] for e in by_actor] == [
            "suggestion.ordered", "demand.create", "demand.fulfilled", "inbound.create",
        ]  # fmt: skip
        middle = entries[5]["at"]
        since = _entries(await client.get("/audit", params={"since": middle}, headers=admin))
        assert all(e["at"] >= middle for e in since)
        assert since[0]["at"] == middle
        until = _entries(await client.get("/audit", params={"until": middle}, headers=admin))
        assert all(e["at"] < middle for e in until)
        assert len(since) + len(until) == len(entries)

    _serve(settings, scenario)


def test_the_console_page_signs_in_and_sends_the_csrf_header() -> None:
    static = Path(__file__).resolve().parents[2] / "api" / "static"
    page = (static / "console.html").read_text() + (static / "console.js").read_text()
    assert '<form id="login"' in page
    assert 'type="password"' in page
    assert 'headers["X-CSRF-Token"] = csrf' in page
    assert 'api("/auth/login", {method: "POST"' in page
    assert 'prompt("Your name' not in page  # who acted is the signed-in user, not a typed name


def test_tokens_never_start_with_a_dash_so_their_prefix_is_no_option() -> None:
    from core.auth import _new_token  # noqa: PLC0415

    tokens = [_new_token() for _ in range(2000)]  # about 31 would start with '-' by chance
    assert all(not t.startswith("-") and len(t) == 43 for t in tokens)
    assert len(set(tokens)) == len(tokens)


def test_the_users_command_offers_exactly_the_roles() -> None:
    from stocksense.users import ROLES  # noqa: PLC0415

    assert tuple(role.value for role in Role) == ROLES


def test_a_tokens_last_use_is_recorded_to_the_minute(database: db.Target) -> None:
    conn = db.connect(database)
    try:
        store = AuthStore(conn)
        store.add_user("erp", Role.VIEWER)
        info, token = store.create_token("erp", label="ERP")
        assert info.last_used_at is None
        assert store.principal_for_token(token) is not None
        (first,) = store.tokens("erp")
        used = first.last_used_at
        assert used is not None
        # Used again within the minute: no write.
        conn.execute(
            "UPDATE auth_tokens SET last_used_at = ? WHERE id = ?", (used - 59_000, info.id)
        )
        assert store.principal_for_token(token) is not None
        assert store.tokens("erp")[0].last_used_at == used - 59_000
        # Over a minute since: recorded again.
        conn.execute(
            "UPDATE auth_tokens SET last_used_at = ? WHERE id = ?", (used - 61_000, info.id)
        )
        assert store.principal_for_token(token) is not None
        assert (store.tokens("erp")[0].last_used_at or 0) >= used
    finally:
        conn.close()


class _CountingHasher(PasswordHasher):
    """Argon2 as configured, counting checks and the most running at once."""

    def __init__(self) -> None:
        super().__init__()
        self.checks = 0
        self.running = 0
        self.most_at_once = 0
        self._lock = threading.Lock()

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:  # noqa: A002
        with self._lock:
            self.checks += 1
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        try:
            return super().verify(hash, password)
        finally:
            with self._lock:
                self.running -= 1


def _at_once(count: int, call: Callable[[int], object]) -> list[object]:
    """``call(i)`` for ``i < count``, each in its own thread, released together."""
    start = threading.Barrier(count)
    results: list[object] = [None] * count

    def run(i: int) -> None:
        start.wait()
        results[i] = call(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def _viewer_tokens(database: db.Target, names: list[str]) -> list[str]:
    """A token for each of the new viewers ``names``."""
    conn = db.connect(database)
    try:
        store = AuthStore(conn)
        for name in names:
            store.add_user(name, Role.VIEWER)
        return [store.create_token(name)[1] for name in names]
    finally:
        conn.close()


def _principal(database: db.Target, token: str, cache: TokenCache) -> object:
    """Who ``token`` is, looked up over a connection of its own."""
    conn = db.connect(database)
    try:
        return AuthStore(conn).principal_for_token(token, cache)
    finally:
        conn.close()


def test_concurrent_first_uses_of_a_token_verify_it_once(
    database: db.Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    (token,) = _viewer_tokens(database, ["erp"])
    hasher = _CountingHasher()
    monkeypatch.setattr(auth_module, "_hasher", hasher)
    cache = TokenCache()
    found = _at_once(8, lambda _: _principal(database, token, cache))
    assert [getattr(p, "name", None) for p in found] == ["erp"] * 8
    assert hasher.checks == 1
    assert hasher.most_at_once == 1


def test_argon2_checks_run_at_most_two_at_once(
    database: db.Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokens = _viewer_tokens(database, [f"u{i}" for i in range(6)])
    hasher = _CountingHasher()
    monkeypatch.setattr(auth_module, "_hasher", hasher)
    found = _at_once(6, lambda i: _principal(database, tokens[i], TokenCache()))
    assert [getattr(p, "name", None) for p in found] == [f"u{i}" for i in range(6)]
    assert hasher.checks == 6
    assert 1 <= hasher.most_at_once <= auth_module.HASHING_AT_ONCE == 2

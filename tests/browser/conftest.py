"""The console in a real browser: Debian's chromium driven by Playwright (never a browser of
Playwright's own download) against the real API server over a seeded test database.

Without chromium these tests are skipped, except under CI (``CI=true``), where
scripts/bootstrap has installed it and a skip would hide a broken console: there they fail.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from core import db
from core.alerts import AlertStores
from core.auth import AuthStore, Role
from core.inventory import InventoryStores, LotIn, Sku
from core.settings import Settings
from rules.lifecycle import AlertLifecycle
from stocksense.apiserver import ApiServer
from tests.alertutil import condition
from tests.authutil import bearer, store_settings

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Playwright

CHROMIUM = Path("/usr/bin/chromium")
DAY_MS = 86_400_000
# Fixed "now" of the seed: lots are dated relative to it.
SEED_MS = 1_764_547_200_000  # 2025-12-01 00:00 UTC


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; under CI it must be there (scripts/bootstrap installs it)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    """Playwright's driver, once per module: its sync API holds an event loop on the main
    thread while it runs, and every later test that calls asyncio.run would fail."""
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is not installed (apt-get install chromium fonts-wqy-microhei)")
    try:
        from playwright.sync_api import sync_playwright  # noqa: PLC0415 - a dev dependency
    except ImportError:
        _unavailable("the playwright package is not installed (pip install -e '.[dev]')")
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """Headless Debian chromium."""
    found = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
    yield found
    found.close()


@dataclass
class Console:
    """A running API over a seeded database: its URL, the users' passwords, and a way in for
    checks behind the browser's back (an admin's bearer token)."""

    url: str
    settings: Settings
    passwords: dict[str, str]
    admin: dict[str, str] = field(default_factory=dict)

    def get(self, path: str) -> object:
        """GET ``path`` as the admin; the JSON body."""
        response = httpx.get(self.url + path, headers=self.admin, timeout=10)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body: object, headers: dict[str, str] | None = None) -> object:
        """POST ``body`` to ``path`` (as the admin unless ``headers`` say who)."""
        response = httpx.post(self.url + path, json=body, headers=headers or self.admin, timeout=10)
        response.raise_for_status()
        return response.json()


USERS = {
    "viewer": ("wang.fang", ()),
    "operator": ("li.wei", ()),
    "buyer": ("zhao.min", ()),
    "approver": ("chen.jie", ()),
    "admin": ("admin", ()),
}


def seed(settings: Settings) -> dict[str, str]:
    """Users of each role, three SKUs with stock (one out, one low), lots with dates, a purchase
    suggestion and two active alerts; the password of each role's user."""
    conn = db.connect(settings.database)
    try:
        auth = AuthStore(conn)
        passwords = {}
        for role, (name, sites) in USERS.items():
            passwords[role] = auth.add_user(name, Role(role), sites)[1]
        inventory = InventoryStores.over(conn)
        catalog, ledger = inventory.catalog, inventory.ledger
        catalog.put_sku(Sku(sku="RICE-5KG", name="Jasmine rice 5 kg", min_qty=10, max_qty=60))
        catalog.put_sku(Sku(sku="TEA-GREEN", name="Green tea 250 g", min_qty=20, max_qty=80))
        catalog.put_sku(Sku(sku="MILK-1L", name="UHT milk 1 L", min_qty=12, max_qty=48))
        ledger.add_lot(
            LotIn(lot="R-2511", sku="RICE-5KG", site="wh1", location="A-01-02", qty=40,
                  received_at=SEED_MS - 20 * DAY_MS, expiration_at=SEED_MS + 300 * DAY_MS),
            ts_ms=SEED_MS,
        )  # fmt: skip
        ledger.add_lot(
            LotIn(lot="T-2510", sku="TEA-GREEN", site="wh1", location="B-03-01", qty=8,
                  received_at=SEED_MS - 40 * DAY_MS, best_before_at=SEED_MS + 5 * DAY_MS,
                  expiration_at=SEED_MS + 30 * DAY_MS),
            ts_ms=SEED_MS,
        )  # fmt: skip
        ledger.add_lot(
            LotIn(lot="M-2511", sku="MILK-1L", site="wh1", location="C-01-01", qty=0,
                  received_at=SEED_MS - 3 * DAY_MS, expiration_at=SEED_MS + 90 * DAY_MS),
            ts_ms=SEED_MS,
        )  # fmt: skip
        inventory.planning.add_suggestion(
            site="wh1", sku="TEA-GREEN", qty=72, reason="8 below min 20: up to max 80",
            projected=8, trigger_level=20, ts_ms=SEED_MS,
        )  # fmt: skip
        lifecycle = AlertLifecycle(AlertStores.over(conn, []).state)
        lifecycle.report(
            condition("wh1/cold-room-1", at_ms=SEED_MS, type="cold_chain_excursion",
                      severity="critical", zone="cold", title="Cold room 1 above 8 °C",
                      message="Cold room 1 has been at 11.5 °C for 12 min (limit 8 °C)",
                      value=11.5, threshold=8.0)
        )  # fmt: skip
        lifecycle.report(
            condition("wh1/shelf-7", at_ms=SEED_MS + 60_000, type="sensor_offline",
                      severity="major", zone="dry", title="Shelf 7 offline",
                      message="Weight shelf 7 has sent nothing for 10 min")
        )  # fmt: skip
        return passwords
    finally:
        conn.close()


class ServerThread:
    """The real API server (``ApiServer``) on a free port, on an event loop of its own thread,
    so the synchronous Playwright API drives the browser from the test's thread."""

    def __init__(self, settings: Settings) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="api", daemon=True)
        self._thread.start()
        self.server = ApiServer(settings, port=0)
        asyncio.run_coroutine_threadsafe(self.server.start(), self._loop).result(timeout=30)

    def stop(self) -> None:
        """Stop serving and end the thread."""
        try:
            asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop).result(timeout=60)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()


@pytest.fixture
def console(database: db.Target, tmp_path: Path) -> Iterator[Console]:
    """A seeded database (the test's, SQLite or PostgreSQL) behind a running API, with a
    submitted requisition made through it by the buyer (so the approver may approve it)."""
    settings = store_settings(database, tmp_path / "data")
    passwords = seed(settings)
    running = ServerThread(settings)
    try:
        found = Console(
            url=running.server.url,
            settings=settings,
            passwords=passwords,
            admin=bearer(settings, "admin", "admin"),
        )
        buyer = bearer(settings, "buyer", "zhao.min")
        made = found.post(
            "/requisitions",
            {"site": "wh1", "sku": "MILK-1L", "qty": 24, "unit_cost": 300.0, "note": "weekly"},
            buyer,
        )
        assert isinstance(made, dict)
        found.post(f"/requisitions/{made['id']}/submit", {}, buyer)
        yield found
    finally:
        running.stop()

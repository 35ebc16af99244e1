"""The API against its own OpenAPI spec: schemathesis generates valid and invalid requests for
every operation of a seeded app; no answer may be a 5xx, an undocumented status, or a body that
breaks its documented schema, and invalid requests must be refused.

Requests go through httpx's ASGI transport rather than schemathesis' own ``case.call()``: that
one sends through ``requests``, and in this environment ``urllib3`` is replaced by
``urllib3-future`` (pulled in by grafana-client through niquests), whose connection pool lacks
what schemathesis counts connections with. The requests are still serialised by schemathesis
and the answers judged by its checks.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis import APIOperation, Case
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.config import SchemathesisConfig

from api.app import create_app
from api.fields import INT64_MAX
from core import db
from core.alerts import AlertStores
from core.inventory import InventoryStores, LotIn, RfidZone, Shelf, Sku
from core.settings import Settings
from rules.lifecycle import AlertLifecycle
from tests.alertutil import condition
from tests.authutil import api_token, store_settings

BASE_URL = "http://testserver"
MAX_EXAMPLES = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
    positive_data_acceptance,
]
# Bodies with rules a JSON schema cannot state: a schema-valid body can still be refused (422)
# here, so only that one check is left out for them.
CROSS_FIELD_RULES = {
    "POST /alerts/silences": "exactly one of ends_at and duration_s; ends after it starts",
    "POST /inventory/skus": "GTIN check digit; max_qty not below min_qty",
    "PUT /inventory/skus/{sku}": "as POST, and the body's sku is the path's",
    "PUT /inventory/shelves/{site}/{device}/{cell}": "the body names the path's cell",
    "PUT /inventory/rfid-zones/{site}/{device}/{antenna}": "the body names the path's antenna",
}
CONFIG = SchemathesisConfig.from_dict(
    {
        "seed": 20261201,
        "generation": {
            "max-examples": MAX_EXAMPLES,
            "deterministic": os.environ.get("CI") == "true",
            "database": "none",
        },
    }
)

AnyCase = Case[APIOperation[Any, Any, Any, Any]]
Send = Callable[[AnyCase], httpx.Response]


def _seed(database: db.Target) -> None:
    """A few records of each kind, so that some generated ids hit rows (ids start at 1)."""
    conn = db.connect(database)
    try:
        inventory = InventoryStores.over(conn)
        inventory.catalog.put_sku(
            Sku(sku="RICE", gtin="06901234567892", unit_grams=1000, max_qty=20)
        )
        inventory.catalog.put_sku(Sku(sku="TEA", min_qty=10, max_qty=40, pack_multiple=6))
        inventory.catalog.put_shelf(Shelf(site="wh1", device="s1", cell="c1", sku="RICE"))
        inventory.catalog.put_rfid_zone(RfidZone(site="wh1", device="dock", antenna=1, zone="in"))
        inventory.ledger.add_lot(
            LotIn(lot="L1", sku="RICE", site="wh1", location="A1", qty=8), ts_ms=1
        )
        inventory.ledger.add_lot(LotIn(lot="L2", sku="TEA", site="wh1", location="A2"), ts_ms=1)
        inventory.planning.add_suggestion(
            site="wh1", sku="TEA", qty=36, reason="min", projected=9, trigger_level=10, ts_ms=1
        )
        alerts = AlertStores.over(conn, [])
        AlertLifecycle(alerts.state).report(
            condition(
                "wh1/cold",
                at_ms=1000,
                type="cold_chain_excursion",
                severity="critical",
                zone="cold",
                title="cold room warm",
                message="11.5 °C",
                value=11.5,
                threshold=8.0,
            )
        )
        alerts.silences.create_silence(
            site="wh1",
            zone=None,
            type_=None,
            starts_at=0,
            ends_at=2**42,
            created_by="li.wei",
            reason="maintenance",
        )
    finally:
        conn.close()


# The spec is read at collection; the app reads its settings per request, so the database can
# be given to it (and seeded) when the tests run: each operation's test gets a seeded database
# of its own (SQLite or PostgreSQL), which every generated request of that operation shares.
APP = create_app(Settings())
schema = schemathesis.openapi.from_dict(APP.openapi(), config=CONFIG)


@pytest.fixture
def app(database: db.Target, tmp_path: Path) -> FastAPI:
    _seed(database)
    APP.state.settings = store_settings(database, tmp_path)
    return APP


@pytest.fixture
def send(app: FastAPI) -> Iterator[Send]:
    """Send a case to the app in-process; a crash comes back as the 500 a server would send.

    Every request carries an admin's API token: the spec is checked as an admin sees it.
    """
    token = api_token(app.state.settings)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    with asyncio.Runner() as runner:
        client = httpx.AsyncClient(transport=transport, base_url=BASE_URL)

        def call(case: AnyCase) -> httpx.Response:
            kwargs = case.as_transport_kwargs(base_url=BASE_URL)
            wire = requests.Request(
                method=kwargs["method"],
                url=kwargs["url"],
                headers=kwargs.get("headers"),
                params=kwargs.get("params"),
                cookies=kwargs.get("cookies"),
                json=kwargs.get("json"),
                data=kwargs.get("data"),
            ).prepare()
            headers = {k: v if isinstance(v, str) else v.decode() for k, v in wire.headers.items()}
            headers["Authorization"] = f"Bearer {token}"
            body = wire.body.encode() if isinstance(wire.body, str) else wire.body
            assert body is None or isinstance(body, bytes)  # a prepared body is text or bytes
            return runner.run(
                client.request(str(wire.method), str(wire.url), headers=headers, content=body)
            )

        yield call
        runner.run(client.aclose())


@schema.parametrize()
# The database is the operation's, shared by its generated requests on purpose: as a server's.
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_api_matches_its_spec(case: AnyCase, send: Send) -> None:
    response = send(case)
    excluded = [positive_data_acceptance] if case.operation.label in CROSS_FIELD_RULES else []
    case.validate_response(response, checks=CHECKS, excluded_checks=excluded)


def test_cross_field_exemptions_name_real_operations() -> None:
    paths = APP.openapi()["paths"]
    labels = {f"{method.upper()} {path}" for path, methods in paths.items() for method in methods}
    assert set(CROSS_FIELD_RULES) <= labels


def _inputs(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, schema) of every parameter and request body property, $refs followed."""
    components = spec["components"]["schemas"]

    def walk(where: str, node: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
        if "$ref" in node:
            yield from walk(where, components[node["$ref"].rsplit("/", 1)[1]])
            return
        yield where, node
        for branch in node.get("anyOf", []):
            yield from walk(where, branch)
        for name, prop in node.get("properties", {}).items():
            yield from walk(f"{where}.{name}", prop)
        if "items" in node:
            yield from walk(f"{where}[]", node["items"])

    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            label = f"{method.upper()} {path}"
            for param in operation.get("parameters", []):
                yield from walk(f"{label} {param['name']}", param["schema"])
            for media in operation.get("requestBody", {}).get("content", {}).values():
                yield from walk(f"{label} body", media["schema"])


def test_every_input_is_bounded_in_the_spec() -> None:
    """What the generator cannot be relied on to try: every integer fits a signed 64-bit
    column (SQLite's INTEGER, PostgreSQL's BIGINT), every number has a finite range, every
    string a length or a pattern."""
    unbounded = []
    for where, node in _inputs(APP.openapi()):
        kind = node.get("type")
        if "enum" in node or "const" in node:
            continue
        if kind == "integer" and not (
            node.get("minimum", -(2**64)) >= -(2**63) and node.get("maximum", 2**64) <= INT64_MAX
        ):
            unbounded.append(f"{where}: integer {node}")
        elif kind == "number" and not (
            {"minimum", "exclusiveMinimum"} & node.keys()
            and {"maximum", "exclusiveMaximum"} & node.keys()
        ):
            unbounded.append(f"{where}: number {node}")
        elif kind == "string" and "maxLength" not in node and "pattern" not in node:
            unbounded.append(f"{where}: string {node}")
    assert unbounded == []

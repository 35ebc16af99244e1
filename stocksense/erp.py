"""The ERP pusher: drains the requisition push queue into the configured ERP.

A requisition is queued in the same transaction that approves it, with an idempotency key of
its own, so an approval reaches the ERP after a crash or restart. A row is marked ``sending``
just before its request goes out and ``done`` (the requisition ``ordered``, the ERP's document
id recorded) only once the ERP accepted it. A stop in between leaves it ``sending``: at start
the pusher sends it again with the same key (at-least-once), and the key makes the repeat
harmless: the webhook receiver deduplicates on ``Idempotency-Key``; for ERPNext and Odoo,
which have no such header, the key is written into the document (the Material Request's
``title``, the purchase order's ``origin``) and looked up before anything is created.

Transient failures (network errors, timeouts, 408/429/5xx) back off exponentially up to
``max_attempts``; permanent ones (refused credentials, a document the ERP rejects) stop at
once and keep the ERP's words in the row, for ``POST /requisitions/{id}/push`` after a fix.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import json
import logging
import os
import random
import secrets
import time
from collections.abc import Callable
from typing import Any, Protocol

import httpx

from core import db
from core.audit import AuditLog
from core.db import worker_prefix
from core.errors import ConfigError, StockSenseError
from core.requisitions import ErpPush, Requisition, RequisitionError, RequisitionStore
from core.settings import ErpSettings, Settings

logger = logging.getLogger(__name__)

Clock = Callable[[], float]
SIGNATURE_HEADER = "X-StockSense-Signature"
MATERIAL_REQUEST = "Material Request"
MAX_BACKOFF_S = 300.0
ACTOR = "erp-pusher"
# A push another pusher has been sending this long is taken for dead (its request timed out
# long ago) and sent again under its key.
SENDING_STALE_S = 600.0


class PushError(StockSenseError):
    """The ERP did not take a requisition; ``retry_after_s`` None means it never will as sent."""

    def __init__(self, message: str, *, retry_after_s: float | None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    @property
    def permanent(self) -> bool:
        """True when sending the same request again cannot succeed."""
        return self.retry_after_s is None


class ErpClient(Protocol):
    """One ERP: creates the document for a requisition (once per key) and returns its id."""

    kind: str

    async def push(self, requisition: Requisition, key: str) -> str:
        """The ERP's document id for ``requisition``, created unless ``key`` already made one."""
        ...

    async def aclose(self) -> None:
        """Release network resources."""
        ...


def _day(ms: int | None) -> str:
    at = dt.datetime.now(dt.UTC) if ms is None else dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
    return at.date().isoformat()


async def _send(
    client: httpx.AsyncClient, name: str, method: str, url: str, **kwargs: Any
) -> httpx.Response:
    """One request; network errors and timeouts are transient, so are 408, 429 and 5xx."""
    try:
        response = await client.request(method, url, **kwargs)
    except httpx.HTTPError as exc:
        raise PushError(f"{name}: {type(exc).__name__}", retry_after_s=5.0) from None
    status = response.status_code
    if status >= 500 or status in (408, 429):
        raise PushError(f"{name}: HTTP {status}", retry_after_s=5.0)
    if status >= 400:
        raise PushError(f"{name}: HTTP {status}: {response.text[:300]}", retry_after_s=None)
    return response


def _json(response: httpx.Response, name: str) -> Any:
    try:
        return response.json()
    except ValueError:
        raise PushError(f"{name}: answer is not JSON", retry_after_s=30.0) from None


class WebhookClient:
    """POSTs the requisition as JSON with ``Idempotency-Key`` and an HMAC-SHA256 signature of
    the body (``X-StockSense-Signature: sha256=<hex>``); a JSON answer's ``id`` is the
    document id, else the key itself."""

    kind = "webhook"

    def __init__(self, url: str, secret: str, client: httpx.AsyncClient) -> None:
        self._url, self._secret, self._client = url, secret, client

    def body(self, requisition: Requisition, key: str) -> bytes:
        """The exact bytes sent (and signed)."""
        payload = {
            "event": "requisition.approved",
            "idempotency_key": key,
            "requisition": {
                "id": requisition.id,
                "site": requisition.site,
                "sku": requisition.sku,
                "qty": requisition.qty,
                "supplier": requisition.supplier,
                "unit_cost": requisition.unit_cost,
                "currency": requisition.currency,
                "amount": requisition.amount,
                "category": requisition.category,
                "required_by": _day(requisition.required_by),
                "note": requisition.note,
                "requested_by": requisition.requested_by,
                "approved_by": requisition.approved_by,
            },
        }
        return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()

    async def push(self, requisition: Requisition, key: str) -> str:
        """Deliver once per key; the receiver answers a repeat with the same document."""
        body = self.body(requisition, key)
        signature = hmac.new(self._secret.encode(), body, hashlib.sha256).hexdigest()
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": key,
            SIGNATURE_HEADER: f"sha256={signature}",
        }
        response = await _send(
            self._client, "webhook", "POST", self._url, content=body, headers=headers
        )
        if not response.content:
            return key
        answer = _json(response, "webhook")
        found = answer.get("id") if isinstance(answer, dict) else None
        return str(found) if found not in (None, "") else key

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()


class ErpNextClient:
    """ERPNext (Frappe REST): a ``Purchase`` Material Request per requisition, the key in its
    ``title``; ``Authorization: token <api_key>:<api_secret>``."""

    kind = "erpnext"

    def __init__(self, settings: ErpSettings, client: httpx.AsyncClient) -> None:
        assert settings.api_key is not None
        assert settings.api_secret is not None
        self._base = settings.url.rstrip("/")
        self._auth = f"token {settings.api_key}:{settings.api_secret.get_secret_value()}"
        self._company = settings.company
        self._warehouses = settings.warehouses
        self._client = client

    @property
    def _url(self) -> str:
        return f"{self._base}/api/resource/{MATERIAL_REQUEST}"

    def document(self, requisition: Requisition, key: str) -> dict[str, Any]:
        """The Material Request for ``requisition``."""
        day = _day(requisition.required_by)
        doc: dict[str, Any] = {
            "material_request_type": "Purchase",
            "title": key,
            "transaction_date": _day(None),
            "schedule_date": day,
            "items": [
                {
                    "item_code": requisition.sku,
                    "qty": requisition.qty,
                    "schedule_date": day,
                    "warehouse": self._warehouses.get(requisition.site, requisition.site),
                    "rate": requisition.unit_cost,
                }
            ],
        }
        if self._company:
            doc["company"] = self._company
        return doc

    async def push(self, requisition: Requisition, key: str) -> str:
        """Find the request made with ``key``, or make it."""
        headers = {"Authorization": self._auth, "Accept": "application/json"}
        params = {"filters": json.dumps([["title", "=", key]]), "fields": json.dumps(["name"])}
        found = await _send(
            self._client, "erpnext", "GET", self._url, params=params, headers=headers
        )
        rows = _json(found, "erpnext").get("data") or []
        if rows:
            logger.info("requisition %d is already %s in ERPNext", requisition.id, rows[0]["name"])
            return str(rows[0]["name"])
        created = await _send(
            self._client,
            "erpnext",
            "POST",
            self._url,
            json=self.document(requisition, key),
            headers=headers,
        )
        data = _json(created, "erpnext").get("data") or {}
        name = data.get("name") if isinstance(data, dict) else None
        if not name:
            raise PushError("erpnext: the answer names no document", retry_after_s=30.0)
        return str(name)

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()


class OdooClient:
    """Odoo (external JSON-RPC): a ``purchase.order`` per requisition, the key in its
    ``origin``; partner by the supplier's name, product by the SKU as internal reference."""

    kind = "odoo"

    def __init__(self, settings: ErpSettings, client: httpx.AsyncClient) -> None:
        assert settings.password is not None
        self._url = settings.url.rstrip("/") + "/jsonrpc"
        self._db, self._login = settings.database, settings.username
        self._password = settings.password.get_secret_value()
        self._client = client
        self._calls = 0

    async def _call(self, service: str, method: str, args: list[Any]) -> Any:
        self._calls += 1
        body = {
            "jsonrpc": "2.0",
            "method": "call",
            "params": {"service": service, "method": method, "args": args},
            "id": self._calls,
        }
        response = await _send(self._client, "odoo", "POST", self._url, json=body)
        answer = _json(response, "odoo")
        if not isinstance(answer, dict):
            raise PushError("odoo: the answer is not a JSON-RPC object", retry_after_s=30.0)
        error = answer.get("error")
        if error is not None:
            data = error.get("data") or {} if isinstance(error, dict) else {}
            name = data.get("name", "error") if isinstance(data, dict) else "error"
            message = data.get("message", "") if isinstance(data, dict) else str(error)
            # Odoo's errors are about the call (access, validation): the same call fails again.
            raise PushError(f"odoo: {name}: {message}"[:400], retry_after_s=None)
        return answer.get("result")

    async def _kw(self, uid: int, model: str, method: str, *args: Any, **kwargs: Any) -> Any:
        return await self._call(
            "object",
            "execute_kw",
            [self._db, uid, self._password, model, method, list(args), kwargs],
        )

    async def push(self, requisition: Requisition, key: str) -> str:
        """Log in, find the order made with ``key``, or create it; returns its name."""
        uid = await self._call("common", "login", [self._db, self._login, self._password])
        if not isinstance(uid, int) or isinstance(uid, bool):
            raise PushError(
                "odoo: login refused (database, username or password)", retry_after_s=None
            )
        ids = await self._kw(uid, "purchase.order", "search", [["origin", "=", key]], limit=1)
        if not ids:
            if not requisition.supplier:
                raise PushError(
                    f"odoo: requisition {requisition.id} names no supplier", retry_after_s=None
                )
            partner = await self._one(uid, "res.partner", "name", requisition.supplier)
            product = await self._one(uid, "product.product", "default_code", requisition.sku)
            order_id = await self._kw(
                uid,
                "purchase.order",
                "create",
                {
                    "partner_id": partner,
                    "origin": key,
                    "order_line": [
                        [
                            0,
                            0,
                            {
                                "product_id": product,
                                "product_qty": requisition.qty,
                                "price_unit": requisition.unit_cost,
                                "date_planned": _day(requisition.required_by) + " 00:00:00",
                            },
                        ]
                    ],
                },
            )
            ids = [order_id]
        rows = await self._kw(uid, "purchase.order", "read", ids[:1], fields=["name"])
        if not rows:
            raise PushError(f"odoo: purchase order {ids[0]} cannot be read", retry_after_s=30.0)
        return str(rows[0].get("name") or ids[0])

    async def _one(self, uid: int, model: str, field: str, value: str) -> int:
        ids = await self._kw(uid, model, "search", [[field, "=", value]], limit=1)
        if not ids:
            raise PushError(f"odoo: no {model} with {field} {value!r}", retry_after_s=None)
        return int(ids[0])

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()


def build_erp_client(
    settings: ErpSettings, client: httpx.AsyncClient | None = None
) -> ErpClient | None:
    """The client for ``settings.kind`` (None for ``none``); ConfigError naming what is missing."""
    if settings.kind == "none":
        return None
    lead = f"STOCKSENSE_PURCHASING__ERP__KIND={settings.kind} needs"
    required: dict[str, object] = {"URL": settings.url}
    if settings.kind == "webhook":
        required["SECRET"] = settings.secret
    elif settings.kind == "erpnext":
        required |= {"API_KEY": settings.api_key, "API_SECRET": settings.api_secret}
    else:
        required |= {
            "DATABASE": settings.database,
            "USERNAME": settings.username,
            "PASSWORD": settings.password,
        }
    missing = [f"STOCKSENSE_PURCHASING__ERP__{k}" for k, v in required.items() if not v]
    if missing:
        raise ConfigError(f"{lead} {', '.join(missing)}")
    http = client or httpx.AsyncClient(timeout=settings.timeout_s)
    if settings.kind == "webhook":
        assert settings.secret is not None
        return WebhookClient(settings.url, settings.secret.get_secret_value(), http)
    if settings.kind == "erpnext":
        return ErpNextClient(settings, http)
    return OdooClient(settings, http)


class ErpPusher:
    """Delivers the push queue to one ERP; one instance per process.

    ``clock`` returns seconds since the epoch (tests inject a simulated one to skip backoffs).
    """

    def __init__(
        self,
        conn: db.Connection,
        client: ErpClient,
        *,
        poll_interval_s: float = 2.0,
        max_attempts: int = 10,
        worker: str = "erp-pusher",
        clock: Clock = time.time,
        owns_conn: bool = False,
    ) -> None:
        self._conn = conn
        self.worker = worker
        self.owner = f"{worker_prefix(worker)}{os.getpid()}-{secrets.token_hex(4)}"
        self._owns_conn = owns_conn
        self._store = RequisitionStore(conn)
        self.client = client
        self._poll_interval_s = poll_interval_s
        self._max_attempts = max_attempts
        self._clock = clock
        self._pass_lock = asyncio.Lock()
        self.pushed = 0
        self.failed = 0

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def recover(self) -> int:
        """Requeue rows a stop of this worker left ``sending``, and those another pusher left
        for longer than ``SENDING_STALE_S``; returns how many (``run`` calls it first)."""
        return self._requeue(self.worker)

    def _requeue(self, worker: str | None) -> int:
        stale_before = self._now_ms() - int(SENDING_STALE_S * 1000)
        rows = self._store.recover_sending(worker=worker, stale_before=stale_before)
        if rows:
            logger.warning(
                "%d ERP pushes were interrupted by a stop: sending them again with their keys"
                " (requisitions %s)",
                len(rows),
                ",".join(str(r.requisition_id) for r in rows[:20]),
            )
        return len(rows)

    async def run(self) -> None:
        """Push forever."""
        self.recover()
        while True:
            await self.push_due()
            await asyncio.sleep(self._poll_interval_s)

    async def push_due(self) -> int:
        """Try every due row once; returns how many the ERP took."""
        async with self._pass_lock:
            self._requeue(None)  # what a pusher that died mid-send left, once it is stale
            done = 0
            for row in self._store.due(now=self._now_ms()):
                done += await self._push(row)
            return done

    async def _push(self, row: ErpPush) -> int:
        if row.target != self.client.kind:
            error = f"queued for {row.target}, but the configured ERP is {self.client.kind}"
            self._store.mark_dead(row.id, error=error)
            logger.error("requisition %d not pushed: %s", row.requisition_id, error)
            return 0
        if not self._store.mark_sending(row.id, owner=self.owner, at_ms=self._now_ms()):
            return 0  # cancelled meanwhile, or another pusher took it
        requisition = self._store.get(row.requisition_id)
        try:
            document = await self.client.push(requisition, row.idempotency_key)
        except PushError as exc:
            self._failed(row, exc)
            return 0
        try:
            with self._store.transaction():
                after = self._store.complete_push(row.id, document=document, ts_ms=self._now_ms())
                AuditLog(self._conn).record(
                    actor=ACTOR,
                    role=None,
                    via="service",
                    action="requisition.ordered",
                    target=f"requisition {requisition.id}",
                    site=requisition.site,
                    before=requisition,
                    after=after,
                )
        except RequisitionError as exc:
            # The ERP holds the document but the requisition cannot take it: keep it visible.
            self._store.mark_dead(row.id, error=f"{self.client.kind} {document}: {exc}")
            logger.error(  # noqa: TRY400 - the store's refusal says it all, no traceback
                "requisition %d is %s in the ERP but: %s", requisition.id, document, exc
            )
            return 0
        self.pushed += 1
        logger.info(
            "requisition %d ordered in %s as %s", requisition.id, self.client.kind, document
        )
        return 1

    def _failed(self, row: ErpPush, exc: PushError) -> None:
        self.failed += 1
        if exc.permanent or row.attempts + 1 >= self._max_attempts:
            self._store.mark_dead(row.id, error=str(exc))
            logger.error("requisition %d not pushed: %s", row.requisition_id, exc)
            return
        delay = max(exc.retry_after_s or 0.0, min(MAX_BACKOFF_S, 1.0 * 2.0**row.attempts))
        delay *= 1 + random.random() * 0.1  # noqa: S311 - jitter, not security
        self._store.mark_retry(
            row.id, next_attempt_at=self._now_ms() + int(delay * 1000), error=str(exc)
        )
        logger.warning(
            "requisition %d push will be retried in %.1fs: %s", row.requisition_id, delay, exc
        )

    async def aclose(self) -> None:
        """Close the ERP client (and the connection, when the pusher opened it)."""
        await self.client.aclose()
        if self._owns_conn:
            self._conn.close()


def build_pusher(
    settings: Settings, *, conn: db.Connection | None = None, clock: Clock = time.time
) -> ErpPusher | None:
    """The process's pusher (None without an ERP); its own connection unless given one."""
    erp = settings.purchasing.erp
    client = build_erp_client(erp)
    if client is None:
        return None
    return ErpPusher(
        conn or db.connect(settings.database),
        client,
        poll_interval_s=erp.poll_interval_s,
        max_attempts=erp.max_attempts,
        # Every worker already has an MQTT client id of its own: it names its pushes too.
        worker=settings.mqtt.client_id,
        clock=clock,
        owns_conn=conn is None,
    )

"""Local HTTP receivers that behave like the systems approved requisitions are pushed to: a
signed JSON webhook, ERPNext's REST API (Material Request) and Odoo's JSON-RPC (purchase.order).

Each checks the request shapes its system documents (authentication, required fields and their
types, links to master data) and answers the way that system does: ERPNext ``{"data": {...}}``
with its naming series, or ``exc_type`` errors with HTTP 401/417; Odoo a JSON-RPC ``result`` or
an ``error`` object with the Odoo exception name. Each can be told to fail its next requests
(:meth:`ErpReceiver.fail_next`): with a 5xx before doing anything, or with a timeout *after*
doing the work (the document exists, the answer never arrives in time), which is the case an
idempotency key is for. Every request is recorded (:attr:`ErpReceiver.requests`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import itertools
import json
import logging
import re
import threading
import urllib.parse
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, Self

logger = logging.getLogger(__name__)

FailMode = Literal["500", "502", "503", "timeout"]
Answer = tuple[int, Any]
SIGNATURE_HEADER = "X-StockSense-Signature"
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass
class Seen:
    """One request as it arrived."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


@dataclass
class ErpLog:
    """What a receiver saw: every request, the documents it holds, the errors it answered."""

    requests: list[Seen] = field(default_factory=list)
    documents: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: list[int] = field(default_factory=list)


class ErpReceiver:
    """Shared HTTP plumbing: a threaded server on 127.0.0.1, a failure plan, a log.

    ``hang_s`` is how long a ``timeout`` failure holds its answer: longer than the client's
    timeout, so the client gives up after the receiver did the work.
    """

    def __init__(self, *, hang_s: float = 5.0) -> None:
        self.hang_s = hang_s
        self.log = ErpLog()
        self.lock = threading.Lock()
        self.condition = threading.Condition(self.lock)
        self._plan: deque[FailMode] = deque()
        self._stopping = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                url = urllib.parse.urlsplit(self.path)
                seen = Seen(
                    method=self.command,
                    path=urllib.parse.unquote(url.path),
                    query=dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True)),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=raw,
                )
                with receiver.condition:
                    receiver.log.requests.append(seen)
                    planned = receiver._plan and receiver.creates(seen)
                    mode = receiver._plan.popleft() if planned else None
                    if mode is not None and mode != "timeout":
                        status, answer = int(mode), {"message": "service unavailable"}
                        receiver.log.errors.append(status)
                    else:
                        status, answer = receiver.handle(seen)
                    receiver.condition.notify_all()
                if mode == "timeout":
                    receiver._stopping.wait(receiver.hang_s)
                data = json.dumps(answer).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting: the point of a timeout failure

            def do_GET(self) -> None:
                self._serve()

            def do_POST(self) -> None:
                self._serve()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                del format, args

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        """The port the receiver listens on."""
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        """Serve in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Release held answers and stop serving."""
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def fail_next(self, *modes: FailMode) -> None:
        """Fail the next requests that would create a document, one mode each: a 5xx status
        (nothing is created), or ``timeout`` (created, the answer held for ``hang_s``).
        Lookups are answered meanwhile."""
        with self.lock:
            self._plan.extend(modes)

    def wait_for(self, predicate: Callable[[ErpLog], bool], timeout: float) -> bool:
        """Block until ``predicate(log)`` holds or ``timeout`` s pass; returns whether it held."""
        with self.condition:
            return self.condition.wait_for(lambda: predicate(self.log), timeout=timeout)

    def creates(self, seen: Seen) -> bool:
        """Whether ``seen`` asks for a document to be made (what failures apply to)."""
        return seen.method == "POST"

    def handle(self, seen: Seen) -> Answer:
        """Answer one request; called with the lock held."""
        raise NotImplementedError

    def _error(self, status: int, answer: Any) -> Answer:
        self.log.errors.append(status)
        return status, answer


# -- the signed webhook -------------------------------------------------------------------------


def webhook_signature(secret: str, body: bytes) -> str:
    """The signature header value: ``sha256=`` and the HMAC-SHA256 of the body, hex."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


_WEBHOOK_FIELDS: dict[str, tuple[type, ...]] = {
    "id": (int,),
    "site": (str,),
    "sku": (str,),
    "qty": (int, float),
    "unit_cost": (int, float),
    "currency": (str,),
    "amount": (int, float),
    "required_by": (str,),
}


class WebhookErp(ErpReceiver):
    """A purchasing system taking requisitions as signed JSON at ``/requisitions``.

    Refuses a missing ``Idempotency-Key`` (400), a bad signature (401) and a body without the
    requisition's fields or with wrong types (422); a key it has seen before gets the same
    answer again and creates nothing.
    """

    def __init__(self, secret: str, *, hang_s: float = 5.0) -> None:
        super().__init__(hang_s=hang_s)
        self.secret = secret
        self._by_key: dict[str, str] = {}
        self._numbers = itertools.count(1)

    @property
    def url(self) -> str:
        """The webhook URL to configure."""
        return f"{self.base_url}/requisitions"

    def handle(self, seen: Seen) -> Answer:  # noqa: PLR0911 - one early answer per rule
        """Apply the webhook contract."""
        if seen.method != "POST" or seen.path != "/requisitions":
            return self._error(404, {"error": "not found"})
        key = seen.headers.get("idempotency-key", "")
        if not key:
            return self._error(400, {"error": "Idempotency-Key header is required"})
        given = seen.headers.get(SIGNATURE_HEADER.lower(), "")
        if not hmac.compare_digest(given, webhook_signature(self.secret, seen.body)):
            return self._error(401, {"error": "signature does not match the body"})
        if not seen.headers.get("content-type", "").startswith("application/json"):
            return self._error(415, {"error": "send application/json"})
        try:
            body = seen.json()
        except ValueError:
            return self._error(400, {"error": "body is not JSON"})
        problem = _webhook_problem(body, key)
        if problem:
            return self._error(422, {"error": problem})
        if key in self._by_key:
            return 200, {"id": self._by_key[key], "duplicate": True}
        document = f"PR-{next(self._numbers):05d}"
        self._by_key[key] = document
        self.log.documents[document] = body
        return 201, {"id": document}


def _webhook_problem(body: Any, key: str) -> str | None:
    if not isinstance(body, dict):
        return "body must be an object"
    if body.get("idempotency_key") != key:
        return "idempotency_key must repeat the Idempotency-Key header"
    req = body.get("requisition")
    if not isinstance(req, dict):
        return "requisition must be an object"
    for name, types in _WEBHOOK_FIELDS.items():
        value = req.get(name)
        if isinstance(value, bool) or not isinstance(value, types):
            return f"requisition.{name} is missing or not a {types[0].__name__}"
    if not _DATE.match(req["required_by"]):
        return "requisition.required_by must be YYYY-MM-DD"
    return None


# -- ERPNext --------------------------------------------------------------------------------------

MATERIAL_REQUEST = "/api/resource/Material Request"
_MR_TYPES = ("Purchase", "Material Transfer", "Material Issue", "Manufacture", "Customer Provided")


class ErpNext(ErpReceiver):
    """ERPNext's REST API for Material Requests, with an item and warehouse master.

    ``Authorization: token <api_key>:<api_secret>`` or 401 ``AuthenticationError``; a missing
    mandatory field answers 417 ``MandatoryError``, an unknown item, warehouse or company 417
    ``LinkValidationError``, a wrong type 417 ``ValidationError``, as Frappe does. Created
    documents are named by the series ``MAT-MR-.YYYY.-`` and listed by ``GET`` with
    ``filters`` (``[[field, "=", value]]``) and ``fields``.
    """

    def __init__(
        self,
        api_key: str,
        api_secret: str,
        *,
        items: Collection[str],
        warehouses: Collection[str],
        companies: Collection[str] = ("StockSense Ltd",),
        hang_s: float = 5.0,
        year: int | None = None,
    ) -> None:
        super().__init__(hang_s=hang_s)
        self.api_key, self.api_secret = api_key, api_secret
        self.items, self.warehouses, self.companies = set(items), set(warehouses), set(companies)
        self.year = year or dt.datetime.now(dt.UTC).year
        self._numbers = itertools.count(1)

    def handle(self, seen: Seen) -> Answer:
        """Apply the Frappe REST contract."""
        if seen.headers.get("authorization") != f"token {self.api_key}:{self.api_secret}":
            return self._frappe(401, "AuthenticationError", "Invalid API key or secret")
        if seen.path != MATERIAL_REQUEST:
            return self._frappe(404, "DoesNotExistError", f"{seen.path} not found")
        if seen.method == "GET":
            return self._list(seen)
        try:
            body = seen.json()
        except ValueError:
            return self._frappe(417, "ValidationError", "body is not JSON")
        problem = self._problem(body)
        if problem is not None:
            return self._frappe(417, *problem)
        name = f"MAT-MR-{self.year}-{next(self._numbers):05d}"
        doc = {
            **body,
            "name": name,
            "doctype": "Material Request",
            "docstatus": 0,
            "status": "Draft",
            "company": body.get("company") or sorted(self.companies)[0],
        }
        self.log.documents[name] = doc
        return 200, {"data": doc}

    def _list(self, seen: Seen) -> Answer:
        try:
            filters = json.loads(seen.query.get("filters", "[]"))
            fields = json.loads(seen.query.get("fields", '["name"]'))
        except ValueError:
            return self._frappe(417, "ValidationError", "filters and fields must be JSON")
        found = []
        for doc in self.log.documents.values():
            if all(
                isinstance(f, list) and len(f) == 3 and f[1] == "=" and doc.get(f[0]) == f[2]
                for f in filters
            ):
                found.append({name: doc.get(name) for name in fields})
        return 200, {"data": found}

    def _problem(self, body: Any) -> tuple[str, str] | None:  # noqa: PLR0911, PLR0912 - one answer per rule
        if not isinstance(body, dict):
            return "ValidationError", "the document must be an object"
        for name in ("material_request_type", "schedule_date", "items"):
            if name not in body or body[name] in (None, "", []):
                return "MandatoryError", f"[Material Request]: {name}"
        if body["material_request_type"] not in _MR_TYPES:
            return "ValidationError", "Type cannot be {!r}".format(body["material_request_type"])
        if not isinstance(body["schedule_date"], str) or not _DATE.match(body["schedule_date"]):
            return "ValidationError", "Required By must be a date (YYYY-MM-DD)"
        company = body.get("company")
        if company is not None and company not in self.companies:
            return "LinkValidationError", f"Could not find Company: {company}"
        if not isinstance(body["items"], list):
            return "ValidationError", "items must be a list"
        for row, item in enumerate(body["items"], start=1):
            if not isinstance(item, dict):
                return "ValidationError", f"Row #{row}: an item must be an object"
            for name in ("item_code", "qty", "schedule_date", "warehouse"):
                if item.get(name) in (None, ""):
                    return "MandatoryError", f"Row #{row}: [Material Request Item]: {name}"
            qty = item["qty"]
            if isinstance(qty, bool) or not isinstance(qty, int | float) or qty <= 0:
                return "ValidationError", f"Row #{row}: Quantity must be a positive number"
            if not isinstance(item["schedule_date"], str) or not _DATE.match(item["schedule_date"]):
                return "ValidationError", f"Row #{row}: Required By must be a date"
            if item["item_code"] not in self.items:
                return "LinkValidationError", f"Could not find Item Code: {item['item_code']}"
            if item["warehouse"] not in self.warehouses:
                return "LinkValidationError", f"Could not find Warehouse: {item['warehouse']}"
        return None

    def _frappe(self, status: int, exc_type: str, message: str) -> Answer:
        return self._error(
            status,
            {"exc_type": exc_type, "exception": f"frappe.exceptions.{exc_type}: {message}",
             "_server_messages": json.dumps([json.dumps({"message": message})])},
        )  # fmt: skip


# -- Odoo -----------------------------------------------------------------------------------------


@dataclass
class OdooOrder:
    """A purchase.order the receiver holds."""

    id: int
    name: str
    values: dict[str, Any]


class Odoo(ErpReceiver):
    """Odoo's external JSON-RPC API at ``/jsonrpc``: ``common.login`` / ``authenticate`` and
    ``object.execute_kw`` on ``res.partner``, ``product.product`` (``search``) and
    ``purchase.order`` (``search``, ``read``, ``create``).

    A refused login answers ``result: false``; a call with a wrong uid or password the
    ``AccessDenied`` error object; a bad ``create`` (unknown partner or product, a malformed
    ``order_line`` command, a missing or ill-typed value) ``ValidationError``. Errors travel
    with HTTP 200, as Odoo sends them.
    """

    def __init__(
        self,
        database: str,
        login: str,
        password: str,
        *,
        partners: dict[str, int],
        products: dict[str, int],
        hang_s: float = 5.0,
    ) -> None:
        super().__init__(hang_s=hang_s)
        self.database, self.login, self.password = database, login, password
        self.uid = 2
        self.partners = dict(partners)  # name -> id
        self.products = dict(products)  # default_code -> id
        self.orders: dict[int, OdooOrder] = {}
        self._ids = itertools.count(1)

    @property
    def url(self) -> str:
        """The base URL to configure (the client posts to ``/jsonrpc``)."""
        return self.base_url

    def creates(self, seen: Seen) -> bool:
        """An ``execute_kw`` of ``create``."""
        try:
            args = seen.json()["params"]["args"]
        except (ValueError, KeyError, TypeError):
            return False
        return isinstance(args, list) and len(args) > 4 and args[4] == "create"

    def handle(self, seen: Seen) -> Answer:
        """Apply the JSON-RPC contract."""
        if seen.method != "POST" or seen.path != "/jsonrpc":
            return self._error(404, {"error": "not found"})
        try:
            call = seen.json()
        except ValueError:
            return 200, _rpc_error(None, "werkzeug.exceptions.BadRequest", "body is not JSON")
        if (
            not isinstance(call, dict)
            or call.get("jsonrpc") != "2.0"
            or call.get("method") != "call"
        ):
            return 200, _rpc_error(None, "werkzeug.exceptions.BadRequest", "not a JSON-RPC call")
        rpc_id = call.get("id")
        params = call.get("params")
        if not isinstance(params, dict) or not isinstance(params.get("args"), list):
            return 200, _rpc_error(rpc_id, "werkzeug.exceptions.BadRequest", "params.args")
        service, method, args = params.get("service"), params.get("method"), params["args"]
        try:
            result = self._dispatch(service, method, args)
        except _OdooError as exc:
            self.log.errors.append(200)
            return 200, _rpc_error(rpc_id, exc.name, exc.message)
        return 200, {"jsonrpc": "2.0", "id": rpc_id, "result": result}

    def _dispatch(self, service: object, method: object, args: list[Any]) -> Any:
        if service == "common" and method in ("login", "authenticate"):
            return self._login(args)
        if service == "object" and method == "execute_kw":
            return self._execute_kw(args)
        raise _OdooError("odoo.exceptions.UserError", f"unknown {service}.{method}")

    def _login(self, args: list[Any]) -> int | bool:
        if len(args) < 3:
            raise _OdooError("builtins.TypeError", "login() takes db, login, password")
        ok = list(args[:3]) == [self.database, self.login, self.password]
        return self.uid if ok else False

    def _execute_kw(self, args: list[Any]) -> Any:
        if len(args) < 6:
            raise _OdooError("builtins.TypeError", "execute_kw takes db, uid, password, model,"
                             " method, args[, kwargs]")  # fmt: skip
        db, uid, password, model, method, positional = args[:6]
        kwargs = args[6] if len(args) > 6 else {}
        if db != self.database or uid != self.uid or password != self.password:
            raise _OdooError("odoo.exceptions.AccessDenied", "Access Denied")
        if not isinstance(positional, list) or not isinstance(kwargs, dict):
            raise _OdooError("builtins.TypeError", "args must be a list, kwargs an object")
        if method == "search":
            return self._search(model, positional, kwargs)
        if model == "purchase.order" and method == "create":
            return self._create(positional)
        if model == "purchase.order" and method == "read":
            ids, fields = positional[0], kwargs.get("fields", ["name"])
            return [
                {"id": i, **{f: getattr(self.orders[i], f, None) for f in fields}}
                for i in ids
                if i in self.orders
            ]
        raise _OdooError("odoo.exceptions.UserError", f"{model}.{method} is not served here")

    def _search(self, model: str, positional: list[Any], kwargs: dict[str, Any]) -> list[int]:
        domain = positional[0] if positional else []
        if not isinstance(domain, list) or not all(
            isinstance(t, list) and len(t) == 3 and t[1] == "=" for t in domain
        ):
            raise _OdooError("builtins.ValueError", f"Invalid domain {domain!r}")
        records: dict[int, dict[str, Any]]
        if model == "res.partner":
            records = {i: {"name": n} for n, i in self.partners.items()}
        elif model == "product.product":
            records = {i: {"default_code": c} for c, i in self.products.items()}
        elif model == "purchase.order":
            records = {o.id: o.values for o in self.orders.values()}
        else:
            raise _OdooError("builtins.KeyError", model)
        found = [i for i, rec in records.items() if all(rec.get(f) == v for f, _, v in domain)]
        limit = kwargs.get("limit")
        return found[:limit] if isinstance(limit, int) else found

    def _create(self, positional: list[Any]) -> int | list[int]:
        values = positional[0] if positional else None
        if isinstance(values, list):  # create([{...}, ...]) makes several, answers their ids
            return [self._create_one(v) for v in values]
        return self._create_one(values)

    def _create_one(self, values: Any) -> int:
        if not isinstance(values, dict):
            raise _OdooError("odoo.exceptions.ValidationError", "create takes the values")
        partner = values.get("partner_id")
        if not isinstance(partner, int) or partner not in self.partners.values():
            raise _OdooError("odoo.exceptions.ValidationError", f"partner_id {partner!r}")
        lines = values.get("order_line")
        if not isinstance(lines, list) or not lines:
            raise _OdooError("odoo.exceptions.ValidationError", "order_line is required")
        for command in lines:
            if not (isinstance(command, list) and len(command) == 3 and command[:2] == [0, 0]):
                raise _OdooError("odoo.exceptions.ValidationError", "order_line: [0, 0, {...}]")
            line = command[2]
            if not isinstance(line, dict):
                raise _OdooError("odoo.exceptions.ValidationError", "order line values")
            product = line.get("product_id")
            if not isinstance(product, int) or product not in self.products.values():
                raise _OdooError("odoo.exceptions.ValidationError", f"product_id {product!r}")
            for name in ("product_qty", "price_unit"):
                value = line.get(name)
                if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                    raise _OdooError("odoo.exceptions.ValidationError", f"{name} {value!r}")
        order_id = next(self._ids)
        order = OdooOrder(id=order_id, name=f"P{order_id:05d}", values=values)
        self.orders[order_id] = order
        self.log.documents[order.name] = values
        return order_id


class _OdooError(Exception):
    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name, self.message = name, message


def _rpc_error(rpc_id: Any, name: str, message: str) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": rpc_id,
        "error": {
            "code": 200,
            "message": "Odoo Server Error",
            "data": {
                "name": name,
                "debug": "",
                "message": message,
                "arguments": [message],
                "context": {},
            },
        },
    }

"""Purchase requisitions: the records, their state machine, approvals and the ERP push queue,
stored in the relational database next to the inventory they order for.

A requisition is drafted from a purchase suggestion (or by hand), submitted, approved by as
many distinct approvers as the purchasing rules ask for its amount, site and category (none:
approved at submission), pushed to the ERP through the durable queue, and received into stock.

The inventory effects go through the inventory stores over the same connection, inside the
requisition's transaction: ordering moves the suggestion to ``ordered`` (its inbound line
counts the quantity as on order), receiving books the goods as ledger receipts and closes the
suggestion. See docs/purchasing.md.
"""

from __future__ import annotations

import builtins
import math
import secrets
import time
from typing import Any, Literal

from pydantic import BaseModel

from core import db
from core.db import SqlStore, claimed_by_worker
from core.errors import StockSenseError
from core.inventory import DAY_MS, RECEIVING_LOCATION, InventoryStores, Suggestion

RequisitionState = Literal[
    "draft", "submitted", "approved", "rejected", "ordered", "received", "cancelled"
]
PushStatus = Literal["pending", "sending", "done", "dead", "cancelled"]
Decision = Literal["approved", "rejected"]

TRANSITIONS: dict[RequisitionState, frozenset[RequisitionState]] = {
    "draft": frozenset({"submitted", "cancelled"}),
    "submitted": frozenset({"approved", "rejected", "cancelled"}),
    "approved": frozenset({"ordered", "cancelled"}),
    "rejected": frozenset(),
    "ordered": frozenset({"received", "cancelled"}),
    "received": frozenset(),
    "cancelled": frozenset(),
}
OPEN_STATES: frozenset[RequisitionState] = frozenset({"draft", "submitted", "approved", "ordered"})
_QTY_EPS = 1e-9  # float noise in unit quantities


def now_ms() -> int:
    """Wall-clock time in epoch milliseconds."""
    return time.time_ns() // 1_000_000


class RequisitionError(StockSenseError):
    """Base class of the requisition store's errors."""


class RequisitionNotFoundError(RequisitionError, KeyError):
    """The requisition does not exist."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "not found"


class RequisitionConflictError(RequisitionError):
    """The step is not allowed from the requisition's state (or the suggestion's)."""


class ApprovalRefusedError(RequisitionError):
    """The user may not decide this requisition (it is their own)."""


class Approval(BaseModel):
    """One approver's decision."""

    approver: str
    decision: Decision
    comment: str
    at: int


class ErpPush(BaseModel):
    """A requisition's row in the ERP push queue."""

    id: int
    requisition_id: int
    target: str
    idempotency_key: str
    status: PushStatus
    attempts: int
    next_attempt_at: int
    last_error: str | None
    document: str | None


class Requisition(BaseModel):
    """A purchase requisition with its approvals and ERP push (``push`` None: not queued)."""

    id: int
    site: str
    sku: str
    qty: float
    supplier: str | None
    unit_cost: float
    currency: str
    amount: float
    category: str | None
    suggestion_id: int | None
    state: RequisitionState
    approvals_required: int
    requested_by: str
    required_by: int | None
    note: str
    received_qty: float
    erp_target: str | None
    erp_document: str | None
    created_at: int
    updated_at: int
    approvals: list[Approval] = []
    push: ErpPush | None = None

    @property
    def approved_by(self) -> list[str]:
        """Approvers who approved, in order."""
        return [a.approver for a in self.approvals if a.decision == "approved"]

    @property
    def remaining_qty(self) -> float:
        """Quantity ordered and not yet received."""
        return max(self.qty - self.received_qty, 0.0)


class Draft(BaseModel):
    """What a new requisition holds before the store adds its state and people."""

    site: str
    sku: str
    qty: float
    supplier: str | None = None
    unit_cost: float = 0.0
    category: str | None = None
    suggestion_id: int | None = None
    required_by: int | None = None
    note: str = ""


def amount_of(qty: float, unit_cost: float) -> float:
    """The amount of ``qty`` at ``unit_cost``, to the cent (so 1,000 x 5.00 is 5,000.00)."""
    return round(qty * unit_cost, 2)


class RequisitionStore(SqlStore):
    """Requisitions, approvals and the push queue over one connection; inventory effects go
    through the inventory stores over the same connection and transaction."""

    def __init__(self, conn: db.Connection) -> None:
        super().__init__(conn)
        self.inventory = InventoryStores.over(conn)

    # -- drafting ---------------------------------------------------------------------------

    def draft_from_suggestion(
        self,
        suggestion_id: int,
        *,
        supplier: str | None = None,
        unit_cost: float | None = None,
        required_by: int | None = None,
        note: str = "",
        category: str | None = None,
        ts_ms: int,
    ) -> Draft:
        """A draft pre-filled from a pending suggestion and its SKU (409 unless pending)."""
        suggestion = self.inventory.planning.get_suggestion(suggestion_id)
        if suggestion.state != "suggested":
            raise RequisitionConflictError(
                f"suggestion {suggestion_id} is {suggestion.state}, not pending"
            )
        sku = self.inventory.catalog.get_sku(suggestion.sku)
        return Draft(
            site=suggestion.site,
            sku=suggestion.sku,
            qty=suggestion.qty,
            supplier=supplier if supplier is not None else sku.supplier,
            unit_cost=unit_cost if unit_cost is not None else sku.unit_cost,
            category=category,
            suggestion_id=suggestion_id,
            required_by=required_by
            if required_by is not None
            else ts_ms + round(sku.lead_time_days * DAY_MS),
            note=note,
        )

    def create(self, draft: Draft, *, currency: str, requested_by: str, ts_ms: int) -> Requisition:
        """Store a draft requisition of a known SKU (a suggestion has one open at most)."""
        sku = self.inventory.catalog.get_sku(draft.sku)
        required_by = draft.required_by
        if required_by is None:
            required_by = ts_ms + round(sku.lead_time_days * DAY_MS)
        with self.transaction():
            if draft.suggestion_id is not None:
                taken = self.open_for_suggestion(draft.suggestion_id)
                if taken is not None:
                    raise RequisitionConflictError(
                        f"suggestion {draft.suggestion_id} already has requisition {taken}"
                    )
            row_id = self._conn.insert(
                """INSERT INTO req_requisitions (site, sku, qty, supplier, unit_cost, currency,
                   amount, category, suggestion_id, requested_by, required_by, note,
                   created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    draft.site,
                    draft.sku,
                    draft.qty,
                    draft.supplier,
                    draft.unit_cost,
                    currency,
                    amount_of(draft.qty, draft.unit_cost),
                    draft.category,
                    draft.suggestion_id,
                    requested_by,
                    required_by,
                    draft.note,
                    ts_ms,
                    ts_ms,
                ),
            )
        return self.get(row_id)

    # -- reading ----------------------------------------------------------------------------

    def get(self, requisition_id: int) -> Requisition:
        """One requisition with its approvals and push row."""
        row = self._conn.execute(
            "SELECT * FROM req_requisitions WHERE id = ?", (requisition_id,)
        ).fetchone()
        if row is None:
            raise RequisitionNotFoundError(f"requisition {requisition_id} does not exist")
        approvals = [
            Approval.model_validate(dict(r))
            for r in self._conn.execute(
                "SELECT approver, decision, comment, at FROM req_approvals"
                " WHERE requisition_id = ? ORDER BY at, id",
                (requisition_id,),
            )
        ]
        push = self._conn.execute(
            "SELECT * FROM req_erp_queue WHERE requisition_id = ?", (requisition_id,)
        ).fetchone()
        return Requisition.model_validate(
            {
                **dict(row),
                "approvals": approvals,
                "push": None if push is None else _push(push),
            }
        )

    def open_for_suggestion(self, suggestion_id: int) -> int | None:
        """The id of the open requisition made from a suggestion, if there is one."""
        row = self._conn.execute(
            f"""SELECT id FROM req_requisitions WHERE suggestion_id = ?
                AND state IN ({", ".join("?" for _ in OPEN_STATES)})""",  # noqa: S608 - placeholders only
            (suggestion_id, *sorted(OPEN_STATES)),
        ).fetchone()
        return None if row is None else int(row[0])

    def list(
        self,
        *,
        site: str | None = None,
        state: RequisitionState | None = None,
        limit: int = 1000,
    ) -> builtins.list[Requisition]:
        """Requisitions, oldest first."""
        clauses, params = ["1 = 1"], []
        for clause, value in (("site = ?", site), ("state = ?", state)):
            if value is not None:
                clauses.append(clause)
                params.append(value)
        rows = self._conn.execute(
            f"SELECT id FROM req_requisitions WHERE {' AND '.join(clauses)} ORDER BY id LIMIT ?",  # noqa: S608 - fixed clauses
            (*params, limit),
        ).fetchall()
        return [self.get(int(r[0])) for r in rows]

    # -- the state machine ------------------------------------------------------------------

    def _move(self, current: Requisition, to: RequisitionState, ts_ms: int, **columns: Any) -> None:
        if to not in TRANSITIONS[current.state]:
            raise RequisitionConflictError(
                f"requisition {current.id} cannot go from {current.state} to {to}"
            )
        sets = "".join(f", {name} = ?" for name in columns)
        cur = self._conn.execute(
            f"UPDATE req_requisitions SET state = ?, updated_at = ?{sets}"  # noqa: S608 - names from the code
            " WHERE id = ? AND state = ?",
            (to, ts_ms, *columns.values(), current.id, current.state),
        )
        if cur.rowcount != 1:  # another request moved it first
            raise RequisitionConflictError(f"requisition {current.id} changed meanwhile: try again")

    def submit(
        self, requisition_id: int, *, approvals_required: int, erp_target: str | None, ts_ms: int
    ) -> Requisition:
        """draft → submitted, or straight to approved (and queued) when no approval is due."""
        with self.transaction():
            current = self.get(requisition_id)
            self._move(current, "submitted", ts_ms, approvals_required=approvals_required)
            if approvals_required == 0:
                self._approve(self.get(requisition_id), erp_target, ts_ms)
        return self.get(requisition_id)

    def decide(
        self,
        requisition_id: int,
        decision: Decision,
        *,
        approver: str,
        comment: str = "",
        erp_target: str | None,
        ts_ms: int,
    ) -> Requisition:
        """Record one approver's decision; the last approval due approves (and queues) it,
        one rejection rejects it. The requester and repeat approvers are refused."""
        with self.transaction():
            current = self.get(requisition_id)
            if current.state != "submitted":
                raise RequisitionConflictError(
                    f"requisition {requisition_id} is {current.state}: only a submitted one"
                    " is decided"
                )
            if approver == current.requested_by:
                raise ApprovalRefusedError(
                    f"requisition {requisition_id} was requested by {approver}: someone else"
                    " must decide it"
                )
            if any(a.approver == approver for a in current.approvals):
                raise RequisitionConflictError(
                    f"{approver} has already decided requisition {requisition_id}"
                )
            self._conn.execute(
                "INSERT INTO req_approvals (requisition_id, approver, decision, comment, at)"
                " VALUES (?, ?, ?, ?, ?)",
                (requisition_id, approver, decision, comment, ts_ms),
            )
            if decision == "rejected":
                self._move(current, "rejected", ts_ms)
            else:
                after = self.get(requisition_id)
                if len(after.approved_by) >= after.approvals_required:
                    self._approve(after, erp_target, ts_ms)
                else:
                    self._conn.execute(
                        "UPDATE req_requisitions SET updated_at = ? WHERE id = ?",
                        (ts_ms, requisition_id),
                    )
        return self.get(requisition_id)

    def _approve(self, current: Requisition, erp_target: str | None, ts_ms: int) -> None:
        self._move(current, "approved", ts_ms, erp_target=erp_target)
        if erp_target is not None:
            key = f"stocksense-req-{current.id}-{secrets.token_hex(6)}"
            self._conn.execute(
                """INSERT INTO req_erp_queue (requisition_id, target, idempotency_key,
                   next_attempt_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)""",
                (current.id, erp_target, key, ts_ms, ts_ms, ts_ms),
            )

    def cancel(self, requisition_id: int, *, ts_ms: int) -> Requisition:
        """Cancel an open requisition; one being sent to the ERP right now, or already in it
        but not yet marked ordered, answers 409 until the push settles."""
        with self.transaction():
            current = self.get(requisition_id)
            push = current.push
            if current.state == "approved" and push is not None:
                if push.status in ("sending", "done"):
                    raise RequisitionConflictError(
                        f"requisition {requisition_id} is being ordered in the ERP: cancel it"
                        " once it is ordered, and there too"
                    )
                self._set_push(push.id, "cancelled", ts_ms)
            self._move(current, "cancelled", ts_ms)
            suggestion = self._suggestion(current)
            if (
                current.state == "ordered"
                and suggestion is not None
                and suggestion.state == "ordered"
            ):
                self.inventory.planning.transition_suggestion(
                    suggestion.id, "cancelled", ts_ms=ts_ms
                )
        return self.get(requisition_id)

    def mark_ordered(self, requisition_id: int, *, document: str, ts_ms: int) -> Requisition:
        """approved → ordered with the ERP's document id; the suggestion is ordered with it."""
        with self.transaction():
            current = self.get(requisition_id)
            self._move(current, "ordered", ts_ms, erp_document=document)
            suggestion = self._suggestion(current)
            if suggestion is not None and suggestion.state == "suggested":
                self.inventory.planning.transition_suggestion(
                    suggestion.id,
                    "ordered",
                    ts_ms=ts_ms,
                    eta_ms=current.required_by,
                    qty=current.qty,  # on order is what the requisition orders
                )
        return self.get(requisition_id)

    def receive(
        self,
        requisition_id: int,
        qty: float,
        *,
        location: str = RECEIVING_LOCATION,
        final: bool = False,
        ts_ms: int,
    ) -> Requisition:
        """Book ``qty`` of an ordered requisition into stock at ``location``.

        It is received once the whole quantity arrived, or with ``final`` (the rest will not
        come). Every receipt is a ledger receipt of its own (ref ``requisition <id>``). The
        requisition's suggestion follows: what is left to come stays on order, and the
        suggestion is ``received`` when the requisition is (without booking it again).
        """
        with self.transaction():
            current = self.get(requisition_id)
            if current.state != "ordered":
                raise RequisitionConflictError(
                    f"requisition {requisition_id} is {current.state}: only an ordered one is"
                    " received"
                )
            if qty > current.remaining_qty + _QTY_EPS:
                raise RequisitionConflictError(
                    f"requisition {requisition_id} has {current.remaining_qty:g} left to"
                    f" receive, not {qty:g}"
                )
            received = current.received_qty + qty
            done = final or math.isclose(received, current.qty) or received >= current.qty
            self.inventory.ledger.record(
                ts_ms=ts_ms,
                site=current.site,
                location=location,
                sku=current.sku,
                qty=qty,
                kind="receipt",
                source="api",
                ref=f"requisition {requisition_id}",
            )
            suggestion = self._suggestion(current)
            if suggestion is not None and suggestion.state == "ordered":
                if done:
                    self.inventory.planning.transition_suggestion(
                        suggestion.id, "received", ts_ms=ts_ms, book_receipt=False
                    )
                else:
                    self.inventory.planning.still_on_order(
                        suggestion.id, current.qty - received, ts_ms=ts_ms
                    )
            if done:
                self._move(current, "received", ts_ms, received_qty=received)
            else:
                self._conn.execute(
                    "UPDATE req_requisitions SET received_qty = ?, updated_at = ? WHERE id = ?",
                    (received, ts_ms, requisition_id),
                )
        return self.get(requisition_id)

    def _suggestion(self, current: Requisition) -> Suggestion | None:
        if current.suggestion_id is None:
            return None
        return self.inventory.planning.get_suggestion(current.suggestion_id)

    # -- the ERP push queue -----------------------------------------------------------------

    def due(self, *, now: int, limit: int = 100) -> builtins.list[ErpPush]:
        """Pending pushes whose time has come, oldest first."""
        rows = self._conn.execute(
            """SELECT * FROM req_erp_queue WHERE status = 'pending' AND next_attempt_at <= ?
               ORDER BY next_attempt_at, id LIMIT ?""",
            (now, limit),
        )
        return [_push(r) for r in rows]

    def pushes(self, *, status: PushStatus | None = None) -> builtins.list[ErpPush]:
        """Every push row (optionally of one status), oldest first."""
        sql, params = "SELECT * FROM req_erp_queue", []
        if status is not None:
            sql, params = sql + " WHERE status = ?", [status]
        return [_push(r) for r in self._conn.execute(sql + " ORDER BY id", params)]

    def mark_sending(self, push_id: int, *, owner: str, at_ms: int) -> bool:
        """Claim a pending row for ``owner`` at ``at_ms``, just before its request goes out
        (False: another pusher or a cancellation took it).

        Like every write to the queue it takes the write lock, so it cannot slip between what
        a cancellation read and wrote: on PostgreSQL a lone statement would not wait for it.
        """
        with self.transaction():
            cur = self._conn.execute(
                "UPDATE req_erp_queue SET status = 'sending', claimed_by = ?, updated_at = ?"
                " WHERE id = ? AND status = 'pending'",
                (owner, at_ms, push_id),
            )
            return cur.rowcount == 1

    def recover_sending(self, *, worker: str | None, stale_before: int) -> builtins.list[ErpPush]:
        """Rows left ``sending`` by an earlier process of ``worker`` (or before rows named their
        pusher), and rows any pusher has been sending since before ``stale_before`` (it died and
        nobody of its name came back), made pending again: they are sent again with the same
        key. Rows a live pusher is sending now are left alone."""
        mine = "claimed_by IS NULL"
        params: tuple[object, ...] = ()
        if worker is not None:
            condition, params = claimed_by_worker(worker)
            mine = f"{mine} OR {condition}"
        with self.transaction():
            rows = self._conn.execute(
                f"""UPDATE req_erp_queue SET status = 'pending', claimed_by = NULL,
                   updated_at = ? WHERE status = 'sending' AND ({mine} OR updated_at < ?)
                   RETURNING *""",  # noqa: S608 - fixed conditions, values as parameters
                (now_ms(), *params, stale_before),
            ).fetchall()
        return sorted((_push(r) for r in rows), key=lambda push: push.id)

    def mark_retry(self, push_id: int, *, next_attempt_at: int, error: str) -> None:
        """Count a failed attempt and schedule the next."""
        with self.transaction():
            self._conn.execute(
                """UPDATE req_erp_queue SET status = 'pending', attempts = attempts + 1,
                   next_attempt_at = ?, last_error = ?, updated_at = ? WHERE id = ?""",
                (next_attempt_at, error, now_ms(), push_id),
            )

    def mark_dead(self, push_id: int, *, error: str) -> None:
        """Give up on a row (permanent failure or attempts exhausted)."""
        with self.transaction():
            self._conn.execute(
                """UPDATE req_erp_queue SET status = 'dead', attempts = attempts + 1,
                   last_error = ?, updated_at = ? WHERE id = ?""",
                (error, now_ms(), push_id),
            )

    def complete_push(self, push_id: int, *, document: str, ts_ms: int) -> Requisition:
        """The ERP holds the document: the row is done and the requisition ordered."""
        with self.transaction():
            row = self._conn.execute(
                "SELECT * FROM req_erp_queue WHERE id = ?", (push_id,)
            ).fetchone()
            push = _push(row)
            self._conn.execute(
                """UPDATE req_erp_queue SET status = 'done', attempts = attempts + 1,
                   document = ?, last_error = NULL, updated_at = ? WHERE id = ?""",
                (document, ts_ms, push_id),
            )
            return self.mark_ordered(push.requisition_id, document=document, ts_ms=ts_ms)

    def retry_push(self, requisition_id: int, *, ts_ms: int) -> Requisition:
        """Queue a push that was given up on again, with its key (and attempts from 0)."""
        with self.transaction():
            current = self.get(requisition_id)
            if current.state != "approved" or current.push is None:
                raise RequisitionConflictError(
                    f"requisition {requisition_id} is {current.state} and not waiting for the ERP"
                )
            if current.push.status != "dead":
                raise RequisitionConflictError(
                    f"the push of requisition {requisition_id} is {current.push.status}, not"
                    " given up"
                )
            self._conn.execute(
                """UPDATE req_erp_queue SET status = 'pending', attempts = 0,
                   next_attempt_at = ?, updated_at = ? WHERE id = ?""",
                (ts_ms, ts_ms, current.push.id),
            )
        return self.get(requisition_id)

    def _set_push(self, push_id: int, status: PushStatus, ts_ms: int) -> None:
        self._conn.execute(
            "UPDATE req_erp_queue SET status = ?, updated_at = ? WHERE id = ?",
            (status, ts_ms, push_id),
        )


def _push(row: db.Row) -> ErpPush:
    data = dict(row)
    data.pop("created_at")
    data.pop("updated_at")
    return ErpPush.model_validate(data)

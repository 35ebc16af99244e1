"""Purchase requisitions: drafted from a suggestion or by hand, submitted, approved by the
purchasing rules' number of distinct approvers, pushed to the ERP, received into stock.

Unknown ids answer 404, a step the state machine does not allow 409, an approver deciding
their own requisition or one outside their sites 403 (docs/purchasing.md).
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field

from api.bodies import STRICT
from api.deps import Connection, get_settings
from api.errors import answers
from api.fields import (
    Amount,
    IdentFilter,
    Integral,
    Quantity,
    RowId,
    Text,
    Timestamp,
)
from api.security import CanRead, actor, allow, audit, check_site, site_filters, visible
from core.auth import Principal
from core.identifiers import NO_NUL, Ident
from core.inventory import RECEIVING_LOCATION
from core.requisitions import (
    ApprovalRefusedError,
    Draft,
    Requisition,
    RequisitionConflictError,
    RequisitionNotFoundError,
    RequisitionState,
    RequisitionStore,
    now_ms,
)
from core.settings import Settings

router = APIRouter(prefix="/requisitions", tags=["requisitions"])

CanRequest = Annotated[Principal, Depends(allow("requisitions.create"))]
CanApprove = Annotated[Principal, Depends(allow("requisitions.approve"))]
Config = Annotated[Settings, Depends(get_settings)]

Who = Annotated[str, Field(min_length=1, max_length=128, pattern=NO_NUL)]
# A row id in a JSON body: JSON readers hold numbers as doubles, exact only up to 2**53 - 1,
# so a larger bound would let a reader round an out-of-range id into range.
BodyRowId = Annotated[int, Field(ge=1, le=2**53 - 1), Integral]
Supplier = Annotated[str, Field(min_length=1, max_length=140, pattern=NO_NUL)]
Document = Annotated[str, Field(min_length=1, max_length=140, pattern=NO_NUL)]
_BY = "Ignored with sign-in on: the signed-in user is recorded"


async def requisition_store(conn: Connection) -> RequisitionStore:
    """The requisition store over the request's connection."""
    return RequisitionStore(conn)


Store = Annotated[RequisitionStore, Depends(requisition_store)]


class _Details(BaseModel):
    """Fields both kinds of new requisition may give."""

    model_config = ConfigDict(strict=True, extra="forbid")

    supplier: Supplier | None = None
    unit_cost: Amount | None = None
    required_by: Timestamp | None = Field(
        default=None, description="Needed by (default: now + the SKU's lead time)"
    )
    note: Text = ""
    by: Who | None = Field(default=None, description=_BY)


class FromSuggestion(_Details):
    """A requisition pre-filled from a pending purchase suggestion and its SKU."""

    suggestion_id: BodyRowId


class ManualRequisition(_Details):
    """A requisition of a known SKU, not from a suggestion."""

    site: Ident
    sku: Ident
    qty: Quantity


class DecisionRequest(BaseModel):
    """An approver's decision; the signed-in user is recorded as who decided."""

    model_config = STRICT

    comment: Text = ""
    by: Who | None = Field(default=None, description=_BY)


class ReceiptRequest(BaseModel):
    """Goods received: ``final`` closes the requisition even when less than ordered came."""

    model_config = STRICT

    qty: Quantity
    location: Ident = RECEIVING_LOCATION
    final: bool = False


class OrderedRequest(BaseModel):
    """The ERP document an order was placed as, when no ERP is configured to push to."""

    model_config = STRICT

    document: Document


@contextmanager
def _store_answers() -> Iterator[None]:
    """The store's refusals as the API's answers."""
    try:
        yield
    except RequisitionNotFoundError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None
    except RequisitionConflictError as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None
    except ApprovalRefusedError as exc:
        raise HTTPException(status_code=403, detail=str(exc)) from None


def _target(settings: Settings) -> str | None:
    kind = settings.purchasing.erp.kind
    return None if kind == "none" else kind


def _get(store: RequisitionStore, who: Principal, requisition_id: int) -> Requisition:
    with _store_answers():
        found = store.get(requisition_id)
    check_site(who, found.site, f"requisition {requisition_id}")
    return found


@router.get("")
def list_requisitions(
    store: Store,
    who: CanRead,
    site: IdentFilter = None,
    state: RequisitionState | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> list[Requisition]:
    """Requisitions of the caller's sites, oldest first."""
    found = [r for where in site_filters(who, site) for r in store.list(site=where, state=state)]
    found.sort(key=lambda r: r.id)
    return visible(who, found)[:limit]


@router.post("", status_code=201, responses=answers(400, 404, 409))
def create_requisition(
    body: FromSuggestion | ManualRequisition,
    store: Store,
    who: CanRequest,
    conn: Connection,
    settings: Config,
) -> Requisition:
    """A draft requisition: from ``suggestion_id`` (409 unless the suggestion is pending and
    has no open requisition), or of ``site``, ``sku`` and ``qty``."""
    at = now_ms()
    categories = settings.purchasing.categories
    with _store_answers():
        if isinstance(body, FromSuggestion):
            suggestion = store.inventory.planning.get_suggestion(body.suggestion_id)
            check_site(who, suggestion.site, f"suggestion {body.suggestion_id}")
            draft = store.draft_from_suggestion(
                body.suggestion_id,
                supplier=body.supplier,
                unit_cost=body.unit_cost,
                required_by=body.required_by,
                note=body.note,
                category=categories.get(suggestion.sku),
                ts_ms=at,
            )
        else:
            check_site(who, body.site, "the requisition")
            sku = store.inventory.catalog.get_sku(body.sku)
            draft = Draft(
                site=body.site,
                sku=body.sku,
                qty=body.qty,
                supplier=body.supplier if body.supplier is not None else sku.supplier,
                unit_cost=body.unit_cost if body.unit_cost is not None else sku.unit_cost,
                category=categories.get(body.sku),
                required_by=body.required_by,
                note=body.note,
            )
        created = store.create(
            draft,
            currency=settings.purchasing.currency,
            requested_by=actor(who, body.by),
            ts_ms=at,
        )
    target = f"requisition {created.id}"
    audit(conn, who, "requisition.create", target, site=created.site, after=created)
    return created


@router.get("/{requisition_id}", responses=answers(404))
def get_requisition(requisition_id: RowId, store: Store, who: CanRead) -> Requisition:
    """One requisition with its approvals and ERP push."""
    return _get(store, who, requisition_id)


@router.post("/{requisition_id}/submit", responses=answers(404, 409))
def submit_requisition(
    requisition_id: RowId, store: Store, who: CanRequest, conn: Connection, settings: Config
) -> Requisition:
    """draft → submitted; approved (and queued for the ERP) at once when the rules ask for
    no approver."""
    before = _get(store, who, requisition_id)
    needed = settings.purchasing.approvals_required(before.amount, before.site, before.category)
    with _store_answers():
        after = store.submit(
            requisition_id, approvals_required=needed, erp_target=_target(settings), ts_ms=now_ms()
        )
    target = f"requisition {requisition_id}"
    audit(conn, who, "requisition.submit", target, site=after.site, before=before, after=after)
    return after


def _decide(
    *,
    requisition_id: int,
    decision: str,
    body: DecisionRequest | None,
    store: RequisitionStore,
    who: Principal,
    conn: Connection,
    settings: Settings,
) -> Requisition:
    body = body or DecisionRequest()
    before = _get(store, who, requisition_id)
    with _store_answers():
        after = store.decide(
            requisition_id,
            "approved" if decision == "approve" else "rejected",
            approver=actor(who, body.by),
            comment=body.comment,
            erp_target=_target(settings),
            ts_ms=now_ms(),
        )
    target = f"requisition {requisition_id}"
    action = f"requisition.{decision}"
    audit(conn, who, action, target, site=after.site, before=before, after=after)
    return after


@router.post("/{requisition_id}/approve", responses=answers(400, 404, 409))
def approve_requisition(
    *,
    requisition_id: RowId,
    store: Store,
    who: CanApprove,
    conn: Connection,
    settings: Config,
    body: DecisionRequest | None = None,
) -> Requisition:
    """One approval of a submitted requisition (403 for its requester, 409 for a repeat);
    the last one due approves it and queues it for the ERP."""
    return _decide(
        requisition_id=requisition_id,
        decision="approve",
        body=body,
        store=store,
        who=who,
        conn=conn,
        settings=settings,
    )


@router.post("/{requisition_id}/reject", responses=answers(400, 404, 409))
def reject_requisition(
    *,
    requisition_id: RowId,
    store: Store,
    who: CanApprove,
    conn: Connection,
    settings: Config,
    body: DecisionRequest | None = None,
) -> Requisition:
    """Reject a submitted requisition (403 for its requester)."""
    return _decide(
        requisition_id=requisition_id,
        decision="reject",
        body=body,
        store=store,
        who=who,
        conn=conn,
        settings=settings,
    )


@router.post("/{requisition_id}/cancel", responses=answers(404, 409))
def cancel_requisition(
    requisition_id: RowId, store: Store, who: CanRequest, conn: Connection
) -> Requisition:
    """Cancel an open requisition (409 while the ERP push is in flight or once received)."""
    before = _get(store, who, requisition_id)
    with _store_answers():
        after = store.cancel(requisition_id, ts_ms=now_ms())
    target = f"requisition {requisition_id}"
    audit(conn, who, "requisition.cancel", target, site=after.site, before=before, after=after)
    return after


@router.post("/{requisition_id}/ordered", responses=answers(400, 404, 409))
def record_order(
    *,
    requisition_id: RowId,
    body: OrderedRequest,
    store: Store,
    who: CanRequest,
    conn: Connection,
    settings: Config,
) -> Requisition:
    """approved → ordered as ``document``, placed by hand; 409 when an ERP is configured (the
    pusher records the ERP's own document)."""
    before = _get(store, who, requisition_id)
    if _target(settings) is not None or before.push is not None:
        raise HTTPException(
            status_code=409,
            detail=f"requisition {requisition_id} is ordered by the ERP push, not by hand",
        )
    with _store_answers():
        after = store.mark_ordered(requisition_id, document=body.document, ts_ms=now_ms())
    target = f"requisition {requisition_id}"
    audit(conn, who, "requisition.ordered", target, site=after.site, before=before, after=after)
    return after


@router.post("/{requisition_id}/push", responses=answers(404, 409))
def retry_push(
    requisition_id: RowId, store: Store, who: CanApprove, conn: Connection
) -> Requisition:
    """Queue a push the pusher gave up on again, with the same idempotency key."""
    before = _get(store, who, requisition_id)
    with _store_answers():
        after = store.retry_push(requisition_id, ts_ms=now_ms())
    target = f"requisition {requisition_id}"
    audit(conn, who, "requisition.push", target, site=after.site, before=before, after=after)
    return after


@router.post("/{requisition_id}/receipts", responses=answers(400, 404, 409))
def receive_requisition(
    requisition_id: RowId,
    body: ReceiptRequest,
    store: Store,
    who: CanRequest,
    conn: Connection,
) -> Requisition:
    """Book goods of an ordered requisition into stock (409 beyond what is left to come)."""
    before = _get(store, who, requisition_id)
    with _store_answers():
        after = store.receive(
            requisition_id, body.qty, location=body.location, final=body.final, ts_ms=now_ms()
        )
    target = f"requisition {requisition_id}"
    audit(conn, who, "requisition.receipt", target, site=after.site, before=before, after=after)
    return after

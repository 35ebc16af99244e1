"""GET /kpi: the inventory-health and alert-response figures the rules compute per site."""

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from api.deps import Connection
from api.errors import answers
from api.fields import INT64_MAX, EpochFilter, Segment
from api.security import CanRead, check_site
from core.kpi import KpiStore, SiteKpis, SkuKpi

router = APIRouter(prefix="/kpi", tags=["kpi"])


def _latest(store: KpiStore, site: str) -> SiteKpis:
    found = store.latest(site)
    if found is None:
        raise HTTPException(
            status_code=404,
            detail=f"no KPIs for site {site} yet: the rules compute them every few minutes",
        )
    return found


@router.get("")
def kpi_sites(conn: Connection, who: CanRead) -> list[SiteKpis]:
    """The latest rolling snapshot of every site the caller may see."""
    store = KpiStore(conn)
    found = [store.latest(site) for site in store.sites() if who.covers(site)]
    return [s for s in found if s is not None]


@router.get("/{site}", responses=answers(404))
def kpi_site(site: Segment, conn: Connection, who: CanRead) -> SiteKpis:
    """The latest rolling snapshot of one site (the last N days up to its time)."""
    check_site(who, site, "the site's KPIs")
    return _latest(KpiStore(conn), site)


@router.get("/{site}/skus/{sku}", responses=answers(404))
def kpi_sku(site: Segment, sku: Segment, conn: Connection, who: CanRead) -> SkuKpi:
    """One SKU's figures in the latest rolling snapshot of its site."""
    check_site(who, site, "the site's KPIs")
    found = _latest(KpiStore(conn), site).sku(sku)
    if found is None:
        raise HTTPException(status_code=404, detail=f"site {site} holds no stock of SKU {sku}")
    return found


@router.get("/{site}/days")
def kpi_days(
    *,
    site: Segment,
    conn: Connection,
    who: CanRead,
    since: EpochFilter = None,
    until: EpochFilter = None,
    limit: Annotated[int, Query(ge=1, le=3660)] = 400,
) -> list[SiteKpis]:
    """Daily roll-ups (one per local day) ending in ``[since, until]``, oldest first."""
    check_site(who, site, "the site's KPIs")
    return KpiStore(conn).history(
        site,
        "day",
        since_ms=since if since is not None else 0,
        until_ms=until if until is not None else INT64_MAX,
        limit=limit,
    )

"""Stock anomalies checked every tick: unexplained loss on shelves and misplaced RFID tags.

A pick is an unexplained loss when, within the loss window either side of it, no tag of the
SKU left a zone, no pick or issue was recorded through the API, the RFID side could see exits
and the shelf was not being handled. A tag is misplaced once it has settled for
``misplaced_after_s`` in a storage zone other than its SKU's home zone; the alert clears when no
tag of that SKU is left in the zone.
"""

from __future__ import annotations

from dataclasses import replace

from core.alerts import AlertCondition
from core.inventory import LedgerStore
from rules.inventory.alerting import InventoryAlerts
from rules.inventory.portals import RfidPortals
from rules.inventory.shelves import LossCheck, WeightShelves


class StockChecks:
    """Loss and misplaced-item checks over what the shelves and portals remember."""

    def __init__(
        self,
        *,
        ledger: LedgerStore,
        shelves: WeightShelves,
        portals: RfidPortals,
        alerts: InventoryAlerts,
        loss_window_s: float,
        misplaced_after_s: float,
    ) -> None:
        self._ledger = ledger
        self._shelves = shelves
        self._portals = portals
        self._alerts = alerts
        self._loss_window_s = loss_window_s
        self._window_ms = round(loss_window_s * 1000)
        self._settle_ms = round(misplaced_after_s * 1000)
        # Settled misplaced tags, with the condition reported for them (again each tick while
        # a debounce holds it back).
        self._misplaced: dict[tuple[str, str, str], AlertCondition] = {}

    def run(self, now_ms: int) -> None:
        """Both checks at ``now_ms``."""
        self.check_losses(now_ms)
        self.check_misplaced(now_ms)

    def check_losses(self, now_ms: int) -> None:
        """Raise ``unexplained_loss`` for every pick whose window passed without explanation."""
        for check in self._shelves.due_loss_checks(now_ms):
            if self._explained(check):
                continue
            self._alerts.report(
                AlertCondition(
                    source=f"{check.site}/{check.device}/{check.cell}",
                    type="unexplained_loss",
                    severity="major",
                    site=check.site,
                    title=f"Unexplained loss of {check.units} × {check.sku}",
                    message=(
                        f"{check.device}/{check.cell} lost {check.units} units with no RFID "
                        f"exit and no recorded pick within {self._loss_window_s:g} s"
                    ),
                    value=float(check.units),
                    threshold=None,
                    details={
                        "sku": check.sku,
                        "device": check.device,
                        "cell": check.cell,
                        "drop_at": check.ts_ms,
                        "window_s": self._loss_window_s,
                    },
                    at_ms=check.ts_ms + self._window_ms,
                ),
            )

    def check_misplaced(self, now_ms: int) -> None:
        """Raise ``misplaced_item`` for settled tags; clear it once the zone holds none."""
        fresh: set[tuple[str, str, str]] = set()
        for item in self._portals.settled_misplaced(now_ms, self._settle_ms):
            condition = AlertCondition(
                source=f"{item.site}/{item.zone}/{item.sku}",
                type="misplaced_item",
                severity="minor",
                site=item.site,
                zone=item.zone,
                title=f"{item.sku} in {item.zone}, home {item.home}",
                message=(
                    f"tag {item.epc} of {item.sku} settled in {item.zone};"
                    f" it belongs in {item.home}"
                ),
                value=None,
                threshold=None,
                details={"epc": item.epc, "sku": item.sku, "home_zone": item.home},
                at_ms=item.ts_ms + self._settle_ms,
            )
            where = (item.site, item.zone, item.sku)
            self._misplaced[where] = condition
            fresh.add(where)
            self._alerts.report(condition)
        lifecycle = self._alerts.lifecycle
        for where, condition in list(self._misplaced.items()):
            site, zone, sku = where
            if self._portals.count(site, zone, sku) == 0:
                del self._misplaced[where]
                self._alerts.clear(condition.source, "misplaced_item", now_ms, "tag left the zone")
            elif where not in fresh and lifecycle.is_pending(condition.source, condition.type):
                self._alerts.report(replace(condition, at_ms=now_ms))

    def _explained(self, check: LossCheck) -> bool:
        lo, hi = check.ts_ms - self._window_ms, check.ts_ms + self._window_ms
        if self._portals.exit_seen(check.site, check.sku, lo, hi):
            return True
        recorded = self._ledger.ledger(
            site=check.site,
            sku=check.sku,
            since_ms=lo,
            until_ms=hi,
            kinds=("pick", "issue"),
            source="api",
            limit=1,
        )
        if recorded:
            return True
        # Not evidence of loss while the RFID side could not see exits, or while the shelf
        # was being handled (a put or an ambiguous change right after the drop).
        return self._portals.blind_since(check.site, lo) or self._shelves.was_handled(check, lo, hi)

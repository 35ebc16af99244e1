"""Stock anomalies checked every tick: unexplained loss on shelves and misplaced RFID tags.

A sensed drop is an unexplained loss when recorded picks (:mod:`rules.inventory.picks`) do not
account for all of its units and, from the loss window before it began (the last reading at the
old level) to the loss window after it settled, no tag of the SKU left a zone, the RFID side
could see exits and the shelf was not being handled; the alert names the units left
unexplained. A drop is measured from its cell's counted level, so nothing is
judged before the cell has settled. A tag is misplaced once it has settled for
``misplaced_after_s`` in a storage zone other than its SKU's home zone; the alert clears when no
tag of that SKU is left in the zone.
"""

from __future__ import annotations

from dataclasses import replace

from core.alerts import AlertCondition
from rules.inventory.alerting import InventoryAlerts
from rules.inventory.picks import RecordedPicks
from rules.inventory.portals import RfidPortals
from rules.inventory.shelves import LossCheck, WeightShelves

_QTY_EPS = 1e-9


class StockChecks:
    """Loss and misplaced-item checks over what the shelves and portals remember."""

    def __init__(
        self,
        *,
        picks: RecordedPicks,
        shelves: WeightShelves,
        portals: RfidPortals,
        alerts: InventoryAlerts,
        loss_window_s: float,
        misplaced_after_s: float,
    ) -> None:
        self._picks = picks
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
        """Raise ``unexplained_loss`` for every drop whose window passed without explanation."""
        for check in self._shelves.new_loss_checks():
            self._picks.explain(check, now_ms)  # picks recorded before the drop
        for check in self._shelves.due_loss_checks(now_ms):
            self._picks.explain(check, now_ms)  # and those recorded since
            if check.unexplained <= _QTY_EPS or self._explained(check):
                continue
            units = check.unexplained
            self._alerts.report(
                AlertCondition(
                    source=f"{check.site}/{check.device}/{check.cell}",
                    type="unexplained_loss",
                    severity="major",
                    site=check.site,
                    title=f"Unexplained loss of {units:g} × {check.sku}",
                    message=(
                        f"{check.device}/{check.cell} lost {units:g} units with no RFID "
                        f"exit and no recorded pick within {self._loss_window_s:g} s"
                    ),
                    value=float(units),
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
        # Around the whole drop, as for recorded picks: a shelf that was away while it was
        # picked from settles long after the units left through the portal.
        lo, hi = check.since_ms - self._window_ms, check.ts_ms + self._window_ms
        if self._portals.exit_seen(check.site, check.sku, lo, hi):
            return True
        # Not evidence of loss while the RFID side could not see exits, or while the shelf
        # was being handled (a put or an ambiguous change right after the drop).
        return self._portals.blind_between(check.site, lo, hi) or self._shelves.was_handled(
            check, lo, hi
        )

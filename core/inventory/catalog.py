"""The catalog store: SKUs, weight-shelf cell bindings and RFID antenna zones."""

from __future__ import annotations

import builtins
from collections.abc import Iterable

from core import db
from core.errors import ConflictError, NotFoundError
from core.inventory.base import SqlStore, as_dict, now_ms, where_clause
from core.inventory.models import RfidZone, Shelf, Sku


class CatalogStore(SqlStore):
    """SKUs, shelf cells and reader antennas: the master data the rules bind readings to."""

    # -- SKUs -------------------------------------------------------------------------------

    def put_sku(self, sku: Sku) -> Sku:
        """Create or replace a SKU."""
        data = sku.model_dump()
        stamp = now_ms()
        cols = list(data)
        sets = ", ".join(f"{c} = excluded.{c}" for c in cols if c != "sku")
        try:
            self._conn.execute(
                f"INSERT INTO inv_skus ({', '.join(cols)}, created_at, updated_at) "  # noqa: S608 - columns come from the model
                f"VALUES ({', '.join('?' for _ in cols)}, ?, ?) "
                f"ON CONFLICT (sku) DO UPDATE SET {sets}, updated_at = excluded.updated_at",
                (*data.values(), stamp, stamp),
            )
        except db.IntegrityError as exc:
            raise ConflictError(f"SKU {sku.sku}: {_integrity(exc)}") from None
        return sku

    def get_sku(self, sku: str) -> Sku:
        """One SKU (``NotFoundError`` if unknown)."""
        row = self._conn.execute("SELECT * FROM inv_skus WHERE sku = ?", (sku,)).fetchone()
        if row is None:
            raise NotFoundError(f"SKU {sku} does not exist")
        return _sku(row)

    def skus(self) -> builtins.list[Sku]:
        """Every SKU, by id."""
        return [_sku(r) for r in self._conn.execute("SELECT * FROM inv_skus ORDER BY sku")]

    def delete_sku(self, sku: str) -> None:
        """Delete a SKU no shelf or lot refers to."""
        self.get_sku(sku)
        try:
            self._conn.execute("DELETE FROM inv_skus WHERE sku = ?", (sku,))
        except db.IntegrityError:
            raise ConflictError(f"SKU {sku} is still bound to shelves or lots") from None

    # -- shelves ------------------------------------------------------------------------------

    def put_shelf(self, shelf: Shelf) -> Shelf:
        """Create or replace the binding of a shelf cell."""
        self.get_sku(shelf.sku)
        self._conn.execute(
            """INSERT INTO inv_shelves (site, device, cell, sku, tare_grams, location, updated_at)
               VALUES (?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (site, device, cell) DO UPDATE SET sku = excluded.sku,
               tare_grams = excluded.tare_grams, location = excluded.location,
               updated_at = excluded.updated_at""",
            (
                shelf.site,
                shelf.device,
                shelf.cell,
                shelf.sku,
                shelf.tare_grams,
                shelf.location_id,
                now_ms(),
            ),
        )
        return shelf.model_copy(update={"location": shelf.location_id})

    def get_shelf(self, site: str, device: str, cell: str) -> Shelf:
        """One shelf cell binding."""
        row = self._conn.execute(
            "SELECT * FROM inv_shelves WHERE site = ? AND device = ? AND cell = ?",
            (site, device, cell),
        ).fetchone()
        if row is None:
            raise NotFoundError(f"shelf {site}/{device}/{cell} does not exist")
        return _shelf(row)

    def shelves(self, site: str | None = None) -> builtins.list[Shelf]:
        """Shelf cell bindings, optionally of one site."""
        sql, params = where_clause("SELECT * FROM inv_shelves", site=site)
        rows = self._conn.execute(sql + " ORDER BY site, device, cell", params)
        return [_shelf(r) for r in rows]

    def delete_shelf(self, site: str, device: str, cell: str) -> None:
        """Unbind a shelf cell."""
        self.get_shelf(site, device, cell)
        self._conn.execute(
            "DELETE FROM inv_shelves WHERE site = ? AND device = ? AND cell = ?",
            (site, device, cell),
        )

    # -- RFID zones ---------------------------------------------------------------------------

    def put_rfid_zone(self, zone: RfidZone) -> RfidZone:
        """Create or replace the zone of a reader antenna."""
        self._conn.execute(
            """INSERT INTO inv_rfid_zones (site, device, antenna, zone, role, updated_at)
               VALUES (?, ?, ?, ?, ?, ?)
               ON CONFLICT (site, device, antenna) DO UPDATE SET zone = excluded.zone,
               role = excluded.role, updated_at = excluded.updated_at""",
            (zone.site, zone.device, zone.antenna, zone.zone, zone.role, now_ms()),
        )
        return zone

    def get_rfid_zone(self, site: str, device: str, antenna: int) -> RfidZone:
        """One antenna binding."""
        row = self._conn.execute(
            "SELECT * FROM inv_rfid_zones WHERE site = ? AND device = ? AND antenna = ?",
            (site, device, antenna),
        ).fetchone()
        if row is None:
            raise NotFoundError(f"RFID antenna {site}/{device}/{antenna} does not exist")
        return _zone(row)

    def rfid_zones(self, site: str | None = None) -> builtins.list[RfidZone]:
        """Antenna bindings, optionally of one site."""
        sql, params = where_clause("SELECT * FROM inv_rfid_zones", site=site)
        rows = self._conn.execute(sql + " ORDER BY site, device, antenna", params)
        return [_zone(r) for r in rows]

    def delete_rfid_zone(self, site: str, device: str, antenna: int) -> None:
        """Unbind a reader antenna."""
        self.get_rfid_zone(site, device, antenna)
        self._conn.execute(
            "DELETE FROM inv_rfid_zones WHERE site = ? AND device = ? AND antenna = ?",
            (site, device, antenna),
        )

    # -- bulk load ----------------------------------------------------------------------------

    def load_catalog(
        self,
        *,
        skus: Iterable[Sku] = (),
        shelves: Iterable[Shelf] = (),
        rfid_zones: Iterable[RfidZone] = (),
    ) -> dict[str, int]:
        """Upsert SKUs, shelves and antenna bindings in one transaction; how many of each."""
        counts = {"skus": 0, "shelves": 0, "rfid_zones": 0}
        with self.transaction():
            for sku in skus:
                self.put_sku(sku)
                counts["skus"] += 1
            for shelf in shelves:
                self.put_shelf(shelf)
                counts["shelves"] += 1
            for zone in rfid_zones:
                self.put_rfid_zone(zone)
                counts["rfid_zones"] += 1
        return counts

    def catalog_signature(self) -> tuple[object, ...]:
        """Changes whenever SKUs, shelves or antenna bindings change (cheap reload check)."""
        return tuple(
            self._conn.execute(
                f"SELECT COUNT(*), MAX(updated_at) FROM {table}"  # noqa: S608 - fixed table names
            ).fetchone()[:]
            for table in ("inv_skus", "inv_shelves", "inv_rfid_zones")
        )


def _sku(row: db.Row) -> Sku:
    data = as_dict(row)
    data.pop("created_at")
    data.pop("updated_at")
    return Sku.model_validate(data)


def _shelf(row: db.Row) -> Shelf:
    data = as_dict(row)
    data.pop("updated_at")
    return Shelf.model_validate(data)


def _zone(row: db.Row) -> RfidZone:
    data = as_dict(row)
    data.pop("updated_at")
    return RfidZone.model_validate(data)


def _integrity(exc: db.IntegrityError) -> str:
    text = str(exc)
    # SQLite names the column ("UNIQUE constraint failed: inv_skus.gtin"), PostgreSQL the
    # constraint ('violates unique constraint "inv_skus_gtin_key"').
    if "inv_skus.gtin" in text or "inv_skus_gtin_key" in text:
        return "GTIN already belongs to another SKU"
    return text

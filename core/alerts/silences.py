"""The silence store: silences and maintenance windows, matched against alerts."""

from __future__ import annotations

import builtins
import logging

from core import db
from core.alerts.models import Silence, now_ms

logger = logging.getLogger(__name__)


class SilenceStore:
    """Silences by site/zone/type: a matching alert is recorded but notifies nobody."""

    def __init__(self, conn: db.Connection) -> None:
        self._conn = conn

    def create_silence(
        self,
        *,
        site: str | None,
        zone: str | None,
        type_: str | None,
        starts_at: int,
        ends_at: int,
        created_by: str,
        reason: str,
    ) -> Silence:
        """Store a silence or maintenance window."""
        if ends_at <= starts_at:
            raise ValueError("a silence must end after it starts")
        row_id = self._conn.insert(
            """INSERT INTO silences (site, zone, type, starts_at, ends_at, created_by, reason,
               created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
            (site, zone, type_, starts_at, ends_at, created_by, reason, now_ms()),
        )
        silence = self.silence(row_id)
        assert silence is not None
        logger.info(
            "silence %d by %s: site=%s zone=%s type=%s (%s)",
            silence.id,
            created_by,
            site,
            zone,
            type_,
            reason,
        )
        return silence

    def silence(self, silence_id: int) -> Silence | None:
        """One silence by id."""
        row = self._conn.execute("SELECT * FROM silences WHERE id = ?", (silence_id,)).fetchone()
        return None if row is None else Silence.model_validate(dict(row))

    def silences(
        self, *, at_ms: int | None = None, include_deleted: bool = False
    ) -> builtins.list[Silence]:
        """Silences, oldest first; with ``at_ms``, only those not yet over at that time."""
        sql = "SELECT * FROM silences WHERE 1 = 1"
        params: builtins.list[object] = []
        if not include_deleted:
            sql += " AND deleted_at IS NULL"
        if at_ms is not None:
            sql += " AND ends_at > ?"
            params.append(at_ms)
        rows = self._conn.execute(sql + " ORDER BY id", params).fetchall()
        return [Silence.model_validate(dict(r)) for r in rows]

    def delete_silence(
        self, silence_id: int, *, by: str, at_ms: int | None = None
    ) -> Silence | None:
        """End a silence (kept for the record); None if it does not exist or is deleted."""
        cur = self._conn.execute(
            """UPDATE silences SET deleted_at = ?, deleted_by = ?
               WHERE id = ? AND deleted_at IS NULL""",
            (at_ms or now_ms(), by, silence_id),
        )
        return None if cur.rowcount == 0 else self.silence(silence_id)

    def silence_for(self, site: str, zone: str | None, type_: str, at_ms: int) -> Silence | None:
        """The first silence covering an alert of site/zone/type at ``at_ms``."""
        row = self._conn.execute(
            """SELECT * FROM silences WHERE deleted_at IS NULL AND starts_at <= ? AND ends_at > ?
               AND (site IS NULL OR site = ?) AND (zone IS NULL OR zone = ?)
               AND (type IS NULL OR type = ?) ORDER BY id LIMIT 1""",
            (at_ms, at_ms, site, zone, type_),
        ).fetchone()
        return None if row is None else Silence.model_validate(dict(row))

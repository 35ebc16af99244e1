"""Alerts and the notification outbox, stored in the relational database.

One active alert per (source, type) is enforced by a partial unique index, so a rule that
fires again while its alert is open cannot create a duplicate, even across processes.
"""

from __future__ import annotations

import builtins
import json
import sqlite3
import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

Severity = Literal["critical", "major", "minor", "warning", "info"]
AlertState = Literal["active", "cleared"]
AlertEvent = Literal["raised", "cleared"]


def now_ms() -> int:
    """Wall-clock time in epoch milliseconds."""
    return time.time_ns() // 1_000_000


class Alert(BaseModel):
    """An alert as stored and served."""

    model_config = ConfigDict(frozen=True)

    id: int
    source: str
    type: str
    severity: Severity
    state: AlertState
    site: str
    zone: str | None
    title: str
    message: str
    value: float | None
    threshold: float | None
    details: dict[str, Any]
    raised_at: int
    cleared_at: int | None
    acked_by: str | None
    acked_at: int | None
    updated_at: int

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Alert:
        """Build from a database row."""
        data = dict(row)
        data["details"] = json.loads(data["details"])
        return cls.model_validate(data)


class OutboxItem(BaseModel):
    """One pending delivery of one alert event to one channel."""

    model_config = ConfigDict(frozen=True)

    id: int
    channel: str
    alert_id: int
    event: AlertEvent
    attempts: int
    status: str
    last_error: str | None


class AlertStore:
    """Alert lifecycle persistence and the outbox feeding the notifier."""

    def __init__(self, conn: sqlite3.Connection, channels: builtins.list[str]) -> None:
        self._conn = conn
        self.channels = channels

    def active(self, source: str, type_: str) -> Alert | None:
        """The open alert for (source, type), if any."""
        row = self._conn.execute(
            "SELECT * FROM alerts WHERE source = ? AND type = ? AND state = 'active'",
            (source, type_),
        ).fetchone()
        return None if row is None else Alert.from_row(row)

    def get(self, alert_id: int) -> Alert | None:
        """One alert by id."""
        row = self._conn.execute("SELECT * FROM alerts WHERE id = ?", (alert_id,)).fetchone()
        return None if row is None else Alert.from_row(row)

    def list(self, *, state: AlertState | None = None, limit: int = 100) -> list[Alert]:
        """Newest first."""
        if state is None:
            rows = self._conn.execute(
                "SELECT * FROM alerts ORDER BY raised_at DESC, id DESC LIMIT ?", (limit,)
            )
        else:
            rows = self._conn.execute(
                "SELECT * FROM alerts WHERE state = ? ORDER BY raised_at DESC, id DESC LIMIT ?",
                (state, limit),
            )
        return [Alert.from_row(r) for r in rows.fetchall()]

    def raise_alert(
        self,
        *,
        source: str,
        type_: str,
        severity: Severity,
        site: str,
        zone: str | None,
        title: str,
        message: str,
        value: float | None,
        threshold: float | None,
        details: dict[str, Any],
        at_ms: int,
    ) -> tuple[Alert, bool]:
        """Open an alert unless one is already active; returns (alert, created)."""
        existing = self.active(source, type_)
        if existing is not None:
            return existing, False
        stamp = now_ms()
        with self._tx():
            cur = self._conn.execute(
                """INSERT INTO alerts (source, type, severity, state, site, zone, title, message,
                   value, threshold, details, raised_at, updated_at)
                   VALUES (?, ?, ?, 'active', ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    source,
                    type_,
                    severity,
                    site,
                    zone,
                    title,
                    message,
                    value,
                    threshold,
                    json.dumps(details, ensure_ascii=False),
                    at_ms,
                    stamp,
                ),
            )
            alert_id = int(cur.lastrowid or 0)
            self._event(alert_id, "raised", at_ms)
            self._enqueue(alert_id, "raised", stamp)
        alert = self.get(alert_id)
        assert alert is not None
        return alert, True

    def clear(
        self, source: str, type_: str, *, at_ms: int, note: str | None = None
    ) -> Alert | None:
        """Clear the active alert for (source, type); returns it, or None if none was open."""
        existing = self.active(source, type_)
        if existing is None:
            return None
        stamp = now_ms()
        with self._tx():
            self._conn.execute(
                "UPDATE alerts SET state = 'cleared', cleared_at = ?, updated_at = ? WHERE id = ?",
                (at_ms, stamp, existing.id),
            )
            self._event(existing.id, "cleared", at_ms, note=note)
            self._enqueue(existing.id, "cleared", stamp)
        return self.get(existing.id)

    def ack(self, alert_id: int, *, by: str, at_ms: int | None = None) -> Alert | None:
        """Acknowledge an alert (who and when); None if it does not exist."""
        at = at_ms or now_ms()
        with self._tx():
            cur = self._conn.execute(
                "UPDATE alerts SET acked_by = ?, acked_at = ?, updated_at = ? WHERE id = ?",
                (by, at, at, alert_id),
            )
            if cur.rowcount == 0:
                return None
            self._event(alert_id, "acked", at, actor=by)
        return self.get(alert_id)

    def events(self, alert_id: int) -> builtins.list[dict[str, Any]]:
        """History of one alert, oldest first."""
        rows = self._conn.execute(
            "SELECT event, at, actor, note FROM alert_events WHERE alert_id = ? ORDER BY id",
            (alert_id,),
        )
        return [dict(r) for r in rows.fetchall()]

    # -- outbox ---------------------------------------------------------------------------

    def due(self, *, now: int, limit: int = 100) -> builtins.list[OutboxItem]:
        """Pending deliveries whose next attempt is due, oldest first."""
        rows = self._conn.execute(
            """SELECT id, channel, alert_id, event, attempts, status, last_error FROM outbox
               WHERE status = 'pending' AND next_attempt_at <= ? ORDER BY id LIMIT ?""",
            (now, limit),
        )
        return [OutboxItem.model_validate(dict(r)) for r in rows.fetchall()]

    def mark_sent(self, item_id: int) -> None:
        """The channel accepted the message."""
        self._conn.execute(
            "UPDATE outbox SET status = 'sent', sent_at = ?, attempts = attempts + 1 WHERE id = ?",
            (now_ms(), item_id),
        )

    def mark_retry(self, item_id: int, *, next_attempt_at: int, error: str) -> None:
        """A transient failure: try again later."""
        self._conn.execute(
            """UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ?
               WHERE id = ?""",
            (next_attempt_at, error, item_id),
        )

    def mark_dead(self, item_id: int, *, error: str) -> None:
        """A permanent failure: stop trying, keep the reason."""
        self._conn.execute(
            """UPDATE outbox SET status = 'dead', attempts = attempts + 1, last_error = ?
               WHERE id = ?""",
            (error, item_id),
        )

    def outbox(self, *, status: str | None = None) -> builtins.list[OutboxItem]:
        """All outbox rows (optionally of one status), oldest first."""
        sql = "SELECT id, channel, alert_id, event, attempts, status, last_error FROM outbox"
        params: tuple[str, ...] = ()
        if status is not None:
            sql += " WHERE status = ?"
            params = (status,)
        rows = self._conn.execute(sql + " ORDER BY id", params)
        return [OutboxItem.model_validate(dict(r)) for r in rows.fetchall()]

    def _enqueue(self, alert_id: int, event: AlertEvent, stamp: int) -> None:
        for channel in self.channels:
            self._conn.execute(
                """INSERT OR IGNORE INTO outbox
                   (channel, alert_id, event, next_attempt_at, created_at)
                   VALUES (?, ?, ?, ?, ?)""",
                (channel, alert_id, event, stamp, stamp),
            )

    def _event(
        self,
        alert_id: int,
        event: str,
        at: int,
        *,
        actor: str | None = None,
        note: str | None = None,
    ) -> None:
        self._conn.execute(
            "INSERT INTO alert_events (alert_id, event, at, actor, note) VALUES (?, ?, ?, ?, ?)",
            (alert_id, event, at, actor, note),
        )

    def _tx(self) -> _Transaction:
        return _Transaction(self._conn)


class _Transaction:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._conn.execute("COMMIT" if exc_type is None else "ROLLBACK")

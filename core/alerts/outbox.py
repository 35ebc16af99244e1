"""The outbox store: one row per alert event and channel, until the channel accepted it.

Rows are queued in the transaction that records the event (see
:class:`~core.alerts.state.AlertStateStore`), so an alert never goes unannounced after a crash;
the notifier claims the due rows, marks them ``sending``, then ``sent``, ``pending`` again for
a retry, or ``dead``.
"""

from __future__ import annotations

import builtins
import sqlite3
from collections.abc import Callable, Iterable, Sequence

from core.alerts.models import INFLUX_CHANNEL, Alert, AlertEvent, OutboxItem, now_ms

_OUTBOX_COLUMNS = "id, channel, alert_id, event, occurrence, seq, attempts, status, last_error"


class OutboxStore:
    """Pending deliveries feeding the notifier.

    ``on_enqueue`` is called by :meth:`wake` after a transaction queued deliveries (wire it to
    ``Notifier.wake``).
    """

    def __init__(
        self, conn: sqlite3.Connection, *, on_enqueue: Callable[[], None] | None = None
    ) -> None:
        self._conn = conn
        self.on_enqueue = on_enqueue
        self._enqueued = False

    def enqueue(
        self,
        alert: Alert,
        event: AlertEvent,
        channels: Sequence[str],
        stamp: int,
        *,
        seq: int = 0,
    ) -> None:
        """Queue ``event`` of ``alert`` for each of ``channels``, inside the caller's
        transaction; once it committed, :meth:`wake` tells the notifier. ``seq`` tells apart
        events sent more than once per occurrence (the n-th reminder)."""
        for channel in channels:
            self._conn.execute(
                """INSERT OR IGNORE INTO outbox
                   (channel, alert_id, event, occurrence, seq, next_attempt_at, created_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?)""",
                (channel, alert.id, event, alert.occurrence, seq, stamp, stamp),
            )
        self._enqueued = self._enqueued or bool(channels)

    def wake(self) -> None:
        """Call ``on_enqueue`` if deliveries were queued since the last call."""
        if self._enqueued and self.on_enqueue is not None:
            self._enqueued = False
            self.on_enqueue()
        self._enqueued = False

    def due(self, *, now: int, limit: int = 100) -> builtins.list[OutboxItem]:
        """Pending deliveries whose next attempt is due, oldest first."""
        rows = self._conn.execute(
            f"""SELECT {_OUTBOX_COLUMNS} FROM outbox
               WHERE status = 'pending' AND next_attempt_at <= ? ORDER BY id LIMIT ?""",  # noqa: S608
            (now, limit),
        )
        return [OutboxItem.model_validate(dict(r)) for r in rows.fetchall()]

    def mark_sending(self, item_ids: Iterable[int]) -> None:
        """About to send: a crash from here to :meth:`mark_sent` leaves the row 'sending'."""
        self._conn.executemany(
            "UPDATE outbox SET status = 'sending' WHERE id = ?", [(i,) for i in item_ids]
        )

    def recover_sending(self) -> builtins.list[OutboxItem]:
        """Put rows left 'sending' by a crash back to 'pending'; returns them.

        Their outcome is unknown (the channel may have accepted the message before the crash):
        they are sent again, carrying the same idempotency key, so a receiver that
        deduplicates sees them once. Robots cannot deduplicate: we accept a rare repeated
        message over a lost alert (at-least-once).
        """
        rows = self.outbox(status="sending")
        if rows:
            self._conn.execute(
                """UPDATE outbox SET status = 'pending',
                   last_error = 'interrupted while sending; sent again' WHERE status = 'sending'"""
            )
        return rows

    def mark_sent(self, item_id: int) -> None:
        """The channel accepted the message."""
        self._conn.execute(
            "UPDATE outbox SET status = 'sent', sent_at = ?, attempts = attempts + 1 WHERE id = ?",
            (now_ms(), item_id),
        )

    def mark_retry(self, item_id: int, *, next_attempt_at: int, error: str) -> None:
        """A transient failure: try again later."""
        self._conn.execute(
            """UPDATE outbox SET status = 'pending', attempts = attempts + 1,
               next_attempt_at = ?, last_error = ? WHERE id = ?""",
            (next_attempt_at, error, item_id),
        )

    def mark_pending(self, item_ids: Iterable[int]) -> None:
        """Not attempted after all (the channel paused): back to 'pending', no attempt spent."""
        self._conn.executemany(
            "UPDATE outbox SET status = 'pending' WHERE id = ? AND status = 'sending'",
            [(i,) for i in item_ids],
        )

    def mark_dead(self, item_id: int, *, error: str) -> None:
        """A permanent failure: stop trying, keep the reason."""
        self._conn.execute(
            """UPDATE outbox SET status = 'dead', attempts = attempts + 1, last_error = ?
               WHERE id = ?""",
            (error, item_id),
        )

    def outbox(
        self, *, status: str | None = None, alert_id: int | None = None
    ) -> builtins.list[OutboxItem]:
        """All outbox rows (optionally of one status or alert), oldest first."""
        sql = f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE 1 = 1"  # noqa: S608
        params: builtins.list[object] = []
        if status is not None:
            sql += " AND status = ?"
            params.append(status)
        if alert_id is not None:
            sql += " AND alert_id = ?"
            params.append(alert_id)
        rows = self._conn.execute(sql + " ORDER BY id", params)
        return [OutboxItem.model_validate(dict(r)) for r in rows.fetchall()]

    def last_events(self, alert_id: int) -> dict[str, str]:
        """The last event queued for each people channel (not InfluxDB) of an alert."""
        rows = self._conn.execute(
            "SELECT channel, event FROM outbox WHERE alert_id = ? AND channel != ? ORDER BY id",
            (alert_id, INFLUX_CHANNEL),
        ).fetchall()
        return {str(r["channel"]): str(r["event"]) for r in rows}

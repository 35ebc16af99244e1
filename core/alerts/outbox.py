"""The outbox store: one row per alert event and channel, until the channel accepted it.

Rows are queued in the transaction that records the event (see
:class:`~core.alerts.state.AlertStateStore`), so an alert never goes unannounced after a crash;
the notifier claims the due rows for a lease, marks each ``sending`` just before it sends it,
then ``sent``, ``pending`` again for a retry, or ``dead``. A claim is one write transaction, so
notifiers in several processes can share one database: each row is claimed by one of them at a
time, and a notifier checks and renews its claim as it marks a row ``sending``, so a row whose
lease ran out and was taken by another is not sent twice.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable, Sequence

from core import db
from core.alerts.models import INFLUX_CHANNEL, Alert, AlertEvent, OutboxItem, now_ms
from core.db import SqlStore, claimed_by_worker

_OUTBOX_COLUMNS = "id, channel, alert_id, event, occurrence, seq, attempts, status, last_error"
# A claim is a write transaction, so claims never interleave on either engine. On PostgreSQL the
# due rows are also locked as they are picked, skipping rows another transaction holds: a claim
# stays one-row-one-owner even if it ever runs beside the write lock. SQLite has no row locks.
_LOCK_PICKED = {db.Engine.POSTGRESQL: " FOR UPDATE SKIP LOCKED"}


class OutboxStore(SqlStore):
    """Pending deliveries feeding the notifier.

    ``on_enqueue`` is called by :meth:`wake` after a transaction queued deliveries (wire it to
    ``Notifier.wake``).
    """

    def __init__(
        self, conn: db.Connection, *, on_enqueue: Callable[[], None] | None = None
    ) -> None:
        super().__init__(conn)
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
                """INSERT INTO outbox
                   (channel, alert_id, event, occurrence, seq, next_attempt_at, created_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING""",
                (channel, alert.id, event, alert.occurrence, seq, stamp, stamp),
            )
        self._enqueued = self._enqueued or bool(channels)

    def wake(self) -> None:
        """Call ``on_enqueue`` if deliveries were queued since the last call."""
        if self._enqueued and self.on_enqueue is not None:
            self._enqueued = False
            self.on_enqueue()
        self._enqueued = False

    def claim(
        self, *, owner: str, now: int, lease_ms: int, limit: int = 100
    ) -> builtins.list[OutboxItem]:
        """Claim for ``owner``, until ``now + lease_ms``, the pending rows due at ``now`` that no
        other notifier holds, oldest first. Rows another notifier left ``sending`` past its
        lease are pending again first (it stopped or hung mid-send: they are sent again under
        the same key)."""
        lock = _LOCK_PICKED.get(self._conn.engine, "")
        with self.transaction():
            self._resend("COALESCE(claimed_until, 0) < ?", (now,))
            rows = self._conn.execute(
                f"""UPDATE outbox SET claimed_by = ?, claimed_until = ?
                   WHERE id IN (SELECT id FROM outbox
                                WHERE status = 'pending' AND next_attempt_at <= ?
                                  AND COALESCE(claimed_until, 0) < ?
                                ORDER BY id LIMIT ?{lock})
                   RETURNING {_OUTBOX_COLUMNS}""",  # noqa: S608
                (owner, now + lease_ms, now, now, limit),
            ).fetchall()
        return sorted((OutboxItem.model_validate(dict(r)) for r in rows), key=lambda i: i.id)

    def mark_sending(self, item_ids: Iterable[int], *, owner: str, until: int) -> bool:
        """About to send these rows: ``sending``, and ``owner``'s claim renewed to ``until``.
        False, and nothing changed, if any of them is no longer ``owner``'s (another notifier
        took it over). A crash from here to :meth:`mark_sent` leaves the rows ``sending``."""
        ids = list(item_ids)
        marks = ",".join("?" * len(ids))
        with self.transaction():
            (owned,) = self._conn.execute(
                f"""SELECT COUNT(*) FROM outbox WHERE id IN ({marks}) AND claimed_by = ?
                   AND status IN ('pending', 'sending')""",  # noqa: S608
                (*ids, owner),
            ).fetchone()
            if owned != len(ids):
                return False
            self._conn.execute(
                f"""UPDATE outbox SET status = 'sending', claimed_until = ?
                   WHERE id IN ({marks})""",  # noqa: S608
                (until, *ids),
            )
        return True

    def release(self, owner: str) -> int:
        """Give up ``owner``'s claims on rows still pending (the end of a pass: retries, and
        what a robot's budget left for later); returns how many."""
        with self.transaction():
            return self._conn.execute(
                """UPDATE outbox SET claimed_by = NULL, claimed_until = NULL
                   WHERE status = 'pending' AND claimed_by = ?""",
                (owner,),
            ).rowcount

    def recover_sending(self, worker: str) -> builtins.list[OutboxItem]:
        """Put back to 'pending' the rows a stop of ``worker`` left 'sending' (claimed by an
        earlier process of that name, or before claims had owners); returns them.

        Their outcome is unknown (the channel may have accepted the message before the crash):
        they are sent again, carrying the same idempotency key, so a receiver that
        deduplicates sees them once. Robots cannot deduplicate: we accept a rare repeated
        message over a lost alert (at-least-once). Rows of other live workers keep their claim;
        those of a worker that never comes back are due again when its lease runs out.
        """
        mine, params = claimed_by_worker(worker)
        with self.transaction():
            rows = self._resend(f"claimed_by IS NULL OR {mine}", params)
            # and what it had claimed without sending yet is free at once
            self._conn.execute(
                f"""UPDATE outbox SET claimed_by = NULL, claimed_until = NULL
                   WHERE status = 'pending' AND {mine}""",  # noqa: S608
                params,
            )
        return rows

    def _resend(self, condition: str, params: tuple[object, ...]) -> builtins.list[OutboxItem]:
        """Put the ``sending`` rows matching ``condition`` back to pending, to be sent again
        under their key; returns them."""
        rows = self._conn.execute(
            f"""UPDATE outbox SET status = 'pending', claimed_by = NULL, claimed_until = NULL,
               last_error = 'interrupted while sending; sent again'
               WHERE status = 'sending' AND ({condition})
               RETURNING {_OUTBOX_COLUMNS}""",  # noqa: S608
            params,
        ).fetchall()
        return sorted((OutboxItem.model_validate(dict(r)) for r in rows), key=lambda i: i.id)

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

"""Store-and-forward: an on-disk queue of messages to publish (SQLite in WAL mode).

One row per message, in the order they were made; a row is deleted only once the broker
acknowledged it (PUBACK). ``seq`` per device lives in the same file, assigned in the same
transaction as the row, so it survives restarts and never repeats. The queue is bounded in
bytes and in age; over the bound the oldest rows go first and are counted.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge.errors import QueueError

logger = logging.getLogger(__name__)

PayloadBuilder = Callable[[int], bytes]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    readings INTEGER NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS seq (device TEXT PRIMARY KEY, next INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class Row:
    """One queued message."""

    id: int
    device: str
    topic: str
    payload: bytes
    readings: int
    created: float


@dataclass(frozen=True, slots=True)
class Dropped:
    """What an overflow or expiry removed."""

    messages: int
    readings: int


class DiskQueue:
    """The outbox; safe to use from several threads (one connection under a lock)."""

    def __init__(
        self, path: Path, *, max_bytes: int, max_age_s: float, synchronous: str = "full"
    ) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous.upper()}")
            self._db.executescript(_SCHEMA)
            count, size = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM outbox"
            ).fetchone()
        except sqlite3.Error as exc:
            raise QueueError(f"queue {path}: {exc}") from None
        self._count = int(count)
        self._bytes = int(size)

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._db.close()

    def depth(self) -> tuple[int, int]:
        """Messages and bytes queued."""
        with self._lock:
            return self._count, self._bytes

    def oldest_age_s(self, now: float | None = None) -> float:
        """Age of the oldest queued message, 0 when empty."""
        with self._lock:
            row = self._db.execute("SELECT MIN(created) FROM outbox").fetchone()
        if row[0] is None:
            return 0.0
        return max(0.0, (time.time() if now is None else now) - float(row[0]))

    def counter(self, name: str) -> int:
        """A persisted counter: ``queued_readings``, ``dropped_messages``, ``dropped_readings``."""
        with self._lock:
            row = self._db.execute("SELECT value FROM counters WHERE name=?", (name,)).fetchone()
        return int(row[0]) if row else 0

    def put(self, device: str, topic: str, build: PayloadBuilder, readings: int) -> int:
        """Assign the device's next ``seq``, build the payload with it and queue it; the seq."""
        now = time.time()
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                row = self._db.execute("SELECT next FROM seq WHERE device=?", (device,)).fetchone()
                seq = int(row[0]) if row else 0
                payload = build(seq)
                self._db.execute(
                    "INSERT INTO seq(device, next) VALUES(?, ?) "
                    "ON CONFLICT(device) DO UPDATE SET next=excluded.next",
                    (device, seq + 1),
                )
                self._db.execute(
                    "INSERT INTO outbox(device, topic, payload, readings, created)"
                    " VALUES(?, ?, ?, ?, ?)",
                    (device, topic, payload, readings, now),
                )
                self._db.execute(
                    "INSERT INTO counters(name, value) VALUES('queued_readings', ?) "
                    "ON CONFLICT(name) DO UPDATE SET value=value+excluded.value",
                    (readings,),
                )
                self._count += 1
                self._bytes += len(payload)
                dropped = self._trim_locked(now)
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback_locked()
                raise QueueError(f"queue {self.path}: {exc}") from None
            self._changed.notify_all()
        if dropped.messages:
            logger.warning(
                "queue over its bound: dropped the %d oldest messages (%d readings)",
                dropped.messages,
                dropped.readings,
            )
        return seq

    def expire(self) -> Dropped:
        """Drop messages older than the age bound (call periodically)."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                dropped = self._trim_locked(time.time())
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback_locked()
                raise QueueError(f"queue {self.path}: {exc}") from None
        return dropped

    def _rollback_locked(self) -> None:
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")
        count, size = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM outbox"
        ).fetchone()
        self._count, self._bytes = int(count), int(size)

    def _trim_locked(self, now: float) -> Dropped:
        messages = readings = 0
        cutoff = now - self.max_age_s
        while self._count and self._bytes > self.max_bytes:
            batch = self._db.execute(
                "SELECT id, LENGTH(payload), readings FROM outbox ORDER BY id LIMIT 256"
            ).fetchall()
            last = None
            for row_id, size, n in batch:
                if self._bytes <= self.max_bytes:
                    break
                self._bytes -= int(size)
                self._count -= 1
                messages += 1
                readings += int(n)
                last = row_id
            if last is None:
                break
            self._db.execute("DELETE FROM outbox WHERE id<=?", (last,))
        old = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0), COALESCE(SUM(readings), 0)"
            " FROM outbox WHERE created<?",
            (cutoff,),
        ).fetchone()
        if old[0]:
            self._db.execute("DELETE FROM outbox WHERE created<?", (cutoff,))
            self._count -= int(old[0])
            self._bytes -= int(old[1])
            messages += int(old[0])
            readings += int(old[2])
        if messages:
            for name, value in (("dropped_messages", messages), ("dropped_readings", readings)):
                self._db.execute(
                    "INSERT INTO counters(name, value) VALUES(?, ?) "
                    "ON CONFLICT(name) DO UPDATE SET value=value+excluded.value",
                    (name, value),
                )
        return Dropped(messages, readings)

    def peek_after(self, after_id: int, limit: int, timeout_s: float) -> list[Row]:
        """Up to ``limit`` rows with id above ``after_id``, waiting up to ``timeout_s`` for one."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while True:
                rows = self._db.execute(
                    "SELECT id, device, topic, payload, readings, created FROM outbox"
                    " WHERE id>? ORDER BY id LIMIT ?",
                    (after_id, limit),
                ).fetchall()
                remaining = deadline - time.monotonic()
                if rows or remaining <= 0:
                    break
                self._changed.wait(remaining)
        return [Row(int(r[0]), r[1], r[2], bytes(r[3]), int(r[4]), float(r[5])) for r in rows]

    def remove(self, ids: list[int]) -> None:
        """Delete acknowledged rows (ids that are already gone are ignored)."""
        if not ids:
            return
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                for start in range(0, len(ids), 500):
                    chunk = ids[start : start + 500]
                    marks = ",".join("?" * len(chunk))
                    count, size = self._db.execute(
                        f"SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM outbox"  # noqa: S608 - placeholders only
                        f" WHERE id IN ({marks})",
                        chunk,
                    ).fetchone()
                    self._db.execute(f"DELETE FROM outbox WHERE id IN ({marks})", chunk)  # noqa: S608 - placeholders only
                    self._count -= int(count)
                    self._bytes -= int(size)
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback_locked()
                raise QueueError(f"queue {self.path}: {exc}") from None

    def wake(self) -> None:
        """Wake a waiting :meth:`peek_after` (on stop)."""
        with self._lock:
            self._changed.notify_all()


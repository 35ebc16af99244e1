"""Per-robot send budgets, and what a rate-limited robot channel offers the notifier.

Both robots allow 20 messages in any 60 s and count a sliding window of request times (WeCom
counts failed requests too; going over costs DingTalk a 10-minute throttle). A classic token
bucket refilling continuously would allow its capacity *plus* a minute's refill inside one
window, so the bucket here returns each token exactly ``window_s`` after it was spent: the
number of sends in any window can never exceed ``capacity``. The sends are counted in the
database, so notifiers of several processes posting to one robot share its budget: the robot
counts requests, not processes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from core import db
from core.alerts import Alert, AlertEvent
from core.db import write_transaction
from rules.notify.digest import DigestEntry

Clock = Callable[[], float]

ROBOT_LIMIT_PER_MINUTE = 20
# One message below the robots' limit and one second beyond their window: our send time is
# taken before the request, the receiver's on arrival, so the two windows never line up exactly.
SAFETY_MESSAGES = 1
SAFETY_WINDOW_S = 1.0


class TokenBucket:
    """At most ``capacity`` sends in any ``window_s`` seconds; can be paused after a penalty.

    Its sends and its pause are rows in the database, under ``key`` (the channel's name), so
    every notifier process over the database spends from one budget.
    """

    def __init__(
        self,
        conn: db.Connection,
        key: str,
        *,
        capacity: int,
        window_s: float,
        clock: Clock = time.time,
    ) -> None:
        if capacity < 1 or window_s <= 0:
            raise ValueError("capacity must be >= 1 and window_s > 0")
        self.capacity = capacity
        self.window_s = window_s
        self._clock = clock
        self._conn = conn
        self._key = key

    @classmethod
    def for_robot(
        cls,
        conn: db.Connection,
        key: str,
        limit_per_minute: int = ROBOT_LIMIT_PER_MINUTE,
        *,
        clock: Clock = time.time,
    ) -> TokenBucket:
        """A bucket with the safety margins for a robot allowing ``limit_per_minute``."""
        return cls(
            conn,
            key,
            capacity=max(1, limit_per_minute - SAFETY_MESSAGES),
            window_s=60.0 + SAFETY_WINDOW_S,
            clock=clock,
        )

    @property
    def paused_until(self) -> float:
        """Clock time before which nothing may be sent (0 when not paused)."""
        row = self._conn.execute(
            "SELECT paused_until FROM robot_pauses WHERE channel = ?", (self._key,)
        ).fetchone()
        return 0.0 if row is None else float(row[0])

    def _spent_since(self, now: float) -> list[float]:
        rows = self._conn.execute(
            "SELECT sent_at FROM robot_sends WHERE channel = ? AND sent_at > ? ORDER BY sent_at",
            (self._key, now - self.window_s),
        ).fetchall()
        return [float(r[0]) for r in rows]

    def available(self) -> int:
        """Tokens that may be spent right now, by any notifier (0 while paused)."""
        now = self._clock()
        if now < self.paused_until:
            return 0
        return self.capacity - len(self._spent_since(now))

    def try_acquire(self) -> bool:
        """Spend one token if one is available (one write transaction); every request attempt
        must spend one."""
        with write_transaction(self._conn):
            now = self._clock()
            self._conn.execute(
                "DELETE FROM robot_sends WHERE channel = ? AND sent_at <= ?",
                (self._key, now - self.window_s),
            )
            acquired = self.available() > 0
            if acquired:
                self._conn.execute(
                    "INSERT INTO robot_sends (channel, sent_at) VALUES (?, ?)", (self._key, now)
                )
        return acquired

    def next_available_at(self) -> float:
        """Clock time at which the next token will be available."""
        now = self._clock()
        spent = self._spent_since(now)
        ready = now if len(spent) < self.capacity else spent[0] + self.window_s
        return max(ready, self.paused_until)

    def pause(self, seconds: float) -> None:
        """Send nothing for ``seconds`` (a rate-limit penalty or a backoff), whichever notifier
        sends; never shortens a pause."""
        self._conn.execute(
            """INSERT INTO robot_pauses (channel, paused_until) VALUES (?, ?)
               ON CONFLICT (channel) DO UPDATE
               SET paused_until = GREATEST(robot_pauses.paused_until, excluded.paused_until)""",
            (self._key, self._clock() + seconds),
        )


@runtime_checkable
class RobotChannel(Protocol):
    """A channel with a per-minute quota whose messages the notifier paces and folds.

    ``render`` and ``render_digest`` return ready payloads that respect the robot's size
    limits; ``post`` sends one and raises :class:`~rules.notify.base.DeliveryError`.
    """

    name: str
    rate_limit_per_minute: int
    rate_limit_codes: frozenset[int]
    throttle_penalty_s: float

    def render(self, alert: Alert, event: AlertEvent) -> list[dict[str, Any]]:
        """Payloads for one alert event (more than one only when it is too long for one)."""
        ...

    def render_digest(
        self, entries: Sequence[DigestEntry]
    ) -> list[tuple[dict[str, Any], frozenset[int]]]:
        """Digest payloads, each with the keys of the entries it names."""
        ...

    async def post(self, payload: dict[str, Any]) -> None:
        """Send one payload."""
        ...

    async def send(self, alert: Alert, event: AlertEvent) -> None:
        """Deliver one alert event without pacing."""
        ...

    async def aclose(self) -> None:
        """Release network resources."""
        ...

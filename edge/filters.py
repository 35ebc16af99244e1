"""Edge filtering of weight cells: settling, deadband and heartbeat."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from edge.config import WeightFilterConfig


@dataclass(slots=True)
class CellFilter:
    """Decides which readings of one load cell are worth publishing.

    A reading is settled when the device says so (stable bit) or, without one, when the last
    ``settle_samples`` readings lie within ``settle_band_g``. A settled reading is published
    when it differs from the last published one by more than ``deadband_g``; the current
    reading is also published every ``heartbeat_s`` so silence never hides a dead cell.
    """

    config: WeightFilterConfig
    last_published: float | None = None
    last_published_at: float | None = None
    recent: deque[float] = field(default_factory=deque)

    def settled(self, grams: float, stable: bool | None) -> bool:
        """Record ``grams`` and say whether the cell is settled now."""
        self.recent.append(grams)
        while len(self.recent) > self.config.settle_samples:
            self.recent.popleft()
        if stable is not None:
            return stable
        if len(self.recent) < self.config.settle_samples:
            return False
        return max(self.recent) - min(self.recent) <= self.config.settle_band_g

    def offer(self, grams: float, stable: bool | None, now: float) -> bool | None:
        """None to drop the reading, else the ``stable`` flag to publish it with."""
        settled = self.settled(grams, stable)
        changed = (
            settled
            and (
                self.last_published is None
                or abs(grams - self.last_published) > self.config.deadband_g
            )
        )
        due = self.last_published_at is None or now - self.last_published_at >= (
            self.config.heartbeat_s
        )
        if not changed and not due:
            return None
        if settled:
            self.last_published = grams
        self.last_published_at = now
        return settled

"""Edge filtering: weight cells (settling, deadband, heartbeat) and RFID reads (dedup)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from edge.config import WeightFilterConfig
from edge.readings import TagRead


@dataclass(slots=True)
class CellFilter:
    """Decides which readings of one load cell are worth publishing.

    A reading is settled when the device says so (stable bit) or, without one, when the last
    ``settle_samples`` readings lie within ``settle_band_g``. A settled reading that differs
    from the last published one by more than ``deadband_g`` is published, and so are the next
    ``settled_repeats - 1`` settled readings: live inventory books a change only after several
    settled readings in a row (``settle_readings``, 5, behind a Hampel filter that holds a step
    back for 3 readings), which one reading per change and a heartbeat a minute would take
    minutes to give. The current reading is also published every ``heartbeat_s`` so silence
    never hides a dead cell.
    """

    config: WeightFilterConfig
    last_published: float | None = None
    last_published_at: float | None = None
    recent: deque[float] = field(default_factory=deque)
    repeats_left: int = 0

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
        if settled and (
            self.last_published is None
            or abs(grams - self.last_published) > self.config.deadband_g
        ):
            self.repeats_left = self.config.settled_repeats
        repeat = settled and self.repeats_left > 0
        due = self.last_published_at is None or now - self.last_published_at >= (
            self.config.heartbeat_s
        )
        if not repeat and not due:
            return None
        if settled:
            self.last_published = grams
            self.repeats_left = max(0, self.repeats_left - 1)
        self.last_published_at = now
        return settled


@dataclass(slots=True)
class _Window:
    opened: float
    rssi: float | None
    count: int
    first_ms: int
    last_ms: int


@dataclass(slots=True)
class TagDedup:
    """Folds the reads of one (EPC, antenna) within ``window_s`` into one :class:`TagRead`.

    A window opens at the first read of a pair and closes ``window_s`` later; the pair's reads in
    it become one read with the sum of their counts, the peak RSSI, the first and the last time
    seen. A tag that stays in the field gives one read per window, not one per inventory round.
    """

    window_s: float
    max_count: int = 1_000_000
    open: dict[tuple[str, int], _Window] = field(default_factory=dict)

    def offer(self, read: TagRead, now: float) -> None:
        """Add one report of a tag (its own count, RSSI and times)."""
        key = (read.epc, read.antenna)
        window = self.open.get(key)
        if window is None:
            self.open[key] = _Window(now, read.rssi, read.count, read.first_ms, read.ts_ms)
            return
        window.count = min(self.max_count, window.count + read.count)
        if read.rssi is not None and (window.rssi is None or read.rssi > window.rssi):
            window.rssi = read.rssi
        window.first_ms = min(window.first_ms, read.first_ms)
        window.last_ms = max(window.last_ms, read.ts_ms)

    def due(self, now: float, *, everything: bool = False) -> list[TagRead]:
        """Reads of the windows closed by ``now`` (all with ``everything``), by last seen."""
        closed = [
            (key, w)
            for key, w in self.open.items()
            if everything or now - w.opened >= self.window_s
        ]
        for key, _ in closed:
            del self.open[key]
        closed.sort(key=lambda item: (item[1].last_ms, item[0]))
        return [
            TagRead(epc, antenna, w.rssi, w.count, w.first_ms, w.last_ms)
            for (epc, antenna), w in closed
        ]

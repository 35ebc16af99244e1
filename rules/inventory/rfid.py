"""Stock from RFID: EPC → GTIN → SKU, read dedup, zone enter/exit and counts per SKU per zone.

- **Dedup**: per EPC, the first read emits a :class:`TagRead`; repeats within
  ``dedup_window_ms`` of that emitted read are suppressed (they still refresh presence).
- **Zone**: each (reader, antenna) belongs to a zone; a tag heard by several zones belongs to
  the one with the strongest recent RSSI. A challenger must beat the current zone by
  ``hysteresis_db`` so a tag sitting between two antennas does not flap.
- **Exit**: a tag unseen for ``exit_after_ms`` leaves its zone, decided by :meth:`RfidTracker.tick`
  with an explicit ``now_ms``. Moving between zones yields exactly one exit and one enter.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from core.epc import decode_sgtin96, is_sgtin96
from core.errors import EpcError
from core.readings import TagSample
from rules.inventory import InvalidParameterError

logger = logging.getLogger(__name__)

NO_RSSI = -1_000.0  # reads without RSSI lose to any read with one
RESOLVE_CACHE_SIZE = 1_000_000


@dataclass(frozen=True, slots=True, kw_only=True)
class TagRead:
    """A deduplicated tag read."""

    epc: str
    gtin: str | None
    sku: str | None
    zone: str
    ts_ms: int
    rssi: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ZoneEnter:
    """A tag became present in a zone."""

    epc: str
    sku: str | None
    zone: str
    ts_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ZoneExit:
    """A tag left a zone (moved elsewhere, or unseen for too long)."""

    epc: str
    sku: str | None
    zone: str
    ts_ms: int
    reason: Literal["moved", "timeout"] = "timeout"


RfidEvent = TagRead | ZoneEnter | ZoneExit


@dataclass(slots=True)
class _TagState:
    gtin: str | None
    sku: str | None
    zone: str | None = None
    last_seen_ms: int = 0
    last_emitted_ms: int | None = None
    # zone -> (ts_ms, rssi) of the latest read heard there
    heard: dict[str, tuple[int, float]] = field(default_factory=dict)


class RfidTracker:
    """Presence of tags per zone, fed by reads and advanced by :meth:`tick`."""

    def __init__(
        self,
        *,
        antenna_zones: Mapping[tuple[str, int], str],
        gtin_to_sku: Mapping[str, str],
        dedup_window_ms: int = 2_000,
        exit_after_ms: int = 30_000,
        zone_window_ms: int = 5_000,
        hysteresis_db: float = 3.0,
    ) -> None:
        """``antenna_zones`` maps (reader device, antenna port) to a zone id."""
        if dedup_window_ms < 0 or exit_after_ms <= 0 or zone_window_ms <= 0 or hysteresis_db < 0:
            raise InvalidParameterError("RFID windows must be positive and hysteresis ≥ 0")
        self._antenna_zones = dict(antenna_zones)
        self._gtin_to_sku = dict(gtin_to_sku)
        self._dedup_ms = dedup_window_ms
        self._exit_ms = exit_after_ms
        self._zone_window_ms = zone_window_ms
        self._hysteresis = hysteresis_db
        # Ordered by last read, oldest first, so tick() only looks at the tags that may expire.
        self._tags: OrderedDict[str, _TagState] = OrderedDict()
        self._counts: dict[tuple[str, str], int] = {}
        # EPC -> (GTIN, SKU), kept after a tag exits so a returning tag is not decoded again.
        self._resolved: dict[str, tuple[str | None, str | None]] = {}
        self.unknown_antenna_reads = 0  # reads from a (reader, antenna) mapped to no zone
        self.unknown_sku_tags = 0  # tag appearances whose EPC maps to no catalog SKU

    # ------------------------------------------------------------------ queries

    def zone_of(self, epc: str) -> str | None:
        """Zone a tag is present in, if any."""
        state = self._tags.get(epc.upper())
        return state.zone if state is not None else None

    def counts(self) -> dict[tuple[str, str], int]:
        """Tags present per (zone, SKU); tags whose SKU is unknown are not counted."""
        return {key: n for key, n in self._counts.items() if n > 0}

    def count(self, zone: str, sku: str) -> int:
        """Tags of ``sku`` present in ``zone``."""
        return self._counts.get((zone, sku), 0)

    # ------------------------------------------------------------------ updates

    def observe(self, sample: TagSample) -> list[RfidEvent]:
        """Process one tag read."""
        zone = self._antenna_zones.get((sample.device, sample.antenna))
        if zone is None:
            self.unknown_antenna_reads += 1
            return []
        epc = sample.epc
        ts = sample.ts_ms
        rssi = sample.rssi if sample.rssi is not None else NO_RSSI
        tags = self._tags
        state = tags.get(epc)
        if state is None:
            epc = epc.upper()  # canonical samples are upper case already; others pay here
            state = tags.get(epc)
        if state is None:
            gtin, sku = self._resolve(epc)
            state = _TagState(gtin=gtin, sku=sku, last_seen_ms=ts)
            tags[epc] = state
        else:
            tags.move_to_end(epc)
            state.last_seen_ms = max(state.last_seen_ms, ts)
        heard = state.heard
        heard[zone] = (ts, rssi)

        events: list[RfidEvent] = []
        emitted = state.last_emitted_ms
        if emitted is None or ts - emitted >= self._dedup_ms:
            state.last_emitted_ms = ts
            events.append(
                TagRead(
                    epc=epc, gtin=state.gtin, sku=state.sku, zone=zone, ts_ms=ts, rssi=sample.rssi
                )
            )
        if len(heard) == 1 and zone == state.zone:
            return events  # the common case: heard only where it already is
        best = self._strongest_zone(state, ts)
        if best != state.zone:
            if state.zone is not None:
                events.append(self._leave(epc, state, ts, reason="moved"))
            state.zone = best
            self._bump(best, state.sku, +1)
            events.append(ZoneEnter(epc=epc, sku=state.sku, zone=best, ts_ms=ts))
        return events

    def tick(self, now_ms: int) -> list[RfidEvent]:
        """Exit every tag unseen for more than ``exit_after_ms`` at ``now_ms``."""
        events: list[RfidEvent] = []
        cutoff = now_ms - self._exit_ms
        while self._tags:
            epc, state = next(iter(self._tags.items()))
            if state.last_seen_ms >= cutoff:
                break  # the rest were read more recently
            del self._tags[epc]
            if state.zone is not None:
                events.append(self._leave(epc, state, now_ms, reason="timeout"))
        return events

    # ------------------------------------------------------------------ helpers

    def _resolve(self, epc: str) -> tuple[str | None, str | None]:
        # Decoded once per tag, not per read: decoding is the costliest step of a read.
        cached = self._resolved.get(epc)
        if cached is not None:
            return cached
        if len(self._resolved) >= RESOLVE_CACHE_SIZE:
            self._resolved.clear()  # crude bound; refilling costs one decode per tag
        resolved = self._decode(epc)
        self._resolved[epc] = resolved
        if resolved[1] is None:
            self.unknown_sku_tags += 1
        return resolved

    def _decode(self, epc: str) -> tuple[str | None, str | None]:
        if not is_sgtin96(epc):
            return None, None
        try:
            gtin = decode_sgtin96(epc).gtin
        except EpcError:
            logger.debug("EPC %s does not decode as SGTIN-96", epc)
            return None, None
        return gtin, self._gtin_to_sku.get(gtin)

    def _strongest_zone(self, state: _TagState, now_ms: int) -> str:
        heard = state.heard
        if len(heard) > 1:
            horizon = now_ms - self._zone_window_ms
            for zone in [z for z, (ts, _) in heard.items() if ts < horizon]:
                del heard[zone]
        if len(heard) == 1:
            return next(iter(heard))  # the common case: one zone hears the tag
        # Strongest RSSI wins; on a tie (or without RSSI) the most recent read does.
        best_zone, (_, best_rssi) = max(
            state.heard.items(), key=lambda item: (item[1][1], item[1][0])
        )
        current = state.zone
        if current is not None and current != best_zone and current in state.heard:
            # The current zone keeps the tag unless the challenger is clearly stronger.
            margin = best_rssi - state.heard[current][1]
            if margin <= 0 or margin < self._hysteresis:
                return current
        return best_zone

    def _leave(
        self, epc: str, state: _TagState, ts_ms: int, *, reason: Literal["moved", "timeout"]
    ) -> ZoneExit:
        zone = state.zone
        assert zone is not None
        self._bump(zone, state.sku, -1)
        state.zone = None
        return ZoneExit(epc=epc, sku=state.sku, zone=zone, ts_ms=ts_ms, reason=reason)

    def _bump(self, zone: str, sku: str | None, delta: int) -> None:
        if sku is None:
            return
        key = (zone, sku)
        self._counts[key] = self._counts.get(key, 0) + delta

"""Sensor offline: heartbeat timeout and Last Will.

A device is offline when nothing (data or status) has been seen from it for
``timeout_factor`` x its reporting interval, or at once when its Last Will (``online=false``,
Tasmota ``Offline``) arrives. The interval is the one announced in its birth message
(``interval_s``), else the median spacing of its data (for kinds that report on a schedule:
temperature and weight; an RFID reader reports only when it reads tags), else the default. The
spacing is measured between readings of the same probe or cell: a gateway that publishes its
probes one message each, all at once every minute, reports every minute, not every millisecond.
Alert ``sensor_offline``, source ``site/kind/device``; data or a birth clears it. A silence that
no tick saw (the rules behind a backlog) is still reported when data or a birth ends it.

The timeout is evaluated by :meth:`OfflineDetector.tick` against ``now_ms``, compared with the
later of the reading's own time and its arrival time (``clock``): what matters is whether data
still *arrives*, and a gateway replaying buffered readings is alive even though their device
times are old.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

from core.alerts import AlertCondition
from core.readings import DeviceStatus, Sample, TagSample, TempSample, WeightSample
from core.settings import OfflinePolicy
from rules.lifecycle import AlertLifecycle

logger = logging.getLogger(__name__)

ALERT_TYPE = "sensor_offline"
_SPACINGS = 16
_MIN_SPACINGS = 3
_SERIES_KEPT = 1024  # probes or cells remembered per device (their names come from the network)


@dataclass(slots=True)
class DeviceState:
    """What the detector knows about one device."""

    site: str
    kind: str
    device: str
    last_ms: int
    last_data_ms: int | None = None
    announced_s: float | None = None
    spacings_s: deque[float] = field(default_factory=lambda: deque(maxlen=_SPACINGS))
    series_ms: dict[str, int] = field(default_factory=dict)  # last reading time per probe/cell
    down_reason: str | None = None
    source: str = ""

    def __post_init__(self) -> None:
        self.source = f"{self.site}/{self.kind}/{self.device}"


def _series(sample: Sample) -> str:
    if isinstance(sample, TempSample):
        return sample.sensor
    if isinstance(sample, WeightSample):
        return sample.cell
    if isinstance(sample, TagSample):
        return str(sample.antenna)
    return ""


def _median(values: deque[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def _kind(sample: Sample) -> str:
    if isinstance(sample, TempSample):
        return "temp"
    if isinstance(sample, WeightSample):
        return "weight"
    if isinstance(sample, TagSample):
        return "rfid"
    return sample.kind


class OfflineDetector:
    """Heartbeat/LWT detector over every device seen (optionally of some sites only)."""

    def __init__(
        self,
        lifecycle: AlertLifecycle,
        policy: OfflinePolicy | None = None,
        *,
        sites: Collection[str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._lifecycle = lifecycle
        self._clock = clock
        self.policy = policy or lifecycle.settings.offline
        self._sites = None if sites is None else frozenset(sites)
        self.devices: dict[tuple[str, str, str], DeviceState] = {}

    def interval_s(self, state: DeviceState) -> float | None:
        """The reporting interval used for the timeout; None when the device is not timed."""
        if state.announced_s is not None:
            return state.announced_s
        if state.kind not in self.policy.learn_kinds:
            return None
        if len(state.spacings_s) >= _MIN_SPACINGS:
            return _median(state.spacings_s)
        return self.policy.default_interval_s

    def timeout_s(self, state: DeviceState) -> float | None:
        """Seconds of silence after which the device is offline."""
        interval = self.interval_s(state)
        if interval is None:
            return None
        return max(self.policy.timeout_factor * interval, self.policy.min_timeout_s)

    def process(self, samples: Sequence[Sample]) -> None:
        """Note data, births and Last Wills."""
        arrived_ms = int(self._clock() * 1000)
        for sample in samples:
            if self._sites is not None and sample.site not in self._sites:
                continue
            key = (sample.site, _kind(sample), sample.device)
            state = self.devices.get(key)
            if state is None:
                state = DeviceState(site=key[0], kind=key[1], device=key[2], last_ms=sample.ts_ms)
                self.devices[key] = state
            if isinstance(sample, DeviceStatus):
                self._status(state, sample, arrived_ms)
            else:
                self._data(state, sample, arrived_ms)

    def _data(self, state: DeviceState, sample: Sample, arrived_ms: int) -> None:
        ts_ms = sample.ts_ms
        self._silence_seen_late(state, ts_ms)
        series = _series(sample)
        previous = state.series_ms.get(series)
        if previous is None or ts_ms > previous:
            if previous is not None:
                state.spacings_s.append((ts_ms - previous) / 1000)
            elif len(state.series_ms) >= _SERIES_KEPT:
                del state.series_ms[next(iter(state.series_ms))]
            state.series_ms[series] = ts_ms
        if state.last_data_ms is None or ts_ms > state.last_data_ms:
            state.last_data_ms = ts_ms
        state.last_ms = max(state.last_ms, ts_ms, arrived_ms)
        if state.down_reason is not None or self._lifecycle.is_tracked(state.source, ALERT_TYPE):
            state.down_reason = None
            self._lifecycle.resolve(state.source, ALERT_TYPE, at_ms=ts_ms, note="data again")

    def _silence_seen_late(self, state: DeviceState, ts_ms: int) -> None:
        """A reading after a silence longer than the timeout that no tick saw (the rules were
        behind, replaying a backlog or a fast simulation): the device was offline from its
        timeout until this reading, so it is reported then, and resolved by this reading."""
        if state.last_data_ms is None or state.down_reason is not None:
            return
        silent_s = (ts_ms - state.last_ms) / 1000
        if silent_s <= 0 or self._lifecycle.is_tracked(state.source, ALERT_TYPE):
            return  # no silence at all (a replay of old readings, say), or already reported
        timeout = self.timeout_s(state)
        if timeout is None or silent_s <= timeout:
            return
        self._report_silence(state, state.last_ms + round(timeout * 1000), silent_s, timeout)

    def _status(self, state: DeviceState, status: DeviceStatus, arrived_ms: int) -> None:
        if status.interval_s is not None:
            state.announced_s = status.interval_s
        if status.online:
            # A retained birth can carry a time ahead of the rules' clock (left by an earlier
            # run of a simulation): it must not push the device's last sighting into the future.
            seen = status.ts_ms if arrived_ms <= 0 else arrived_ms
            # A device that comes back with a birth after a silence no tick saw was offline all
            # the same; measured on the earlier of both clocks, so neither alone can invent one.
            self._silence_seen_late(state, min(status.ts_ms, seen))
            state.last_ms = max(state.last_ms, seen)
            state.down_reason = None
            self._lifecycle.resolve(state.source, ALERT_TYPE, at_ms=status.ts_ms, note="online")
            return
        state.down_reason = status.reason or "lwt"
        self._report(
            state,
            at_ms=status.ts_ms,
            message=f"{state.device} announced it is offline ({state.down_reason})",
            silent_s=None,
            timeout_s=None,
        )

    def tick(self, now_ms: int) -> None:
        """Report devices silent for longer than their timeout."""
        for state in self.devices.values():
            if state.down_reason is not None:
                continue
            timeout = self.timeout_s(state)
            if timeout is None:
                continue
            silent_s = (now_ms - state.last_ms) / 1000
            if silent_s <= timeout:
                continue
            self._report_silence(state, now_ms, silent_s, timeout)

    def _report_silence(
        self, state: DeviceState, at_ms: int, silent_s: float, timeout: float
    ) -> None:
        self._report(
            state,
            at_ms=at_ms,
            message=(
                f"nothing from {state.device} for {silent_s:.0f} s "
                f"(timeout {timeout:.0f} s = {self.policy.timeout_factor:g} × "
                f"{self.interval_s(state) or 0:.0f} s interval)"
            ),
            silent_s=silent_s,
            timeout_s=timeout,
        )

    def _report(
        self,
        state: DeviceState,
        *,
        at_ms: int,
        message: str,
        silent_s: float | None,
        timeout_s: float | None,
    ) -> None:
        self._lifecycle.report(
            AlertCondition(
                source=state.source,
                type=ALERT_TYPE,
                severity=self.policy.severity,
                site=state.site,
                zone=None,
                title=f"Sensor {state.device} offline",
                message=message,
                value=None if silent_s is None else round(silent_s, 1),
                threshold=timeout_s,
                details={
                    "device": state.device,
                    "kind": state.kind,
                    "reason": state.down_reason or "timeout",
                    "last_seen_ms": state.last_ms,
                    "unit": "s",
                },
                at_ms=at_ms,
            ),
        )

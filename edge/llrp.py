"""LLRP RFID readers through sllurp: connect, start inventory, collect tag reports.

sllurp runs the LLRP session on a thread of its own and calls back with each RO_ACCESS_REPORT;
the callbacks only append to a list. Each poll of the agent folds what arrived into the dedup
windows (:class:`edge.filters.TagDedup`) and returns the reads of the windows that closed. A
lost connection, a reader that refuses the session or stays silent past three keepalives makes
the poll fail, so the agent's offline/online status and backoff apply as for any device; the
next poll connects again and sets the ROSpec up anew (a rebooted reader has forgotten it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
import time
from typing import Any

from sllurp.llrp import (  # type: ignore[import-untyped]  # sllurp ships no type hints
    LLRPReaderClient,
    LLRPReaderConfig,
    LLRPReaderState,
)
from sllurp.llrp_errors import ReaderConfigurationError  # type: ignore[import-untyped]

from core.bounds import MAX_TS_MS, MIN_TS_MS
from edge.config import LlrpDevice
from edge.errors import DeviceError
from edge.filters import TagDedup
from edge.readings import Poll, TagRead, now_ms

logger = logging.getLogger(__name__)
# sllurp logs every state change at INFO; the agent logs each failed poll itself.
logging.getLogger("sllurp").setLevel(logging.WARNING)

_EPC = re.compile(r"^[0-9A-F]{8,128}$")
MAX_REPORT_N = 65535  # the reader reports after this many tags or the report interval
MISSED_KEEPALIVES = 3
SESSION_JOIN_S = 1.0  # time given to a dropped session's thread to end


def _reader_ms(report: dict[str, Any], key: str) -> int | None:
    """A tag report's UTC timestamp (µs) in ms, when the reader's clock is plausible."""
    value = report.get(key)
    if not isinstance(value, int):
        return None
    millis = value // 1000
    return millis if MIN_TS_MS <= millis < MAX_TS_MS else None


def tag_read(report: dict[str, Any], received_ms: int, default_antenna: int) -> TagRead:
    """One sllurp TagReportData dict as a :class:`TagRead`; ValueError/TypeError if unusable."""
    raw = report.get("EPC", report.get("EPC-96"))
    if isinstance(raw, bytes | bytearray):
        epc = bytes(raw).decode("ascii", "replace").upper()
    elif isinstance(raw, str):
        epc = raw.upper()
    else:
        raise TypeError("tag report without an EPC")
    if not _EPC.match(epc):
        raise ValueError(f"EPC {epc[:40]!r} is not 8-128 hex digits")
    antenna = report.get("AntennaID", default_antenna)
    if not isinstance(antenna, int) or not 1 <= antenna <= 64:
        raise ValueError(f"{epc}: antenna {antenna!r} is not 1-64")
    rssi = report.get("PeakRSSI")
    peak = float(rssi) if isinstance(rssi, int | float) and -130 <= rssi <= 0 else None
    count = report.get("TagSeenCount", 1)
    seen = count if isinstance(count, int) and count >= 1 else 1
    last = _reader_ms(report, "LastSeenTimestampUTC")
    first = _reader_ms(report, "FirstSeenTimestampUTC")
    last = last if last is not None else (first if first is not None else received_ms)
    first = first if first is not None and first <= last else last
    return TagRead(epc, antenna, peak, seen, first, last)


class LlrpDriver:
    """One LLRP reader: a sllurp session, reconnected by the poll that finds it gone."""

    def __init__(self, device: LlrpDevice) -> None:
        self.device = device
        self.dedup = TagDedup(device.dedup_window_s)
        self._lock = threading.Lock()
        self._reports: list[tuple[dict[str, Any], int]] = []
        self._client: Any = None
        self._inventorying = threading.Event()
        self._lost = threading.Event()
        self._last_heard = 0.0
        self._connecting = threading.Lock()
        self._closed = False
        self.sessions = 0
        self.attempts = 0

    def _where(self) -> str:
        return f"{self.device.host}:{self.device.port}"

    def _reader_config(self) -> Any:
        d = self.device
        config: dict[str, Any] = {
            "antennas": list(d.antennas),
            "tx_power": 0,  # 0: the reader's maximum, unless tx_power_dbm picks an entry
            "report_every_n_tags": MAX_REPORT_N,
            "report_timeout_ms": round(d.report_interval_s * 1000),
            "session": d.session,
            "tag_population": d.tag_population,
            "keepalive_interval": round(d.keepalive_s * 1000),
            "reconnect": False,  # the poll reconnects, with the agent's offline accounting
            "tag_content_selector": {
                "EnableROSpecID": False,
                "EnableAntennaID": True,
                "EnablePeakRSSI": True,
                "EnableChannelIndex": False,
                "EnableFirstSeenTimestamp": True,
                "EnableLastSeenTimestamp": True,
                "EnableTagSeenCount": True,
            },
        }
        if d.tx_power_dbm is not None:
            config["tx_power_dbm"] = {antenna: float(d.tx_power_dbm) for antenna in d.antennas}
        return LLRPReaderConfig(config)

    # sllurp's thread -------------------------------------------------------------

    def _on_tags(self, _reader: Any, reports: list[dict[str, Any]]) -> None:
        received = now_ms()
        with self._lock:
            self._last_heard = time.monotonic()
            self._reports.extend((r, received) for r in reports)

    def _on_message(self, _reader: Any, _message: Any) -> None:
        self._last_heard = time.monotonic()

    def _on_inventorying(self, reader: Any, _state: Any) -> None:
        if reader is self._client:  # not a session that was already given up
            self._last_heard = time.monotonic()
            self._inventorying.set()

    def _on_disconnected(self, reader: Any) -> None:
        if reader is self._client:
            self._lost.set()

    # the agent's loop ------------------------------------------------------------

    def _alive(self) -> bool:
        client = self._client
        if client is None or self._lost.is_set() or not client.is_alive():
            return False
        silent_for = time.monotonic() - self._last_heard
        limit = MISSED_KEEPALIVES * max(self.device.keepalive_s, self.device.report_interval_s)
        if silent_for > limit:
            logger.warning(
                "%s: %s silent for %.0f s: reconnecting",
                self.device.name,
                self._where(),
                silent_for,
            )
            return False
        return True

    def _collect(self, now: float, *, everything: bool) -> tuple[list[TagRead], list[str]]:
        with self._lock:
            reports, self._reports = self._reports, []
        rejected: list[str] = []
        default_antenna = self.device.antennas[0]
        for report, received in reports:
            try:
                self.dedup.offer(tag_read(report, received, default_antenna), now)
            except (ValueError, TypeError) as exc:
                rejected.append(str(exc))
        return self.dedup.due(now, everything=everything), rejected

    async def poll(self) -> Poll:
        """Tag reads of the dedup windows that closed; DeviceError when the reader is gone."""
        if self._alive():
            tags, rejected = self._collect(time.monotonic(), everything=False)
            return Poll([], rejected, tags)
        # What the reader reported before it went away is published first.
        tags, rejected = self._collect(time.monotonic(), everything=True)
        if tags or rejected:
            await asyncio.to_thread(self._drop)
            return Poll([], rejected, tags)
        await asyncio.to_thread(self._connect)
        return Poll([], [], [])

    def _drop(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        thread = client._socket_thread  # sllurp keeps its session thread there
        with contextlib.suppress(OSError, ReaderConfigurationError):
            client.hard_disconnect()
        if isinstance(thread, threading.Thread) and thread is not threading.current_thread():
            thread.join(SESSION_JOIN_S)
            if thread.is_alive():
                logger.warning("%s: LLRP session thread still running", self.device.name)

    def _connect(self) -> None:
        if not self._connecting.acquire(blocking=False):
            raise DeviceError(f"{self._where()}: still connecting")
        try:
            self._drop()
            self._inventorying.clear()
            self._lost.clear()
            d = self.device
            budget = d.timeout_s * (d.retries + 1)  # within the agent's timeout of one poll
            deadline = time.monotonic() + budget
            client = LLRPReaderClient(d.host, d.port, self._reader_config(), timeout=d.timeout_s)
            client.add_tag_report_callback(self._on_tags)
            client.add_message_callback("KEEPALIVE", self._on_message)
            client.add_state_callback(LLRPReaderState.STATE_INVENTORYING, self._on_inventorying)
            client.add_disconnected_callback(self._on_disconnected)
            try:
                client.connect(start_main_loop=False)
            except (OSError, ReaderConfigurationError) as exc:
                raise DeviceError(f"{self._where()}: cannot connect ({exc})") from None
            self._client = client
            # sllurp's own session thread is not a daemon: one stuck in select() on a socket
            # closed under it would keep the agent from exiting. Run its loop on a daemon.
            self.attempts += 1
            thread = threading.Thread(
                target=client.main_loop, name=f"llrp-{d.name}-{self.attempts}", daemon=True
            )
            client._socket_thread = thread  # what sllurp's connect() would set
            thread.start()
            if not self._inventorying.wait(max(0.0, deadline - time.monotonic())):
                self._drop()
                raise DeviceError(f"{self._where()}: no inventory within {budget:g} s")
            if self._closed:  # the agent stopped while this session was being set up
                self._drop()
                raise DeviceError(f"{self._where()}: closed")
            self.sessions += 1
            logger.info(
                "%s: inventory running on %s, antennas %s",
                d.name,
                self._where(),
                ",".join(map(str, d.antennas)),
            )
        finally:
            self._connecting.release()

    async def close(self) -> None:
        """End the session politely (the reader deletes the ROSpec), then close."""
        self._closed = True
        client = self._client
        if client is None:
            return
        if self._alive():
            with contextlib.suppress(OSError, ReaderConfigurationError):
                await asyncio.to_thread(client.disconnect, 2.0)
        await asyncio.to_thread(self._drop)

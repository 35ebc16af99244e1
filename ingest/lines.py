"""Readings -> InfluxDB line protocol.

Point identity is (measurement, tags, timestamp). The timestamp is the reading's epoch ms in
nanoseconds plus its index within the message, so readings that share a millisecond never
overwrite each other and a redelivered message lands on exactly the same points (idempotent).
A reading whose device time is implausible is stamped with the first receipt time of its
message instead, which :class:`StampLedger` remembers durably, so that stays idempotent too.
EPCs and other high-cardinality values are fields, never tags.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections import OrderedDict
from pathlib import Path

from core.influx import escape_tag, field_str
from core.readings import DeviceStatus, Sample, TagSample, TempSample, WeightSample

# Measurement + escaped tag set per series, memoised: series repeat, escaping is not free.
_PREFIXES: dict[tuple[object, ...], str] = {}
_PREFIXES_MAX = 200_000


def _prefix(key: tuple[object, ...], build: str) -> str:
    if len(_PREFIXES) >= _PREFIXES_MAX:
        _PREFIXES.clear()
    _PREFIXES[key] = build
    return build


def _series(sample: Sample) -> str:
    """``measurement,tag=value,... `` (with the trailing space) for the sample's series."""
    if isinstance(sample, TempSample):
        key: tuple[object, ...] = ("t", sample.site, sample.device, sample.sensor)
        found = _PREFIXES.get(key)
        return found or _prefix(
            key,
            f"temperature,device={escape_tag(sample.device)},sensor={escape_tag(sample.sensor)},"
            f"site={escape_tag(sample.site)} ",
        )
    if isinstance(sample, WeightSample):
        key = ("w", sample.site, sample.device, sample.cell)
        found = _PREFIXES.get(key)
        return found or _prefix(
            key,
            f"weight,cell={escape_tag(sample.cell)},device={escape_tag(sample.device)},"
            f"site={escape_tag(sample.site)} ",
        )
    if isinstance(sample, TagSample):
        key = ("r", sample.site, sample.device, sample.antenna)
        found = _PREFIXES.get(key)
        return found or _prefix(
            key,
            f"rfid,antenna={sample.antenna},device={escape_tag(sample.device)},"
            f"site={escape_tag(sample.site)} ",
        )
    return (
        f"device_status,device={escape_tag(sample.device)},kind={escape_tag(sample.kind)},"
        f"site={escape_tag(sample.site)} "
    )


def sample_line(
    sample: Sample,
    index: int,
    seq: int | None,
    device_ts_ms: int | None = None,
    stamp_ns: int = 0,
) -> str:
    """One line for one reading; ``index`` is its position within the message.

    ``device_ts_ms`` is set when the device clock was not trusted and the reading was re-stamped
    with its message's first receipt time (``stamp_ns``, from :class:`StampLedger`): the device's
    own time is kept in a ``device_ts`` field.
    """
    ts_ns = (sample.ts_ms * 1_000_000 if device_ts_ms is None else stamp_ns) + index
    extra = "" if seq is None else f",seq={seq}i"
    if device_ts_ms is not None:
        extra += f",device_ts={device_ts_ms}i"
    series = _series(sample)
    if isinstance(sample, TempSample):
        humidity = "" if sample.humidity is None else f",humidity={sample.humidity!r}"
        return f"{series}celsius={sample.celsius!r}{humidity}{extra} {ts_ns}"
    if isinstance(sample, WeightSample):
        stable = "" if sample.stable is None else (",stable=t" if sample.stable else ",stable=f")
        return f"{series}grams={sample.grams!r}{stable}{extra} {ts_ns}"
    if isinstance(sample, TagSample):
        rssi = "" if sample.rssi is None else f",rssi={sample.rssi!r}"
        return f'{series}epc="{sample.epc}",count={sample.count}i{rssi}{extra} {ts_ns}'
    assert isinstance(sample, DeviceStatus)
    reason = "" if sample.reason is None else f",reason={field_str(sample.reason)}"
    interval = "" if sample.interval_s is None else f",interval_s={sample.interval_s!r}"
    return f"{series}online={'t' if sample.online else 'f'}{interval}{reason} {ts_ns}"


def message_lines(
    samples: list[Sample],
    seq: int | None,
    restamped: dict[int, int] | None = None,
    stamp_ns: int = 0,
) -> list[str]:
    """Lines for all readings of one message; ``restamped`` maps index -> device time."""
    if restamped:
        return [sample_line(s, i, seq, restamped.get(i), stamp_ns) for i, s in enumerate(samples)]
    return [sample_line(s, i, seq) for i, s in enumerate(samples)]


STAMP_RECORD = 24  # 16-byte message digest + 8-byte stamp (ns)
STAMPS_KEPT = 50_000


def stamp_key(topic: str, payload: bytes) -> bytes:
    """What identifies a message across deliveries: its topic and its exact payload.

    A redelivery (broker after a crash, or a publisher resending) carries the same bytes; two
    different readings differ in seq, time or value. Byte-identical messages are the same
    reading as far as anyone can tell.
    """
    return hashlib.blake2b(topic.encode() + b"\0" + payload, digest_size=16).digest()


class StampLedger:
    """First-receipt stamps of re-stamped messages, remembered on disk by message digest.

    A reading with an implausible device time is stored at the time its message was first
    received. The stamp is made durable (fsync) before the reading's points are handed to the
    writer, so a redelivery of the message, even after a SIGKILL, finds it and rewrites the
    same points. Only the last ``capacity`` stamps are kept: comfortably more than the 20,000
    messages a broker may hold in flight for a worker, which is what it redelivers on
    reconnect. One ledger per client id, like the spool: redeliveries go back to the session
    they were sent to.
    """

    def __init__(self, path: Path, capacity: int = STAMPS_KEPT) -> None:
        self.path = path
        self._capacity = capacity
        self._stamps: OrderedDict[bytes, int] = OrderedDict()
        self._last = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        data = path.read_bytes() if path.exists() else b""
        usable = len(data) - len(data) % STAMP_RECORD  # a torn last record was never used
        for offset in range(max(0, usable - capacity * STAMP_RECORD), usable, STAMP_RECORD):
            stamp = int.from_bytes(data[offset + 16 : offset + STAMP_RECORD], "big")
            self._stamps[data[offset : offset + 16]] = stamp
            self._last = max(self._last, stamp)
        self._file_records = len(self._stamps)
        if usable != len(data) or len(self._stamps) * STAMP_RECORD != usable:
            self._rewrite(self._snapshot())
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._pending = bytearray()
        self._appended = 0
        self._synced = 0
        self._writing: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._stamps)

    def stamp(self, key: bytes, received_ns: int) -> int:
        """The message's stamp: the one it got at first receipt, else a new one from now.

        New stamps are whole microseconds and at least 1 µs apart, so the readings of one
        message (index < 1,000 ns added) never share a point with another message's.
        """
        found = self._stamps.get(key)
        if found is not None:
            return found
        stamp = max(received_ns - received_ns % 1000, self._last + 1000)
        self._last = stamp
        self._stamps[key] = stamp
        if len(self._stamps) > self._capacity:
            self._stamps.popitem(last=False)
        self._pending += key + stamp.to_bytes(8, "big")
        self._appended += 1
        return stamp

    async def synced(self) -> None:
        """Return once every stamp handed out so far is on disk (one fsync for many)."""
        target = self._appended
        while self._synced < target:
            if self._writing is None:
                self._writing = asyncio.get_running_loop().create_task(self._write())
            # Shielded: a cancelled waiter must not abort a write others are waiting for.
            await asyncio.shield(self._writing)

    def sync_soon(self) -> None:
        """Start writing pending stamps without waiting for it (QoS 0: nothing is redelivered
        by the broker, but a publisher's resend may still come after a restart)."""
        if not self._pending or self._writing is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # called outside the service's loop: written with the next sync or at close
        self._writing = loop.create_task(self._write())

    async def _write(self) -> None:
        data, upto = bytes(self._pending), self._appended
        self._pending.clear()
        snapshot = None
        if self._file_records + len(data) // STAMP_RECORD > 2 * self._capacity:
            snapshot = self._snapshot()  # taken here, on the loop: the dict is not thread-safe
        try:
            await asyncio.to_thread(self._append, data, snapshot)
        except BaseException:
            self._pending[:0] = data  # not on disk: written with the next sync
            raise
        else:
            self._synced = max(self._synced, upto)
        finally:
            self._writing = None

    def _append(self, data: bytes, snapshot: bytes | None) -> None:
        if snapshot is not None:
            # Keep the file bounded: the stamps still remembered replace it, atomically.
            self._rewrite(snapshot)
            os.close(self._fd)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            return
        os.write(self._fd, data)
        os.fsync(self._fd)
        self._file_records += len(data) // STAMP_RECORD

    def _snapshot(self) -> bytes:
        return b"".join(key + stamp.to_bytes(8, "big") for key, stamp in self._stamps.items())

    def _rewrite(self, body: bytes) -> None:
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("wb") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.rename(self.path)
        self._file_records = len(body) // STAMP_RECORD

    async def close(self) -> None:
        """Write what is pending and close the file."""
        await self.synced()
        os.close(self._fd)

"""A simulated LLRP 1.0.1 RFID reader: a TCP server that speaks binary LLRP to one client.

On connect it sends READER_EVENT_NOTIFICATION (ConnectionAttemptEvent: Success), answers
GET_READER_CAPABILITIES (antennas, a transmit power table, one RF mode), GET_READER_CONFIG,
SET_READER_CONFIG (its KeepaliveSpec is honoured), ADD/ENABLE/START/STOP/DISABLE/DELETE_ROSPEC,
the ACCESSSPEC messages and CLOSE_CONNECTION, and refuses anything else with ERROR_MESSAGE
(UnsupportedMessage). While its ROSpec runs it sends an RO_ACCESS_REPORT with one TagReportData
per tag in the field of an antenna of the ROSpec, every AISpec timeout (the report interval
the client asked for), with the fields its TagReportContentSelector enabled.

Messages are framed and parsed with sllurp's own code (its message header, parameter header
and parameter decoders, its READER_EVENT_NOTIFICATION encoder); sllurp has no encoders for
what only a reader sends (responses, reports), so those are packed here from the same
headers, and the tests decode every one of them with sllurp's decoders.

``python -m simulators.llrp_reader --port 5084 --tag 3034257BF7194E4000003039:1`` runs one.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import select
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from sllurp.llrp import LLRPMessage  # type: ignore[import-untyped]  # sllurp has no type hints
from sllurp.llrp_proto import (  # type: ignore[import-untyped]
    Error_Name2Type,
    LLRPError,
    Message_struct,
    decode_all_parameters,
    decode_param,
    get_message_name_from_type,
    msg_header_decode,
    msg_header_encode,
    msg_header_len,
    msg_header_unpack,
    par_header_pack,
    tve_header_pack,
)

logger = logging.getLogger(__name__)

LLRP_VERSION = 1
DEFAULT_REPORT_S = 1.0
# Transmit power table: index n (1-based) is 10.00 dBm + (n - 1) x 0.5 dB, up to 30 dBm.
POWER_TABLE_DBM = [10.0 + 0.5 * i for i in range(41)]
MODE_ID = 1000

# Parameter types (LLRP 1.0.1 section 16.2) of what only a reader sends.
_LLRP_STATUS = 287
_GENERAL_DEVICE_CAPABILITIES = 137
_REGULATORY_CAPABILITIES = 143
_UHF_BAND_CAPABILITIES = 144
_TX_POWER_ENTRY = 145
_RF_MODE_TABLE = 328
_RF_MODE_ENTRY = 329
_TAG_REPORT_DATA = 240
_EPC_DATA = 241
# TV-encoded parameters of TagReportData: type, struct format
_TV_EPC96 = 13
_TV_ANTENNA = (1, "!H")
_TV_FIRST_SEEN_UTC = (2, "!Q")
_TV_LAST_SEEN_UTC = (4, "!Q")
_TV_PEAK_RSSI = (6, "!b")
_TV_SEEN_COUNT = (8, "!H")
_TV_ROSPEC_ID = (9, "!I")

_STATUS_REPLIES = {
    "GET_READER_CONFIG": "GET_READER_CONFIG_RESPONSE",
    "SET_READER_CONFIG": "SET_READER_CONFIG_RESPONSE",
    "ADD_ROSPEC": "ADD_ROSPEC_RESPONSE",
    "ENABLE_ROSPEC": "ENABLE_ROSPEC_RESPONSE",
    "START_ROSPEC": "START_ROSPEC_RESPONSE",
    "STOP_ROSPEC": "STOP_ROSPEC_RESPONSE",
    "DISABLE_ROSPEC": "DISABLE_ROSPEC_RESPONSE",
    "DELETE_ROSPEC": "DELETE_ROSPEC_RESPONSE",
    "ADD_ACCESSSPEC": "ADD_ACCESSSPEC_RESPONSE",
    "ENABLE_ACCESSSPEC": "ENABLE_ACCESSSPEC_RESPONSE",
    "DISABLE_ACCESSSPEC": "DISABLE_ACCESSSPEC_RESPONSE",
    "DELETE_ACCESSSPEC": "DELETE_ACCESSSPEC_RESPONSE",
    "CLOSE_CONNECTION": "CLOSE_CONNECTION_RESPONSE",
}
_NO_REPLY = ("ENABLE_EVENTS_AND_REPORTS", "KEEPALIVE_ACK")


def _param(ptype: int, body: bytes) -> bytes:
    return bytes(par_header_pack(ptype, 4 + len(body))) + body


def _tv(spec: tuple[int, str], value: int) -> bytes:
    ptype, fmt = spec
    return bytes(tve_header_pack(0x80 | ptype)) + struct.pack(fmt, value)


def encode_message(name: str, body: bytes, msg_id: int) -> bytes:
    """One LLRP message: sllurp's header for ``name`` and ``body``."""
    msg_type = Message_struct[name]["type"]
    return bytes(msg_header_encode(msg_type, LLRP_VERSION, len(body), msg_id)) + body


def llrp_status(code: str = "Success", description: str = "") -> bytes:
    """The LLRPStatus parameter."""
    text = description.encode()
    return _param(_LLRP_STATUS, struct.pack("!HH", Error_Name2Type[code], len(text)) + text)


def capabilities(antennas: int) -> bytes:
    """GeneralDeviceCapabilities and RegulatoryCapabilities of a reader with ``antennas``."""
    firmware = b"stocksense-sim 1.0"
    general = _param(
        _GENERAL_DEVICE_CAPABILITIES,
        struct.pack("!HHIIH", antennas, 1 << 14, 0, 1, len(firmware)) + firmware,
    )
    powers = b"".join(
        _param(_TX_POWER_ENTRY, struct.pack("!HH", n + 1, round(dbm * 100)))
        for n, dbm in enumerate(POWER_TABLE_DBM)
    )
    # ModeIdentifier, DR/conformance, M, FLM, forward link modulation, BDR, PIE, Tari range
    mode = _param(
        _RF_MODE_ENTRY,
        struct.pack("!IBBBBIIIII", MODE_ID, 0x80, 2, 2, 0, 256_000, 2000, 6250, 25000, 0),
    )
    band = _param(_UHF_BAND_CAPABILITIES, powers + _param(_RF_MODE_TABLE, mode))
    regulatory = _param(_REGULATORY_CAPABILITIES, struct.pack("!HH", 276, 2) + band)
    return general + regulatory


@dataclass(frozen=True, slots=True)
class Tag:
    """A tag in the field of one antenna: its EPC (hex), RSSI and reads per report."""

    epc: str
    antenna: int
    rssi: int = -55
    reads: int = 1


def tag_report_data(
    tag: Tag, first_us: int, last_us: int, rospec_id: int, select: dict[str, Any]
) -> bytes:
    """One TagReportData with the fields ``select`` (a TagReportContentSelector) enables."""
    epc = bytes.fromhex(tag.epc)
    if len(epc) == 12:
        body = bytes(tve_header_pack(0x80 | _TV_EPC96)) + epc
    else:
        body = _param(_EPC_DATA, struct.pack("!H", len(epc) * 8) + epc)
    if select.get("EnableROSpecID", True):
        body += _tv(_TV_ROSPEC_ID, rospec_id)
    if select.get("EnableAntennaID", True):
        body += _tv(_TV_ANTENNA, tag.antenna)
    if select.get("EnablePeakRSSI", True):
        body += _tv(_TV_PEAK_RSSI, tag.rssi)
    if select.get("EnableFirstSeenTimestamp", True):
        body += _tv(_TV_FIRST_SEEN_UTC, first_us)
    if select.get("EnableLastSeenTimestamp", True):
        body += _tv(_TV_LAST_SEEN_UTC, last_us)
    if select.get("EnableTagSeenCount", True):
        body += _tv(_TV_SEEN_COUNT, tag.reads)
    return _param(_TAG_REPORT_DATA, body)


class _Session:
    """State of the one client connection."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""
        self.rospec: dict[str, Any] | None = None
        self.running = False
        self.keepalive_s: float | None = None
        self.next_keepalive = 0.0
        self.next_report = 0.0
        self.last_report_us = time.time_ns() // 1000
        self.msg_id = 0

    def next_id(self) -> int:
        self.msg_id += 1
        return self.msg_id


class SimulatedReader:
    """An LLRP reader on ``host:port`` served from a thread; tags are placed and removed live."""

    def __init__(self, port: int, host: str = "127.0.0.1", *, antennas: int = 4) -> None:
        self.host = host
        self.port = port
        self.antennas = antennas
        self.silent = False  # accept connections but never answer (a hung reader)
        self.connections = 0
        self.reports = 0
        self.received: Counter[str] = Counter()
        self.sent: Counter[tuple[str, int]] = Counter()  # reads reported per (EPC, antenna)
        self.rospec: dict[str, Any] | None = None
        self._tags: dict[tuple[str, int], Tag] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listener: socket.socket | None = None
        self._session: _Session | None = None

    # ------------------------------------------------------------------ tags

    def place(self, epc: str, antenna: int = 1, *, rssi: int = -55, reads: int = 1) -> None:
        """Put a tag in the field of ``antenna``; each report counts ``reads`` reads of it."""
        with self._lock:
            self._tags[(epc.upper(), antenna)] = Tag(epc.upper(), antenna, rssi, reads)

    def remove(self, epc: str, antenna: int | None = None) -> None:
        """Take a tag out of the field of ``antenna`` (of every antenna when None)."""
        with self._lock:
            for key in [k for k in self._tags if k[0] == epc.upper()]:
                if antenna is None or key[1] == antenna:
                    del self._tags[key]

    def clear(self) -> None:
        """No tags in the field."""
        with self._lock:
            self._tags.clear()

    @property
    def inventorying(self) -> bool:
        """Whether a client's ROSpec is running now."""
        session = self._session
        return session is not None and session.running

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> SimulatedReader:
        """Listen and serve in a thread."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        listener.listen(4)
        self._listener = listener
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name="llrp-reader", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Drop the client and stop listening (a reader switched off)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def restart(self) -> None:
        """Stop, then listen again on the same port (a rebooted reader: the ROSpec is gone)."""
        self.stop()
        self.start()

    # ------------------------------------------------------------------ serving

    def _serve(self) -> None:
        listener = self._listener
        assert listener is not None
        try:
            while not self._stop.is_set():
                session = self._session
                readable = [listener] + ([session.sock] if session else [])
                ready, _, _ = select.select(readable, [], [], self._timeout())
                if listener in ready:
                    self._accept(listener)
                session = self._session
                if session is not None and session.sock in ready:
                    self._receive(session)
                session = self._session
                if session is not None and not self.silent:
                    self._timers(session)
        finally:
            self._drop()
            listener.close()
            self._listener = None

    def _timeout(self) -> float:
        session = self._session
        if session is None:
            return 0.1
        now = time.monotonic()
        due = [session.next_report if session.running else now + 0.1]
        if session.keepalive_s:
            due.append(session.next_keepalive)
        return max(0.0, min(min(due) - now, 0.1))

    def _accept(self, listener: socket.socket) -> None:
        sock, peer = listener.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._drop()  # one client at a time: a new one replaces a dead one
        self.connections += 1
        logger.info("LLRP client %s:%d connected", *peer)
        session = _Session(sock)
        self._session = session
        if self.silent:
            return
        event = LLRPMessage(
            msgdict={
                "READER_EVENT_NOTIFICATION": {
                    "ID": session.next_id(),
                    "ReaderEventNotificationData": {
                        "UTCTimestamp": {"Microseconds": time.time_ns() // 1000},
                        "ConnectionAttemptEvent": {"Status": "Success"},
                    },
                }
            }
        )
        self._send(session, bytes(event.msgbytes))

    def _drop(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            with contextlib.suppress(OSError):
                session.sock.close()

    def _send(self, session: _Session, data: bytes) -> None:
        try:
            session.sock.sendall(data)
        except OSError:
            self._drop()

    def _receive(self, session: _Session) -> None:
        try:
            data = session.sock.recv(65536)
        except OSError:
            data = b""
        if not data:
            logger.info("LLRP client went away")
            self._drop()
            return
        session.buffer += data
        while len(session.buffer) >= msg_header_len:
            _, length, _ = msg_header_unpack(session.buffer[:msg_header_len])
            if len(session.buffer) < length:
                break
            raw, session.buffer = session.buffer[:length], session.buffer[length:]
            if not self.silent:
                try:
                    self._handle(session, raw)
                except (LLRPError, KeyError, ValueError, TypeError, struct.error) as exc:
                    # a request it cannot parse: say so, as a reader does, and carry on
                    logger.warning("LLRP request not understood: %s", exc)
                    status = llrp_status("ParameterError", str(exc)[:200])
                    self._send(session, encode_message("ERROR_MESSAGE", status, 0))
            if self._session is not session:
                return

    def _handle(self, session: _Session, raw: bytes) -> None:
        msg_type, vendor, subtype, _ver, hdr_len, length, msg_id = msg_header_decode(raw)
        try:
            name = get_message_name_from_type(msg_type, vendor, subtype)
        except KeyError:
            name = f"type {msg_type}"
        self.received[name] += 1
        body = raw[hdr_len:length]
        if name in _NO_REPLY:
            return
        reply = _STATUS_REPLIES.get(name)
        if name == "GET_READER_CAPABILITIES":
            payload = llrp_status() + capabilities(self.antennas)
            self._send(session, encode_message("GET_READER_CAPABILITIES_RESPONSE", payload, msg_id))
            return
        if reply is None:
            status = llrp_status("UnsupportedMessage", f"{name} is not supported")
            self._send(session, encode_message("ERROR_MESSAGE", status, msg_id))
            return
        status = self._apply(session, name, body)
        self._send(session, encode_message(reply, status, msg_id))
        if name == "CLOSE_CONNECTION":
            self._drop()

    def _apply(self, session: _Session, name: str, body: bytes) -> bytes:
        """Carry out one request; its LLRPStatus."""
        if name == "SET_READER_CONFIG":
            # one byte of flags (ResetToFactoryDefaults), then parameters
            config, _ = decode_all_parameters(body[1:])
            spec = config.get("KeepaliveSpec")
            if isinstance(spec, dict) and spec.get("TimeInterval"):
                session.keepalive_s = spec["TimeInterval"] / 1000.0
                session.next_keepalive = time.monotonic() + session.keepalive_s
        elif name == "ADD_ROSPEC":
            if session.rospec is not None:
                return llrp_status("A_Invalid", "a ROSpec is already defined")
            _, rospec, _ = decode_param(body)
            session.rospec = rospec
            self.rospec = rospec
        elif name == "ENABLE_ROSPEC":
            if session.rospec is None:
                return llrp_status("A_Invalid", "no such ROSpec")
            trigger = session.rospec["ROBoundarySpec"]["ROSpecStartTrigger"]
            if trigger.get("ROSpecStartTriggerType") in (1, "Immediate"):
                self._run(session)
        elif name == "START_ROSPEC":
            if session.rospec is None:
                return llrp_status("A_Invalid", "no such ROSpec")
            self._run(session)
        elif name in ("STOP_ROSPEC", "DISABLE_ROSPEC"):
            session.running = False
        elif name == "DELETE_ROSPEC":
            session.running = False
            session.rospec = None
        return llrp_status()

    def _run(self, session: _Session) -> None:
        session.running = True
        session.last_report_us = time.time_ns() // 1000
        session.next_report = time.monotonic() + self._report_s(session)

    @staticmethod
    def _report_s(session: _Session) -> float:
        rospec = session.rospec or {}
        for aispec in rospec.get("AISpec", []):
            trigger = aispec.get("AISpecStopTrigger", {}).get("TagObservationTrigger", {})
            if trigger.get("Timeout"):
                return float(trigger["Timeout"]) / 1000.0
            if aispec.get("AISpecStopTrigger", {}).get("DurationTriggerValue"):
                return float(aispec["AISpecStopTrigger"]["DurationTriggerValue"]) / 1000.0
        return DEFAULT_REPORT_S

    def _timers(self, session: _Session) -> None:
        now = time.monotonic()
        if session.keepalive_s and now >= session.next_keepalive:
            session.next_keepalive = now + session.keepalive_s
            self._send(session, encode_message("KEEPALIVE", b"", session.next_id()))
        if self._session is session and session.running and now >= session.next_report:
            session.next_report = now + self._report_s(session)
            self._report(session)

    def _report(self, session: _Session) -> None:
        rospec = session.rospec or {}
        antennas: set[int] = set()
        for aispec in rospec.get("AISpec", []):
            ids = aispec.get("AntennaID", [])
            antennas.update(range(1, self.antennas + 1) if 0 in ids else ids)
        select_ = rospec.get("ROReportSpec", {}).get("TagReportContentSelector", {})
        first = session.last_report_us
        last = time.time_ns() // 1000
        session.last_report_us = last
        with self._lock:
            tags = [t for t in self._tags.values() if t.antenna in antennas]
        body = b"".join(
            tag_report_data(t, first + 1, last, rospec.get("ROSpecID", 1), select_) for t in tags
        )
        self._send(session, encode_message("RO_ACCESS_REPORT", body, session.next_id()))
        if self._session is session:  # delivered to the client's socket
            self.reports += 1
            for t in tags:
                self.sent[(t.epc, t.antenna)] += t.reads


def _tag(text: str) -> tuple[str, int]:
    try:
        epc, antenna = text.split(":", 1) if ":" in text else (text, "1")
        bytes.fromhex(epc)
        return epc, int(antenna)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not EPC[:ANTENNA]") from None


def main(argv: list[str] | None = None) -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=5084, help="TCP port (default: %(default)s)")
    parser.add_argument("--antennas", type=int, default=4, help="antenna ports (default: 4)")
    parser.add_argument(
        "--tag",
        type=_tag,
        action="append",
        default=[],
        metavar="EPC[:ANT]",
        help="a tag in the field of antenna ANT (default 1); repeatable",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    reader = SimulatedReader(args.port, args.host, antennas=args.antennas)
    for epc, antenna in args.tag:
        reader.place(epc, antenna)
    reader.start()
    logger.info("LLRP reader on %s:%d with %d tags", args.host, args.port, len(args.tag))
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        reader.stop()


if __name__ == "__main__":
    main()

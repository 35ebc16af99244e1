"""Edge agent parts: config errors, the example configs, register decoding, units, MT-SICS,
filter, disk queue, RFID dedup and tag reports, the simulated LLRP reader's messages as sllurp
decodes them."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import pytest
from sllurp.llrp import LLRPMessage  # type: ignore[import-untyped]  # no type hints

from core.errors import ConfigError
from edge.codec import convert, decode_registers, parse_mt_sics, parse_regex
from edge.config import (
    LlrpDevice,
    ModbusRtuDevice,
    Register,
    WeightFilterConfig,
    load_config,
    parse_config,
)
from edge.errors import ReadingError
from edge.filters import CellFilter, TagDedup
from edge.llrp import tag_read
from edge.queue import DiskQueue
from edge.readings import TagRead
from simulators.llrp_reader import (
    POWER_TABLE_DBM,
    capabilities,
    encode_message,
    llrp_status,
    tag_report_data,
)
from simulators.llrp_reader import Tag as SimTag

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

SHELF = {
    "name": "shelf-1",
    "protocol": "modbus_tcp",
    "kind": "weight",
    "host": "127.0.0.1",
    "registers": {"c1": {"address": 0, "type": "float32", "unit": "kg"}},
}


def test_config_error_names_device_and_field() -> None:
    bad = dict(SHELF, name="scale-1", registers={"weight": {"address": 0, "type": "float64"}})
    raw = {"site": "wh1", "devices": [SHELF, dict(SHELF, name="s2"), bad]}
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, "edge.yaml")
    text = str(caught.value)
    assert text.startswith("edge.yaml: devices[2] (scale-1).registers.weight.type: Input should")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"registers": {"c1": {"address": 0, "unit": "F"}}}, "registers.c1: unit 'F'"),
        ({"registers": {"c1": {"address": 0, "stable_bit": 3}}}, "stable_register and stable_bit"),
        ({"port": 70000}, "devices[0] (shelf-1).port: Input should be less than or equal"),
        ({"colour": "red"}, "devices[0] (shelf-1).colour: Extra inputs are not permitted"),
    ],
)
def test_config_errors(change: dict[str, object], expected: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(expected)):
        parse_config({"site": "wh1", "devices": [dict(SHELF, **change)]})


RTU = {
    "name": "rtu-1",
    "protocol": "modbus_rtu",
    "kind": "weight",
    "serial_port": "/dev/ttyUSB0",
    "unit_id": 1,
    "registers": {"c1": {"address": 0}},
}


@pytest.mark.parametrize(
    ("second", "expected"),
    [
        (
            {"baudrate": 19200},
            (
                "devices 'rtu-1' and 'rtu-2' share serial port /dev/ttyUSB0 with different line"
                " settings (baudrate, parity, stopbits (9600, 'N', 1) and (19200, 'N', 1))"
            ),
        ),
        ({"unit_id": 1}, "devices 'rtu-1' and 'rtu-2' are both unit 1 on serial port /dev/ttyUSB0"),
        (
            {"protocol": "serial_scale", "registers": None},
            "serial port /dev/ttyUSB0 is used by Modbus device 'rtu-1' and by the scale 'rtu-2'",
        ),
    ],
)
def test_devices_on_one_serial_line_must_agree(second: dict[str, object], expected: str) -> None:
    other = {k: v for k, v in {**RTU, "name": "rtu-2", "unit_id": 2, **second}.items() if v}
    if other["protocol"] == "serial_scale":
        other = {k: v for k, v in other.items() if k not in ("unit_id", "registers")}
    with pytest.raises(ConfigError) as caught:
        parse_config({"site": "wh1", "devices": [RTU, other]}, "edge.yaml")
    assert expected in str(caught.value)


def test_units_on_one_serial_line_share_it() -> None:
    config = parse_config(
        {"site": "wh1", "devices": [RTU, {**RTU, "name": "rtu-2", "unit_id": 2},
                                    {**RTU, "name": "rtu-3", "unit_id": 3}]},
    )  # fmt: skip
    assert [d.name for d in config.devices] == ["rtu-1", "rtu-2", "rtu-3"]


def test_example_configs_load() -> None:
    protocols = {
        path.name: sorted({d.protocol for d in load_config(path).devices})
        for path in sorted(EXAMPLES.glob("edge-*.yaml"))
    }
    assert protocols == {
        "edge-llrp.yaml": ["llrp"],
        "edge-scale.yaml": ["serial_scale"],
        "edge-shelf.yaml": ["modbus_tcp"],
        "edge-temp.yaml": ["modbus_rtu"],
    }
    rtu = load_config(EXAMPLES / "edge-temp.yaml").devices[0]
    assert isinstance(rtu, ModbusRtuDevice)
    line = (rtu.serial_port, rtu.baudrate, rtu.parity, rtu.stopbits, rtu.unit_id)
    assert line == ("/dev/ttyUSB0", 9600, "E", 1, 5)
    t2 = rtu.registers["t2"]
    assert (t2.function, t2.type, t2.word_order, t2.byte_order) == (
        "input",
        "float32",
        "little",
        "big",
    )


def test_duplicate_device_names_refused() -> None:
    with pytest.raises(ConfigError, match="used twice"):
        parse_config({"site": "wh1", "devices": [SHELF, SHELF]})


def _words(fmt: str, value: float) -> list[int]:
    data = struct.pack(">" + fmt, value)
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


@pytest.mark.parametrize(
    ("reg", "words", "expected"),
    [
        (Register(address=0, type="int16"), [0xFFFE], -2.0),
        (Register(address=0, type="uint16"), [0xFFFE], 65534.0),
        (Register(address=0, type="int32"), _words("i", -123456), -123456.0),
        (Register(address=0, type="uint32"), _words("I", 3_000_000_000), 3e9),
        (Register(address=0, type="float32"), _words("f", 12.5), 12.5),
        (Register(address=0, type="float32", word_order="little"), _words("f", 12.5)[::-1], 12.5),
        (
            Register(address=0, type="int32", byte_order="little", word_order="little"),
            [int.from_bytes(struct.pack("<i", 70000)[i : i + 2], "big") for i in (0, 2)],
            70000.0,
        ),
    ],
)
def test_decode_registers(reg: Register, words: list[int], expected: float) -> None:
    assert decode_registers(words, reg) == expected


def test_units_scale_offset_and_range() -> None:
    assert convert(1.5, Register(address=0, unit="kg"), "weight", -1e6, 1e7) == 1500.0
    assert convert(10, Register(address=0, unit="lb"), "weight", -1e6, 1e7) == 4535.924
    assert convert(410, Register(address=0, unit="F", scale=0.1), "temp", -90, 150) == 5.0
    assert convert(100, Register(address=0, scale=0.1, offset=-40), "temp", -90, 150) == -30.0
    with pytest.raises(ReadingError, match="not finite"):
        convert(float("nan"), Register(address=0), "temp", -90, 150)
    with pytest.raises(ReadingError, match="outside the physical range"):
        convert(3276.7, Register(address=0), "temp", -90, 150)


def test_mt_sics_replies() -> None:
    stable = parse_mt_sics("S S      12.345 kg\r\n")
    assert (stable.grams, stable.stable) == (12345.0, True)
    dynamic = parse_mt_sics("S D     250.5 g\r\n")
    assert (dynamic.grams, dynamic.stable) == (250.5, False)
    for line in ("S I\r\n", "ES\r\n", "EL\r\n", "S +\r\n"):
        with pytest.raises(ReadingError):
            parse_mt_sics(line)
    with pytest.raises(ReadingError, match="not an MT-SICS"):
        parse_mt_sics("S S 12.3")  # no unit: half a line


def test_generic_regex_lines() -> None:
    pattern = re.compile(r"(?P<stable>ST|US),GS,\s*(?P<value>[-+]?\d+\.\d+)\s*(?P<unit>kg|g|lb)")
    got = parse_regex("ST,GS,  +001.250kg\r\n", pattern, "kg")
    assert (got.grams, got.stable) == (1250.0, True)
    with pytest.raises(ReadingError, match="does not match"):
        parse_regex("garbage", pattern, "kg")


def test_filter_deadband_settling_heartbeat() -> None:
    cell = CellFilter(
        WeightFilterConfig(
            deadband_g=5, settle_samples=3, settle_band_g=2, heartbeat_s=60, settled_repeats=1
        )
    )
    # Without a stable bit, three readings within 2 g settle the cell.
    assert cell.offer(1000.0, None, 0.0) is False  # first reading: heartbeat, not settled
    assert cell.offer(1000.5, None, 1.0) is None
    assert cell.offer(1001.0, None, 2.0) is True  # settled: published
    assert cell.offer(1003.0, None, 3.0) is None  # within the deadband
    assert cell.offer(800.0, None, 4.0) is None  # moving
    assert cell.offer(799.0, None, 5.0) is None
    assert cell.offer(799.5, None, 6.0) is True  # settled beyond the deadband
    assert cell.offer(799.5, None, 30.0) is None
    assert cell.offer(799.5, None, 66.0) is True  # heartbeat
    # With the device's stable bit, it decides.
    bit = CellFilter(WeightFilterConfig(deadband_g=5, settled_repeats=1))
    assert bit.offer(50.0, True, 0.0) is True
    assert bit.offer(90.0, False, 1.0) is None
    assert bit.offer(90.0, True, 2.0) is True


def test_filter_repeats_a_new_settled_level() -> None:
    """Live inventory wants several settled readings per level: a change is published on the
    next ``settled_repeats`` settled polls, unsettled ones in between not counted."""
    cell = CellFilter(WeightFilterConfig(deadband_g=5, settled_repeats=3, heartbeat_s=60))
    got = [cell.offer(g, s, float(t)) for t, (g, s) in enumerate([(1000.0, True)] * 5)]
    assert got == [True, True, True, None, None]  # the first level, three times
    steps = [(760.0, False), (750.0, True), (749.0, False), (751.0, True), (750.5, True)]
    got = [cell.offer(g, s, 10.0 + t) for t, (g, s) in enumerate(steps)]
    assert got == [None, True, None, True, True]
    assert cell.offer(750.0, True, 20.0) is None  # three published: quiet until the heartbeat
    assert cell.offer(750.0, True, 76.0) is True
    assert cell.offer(750.0, True, 77.0) is None
    # A change during the repeats starts them over at the new level.
    cell.offer(500.0, True, 80.0)
    assert [cell.offer(250.0, True, 81.0 + t) for t in range(4)] == [True, True, True, None]
    assert WeightFilterConfig().settled_repeats == 8  # settle_readings 5 + the Hampel delay 3


def test_queue_seq_persists_and_overflow_drops_oldest(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite"
    queue = DiskQueue(path, max_bytes=10_000, max_age_s=3600)

    def payload(seq: int) -> bytes:
        return json.dumps({"seq": seq, "pad": "x" * 80}).encode()

    for _ in range(5):
        queue.put("wh1/weight/a", "t/a", payload, 2)
    queue.close()
    queue = DiskQueue(path, max_bytes=10_000, max_age_s=3600)
    assert queue.put("wh1/weight/a", "t/a", payload, 2) == 5  # seq survives a restart
    assert queue.put("wh1/weight/b", "t/b", payload, 2) == 0
    for _ in range(200):
        queue.put("wh1/weight/a", "t/a", payload, 2)
    count, size = queue.depth()
    assert size <= 10_000
    rows = queue.peek_after(0, 1000, 0)
    seqs = [json.loads(r.payload)["seq"] for r in rows if r.device == "wh1/weight/a"]
    assert seqs == list(range(205 - len(seqs) + 1, 206))  # the newest kept, in order
    dropped = queue.counter("dropped_messages")
    assert dropped == 207 - count
    assert queue.counter("dropped_readings") == 2 * dropped
    queue.remove([r.id for r in rows[:10]])
    assert queue.depth()[0] == count - 10
    queue.close()


LLRP = {"name": "dock-1", "protocol": "llrp", "host": "10.0.0.5", "antennas": [1, 2]}


def test_llrp_config_defaults_and_errors() -> None:
    config = parse_config({"site": "wh1", "devices": [LLRP]})
    reader = config.devices[0]
    assert isinstance(reader, LlrpDevice)
    assert (reader.kind, reader.port, reader.tx_power_dbm, reader.dedup_window_s) == (
        "rfid",
        5084,
        None,
        2.0,
    )
    assert config.agent_kind == "rfid"
    with pytest.raises(ConfigError, match=re.escape("devices[0] (dock-1).antennas.1: Input")):
        parse_config({"site": "wh1", "devices": [dict(LLRP, antennas=[1, 65])]})
    with pytest.raises(ConfigError, match="listed twice"):
        parse_config({"site": "wh1", "devices": [dict(LLRP, antennas=[2, 2])]})
    with pytest.raises(ConfigError, match=re.escape("devices[0] (dock-1).kind: Input should be")):
        parse_config({"site": "wh1", "devices": [dict(LLRP, kind="weight")]})


def test_tag_dedup_folds_a_window_per_epc_and_antenna() -> None:
    dedup = TagDedup(window_s=2.0)
    dedup.offer(TagRead("AA" * 12, 1, -60.0, 3, 1000, 1100), now=0.0)
    dedup.offer(TagRead("AA" * 12, 2, -70.0, 1, 1000, 1100), now=0.0)
    dedup.offer(TagRead("AA" * 12, 1, -52.0, 2, 1200, 1900), now=1.0)
    dedup.offer(TagRead("AA" * 12, 1, None, 1, 1950, 1990), now=1.9)
    assert dedup.due(1.99) == []  # the window is still open
    assert dedup.due(2.0) == [  # by last seen
        TagRead("AA" * 12, 2, -70.0, 1, 1000, 1100),
        TagRead("AA" * 12, 1, -52.0, 6, 1000, 1990),
    ]
    dedup.offer(TagRead("AA" * 12, 1, -50.0, 1, 2100, 2100), now=2.1)  # a new window
    assert dedup.due(2.2, everything=True) == [TagRead("AA" * 12, 1, -50.0, 1, 2100, 2100)]
    assert dedup.open == {}
    # window 0: every report is its own read
    instant = TagDedup(window_s=0)
    instant.offer(TagRead("BB" * 4, 1, None, 1, 5, 5), now=0.0)
    assert instant.due(0.0) == [TagRead("BB" * 4, 1, None, 1, 5, 5)]


def test_tag_report_fields() -> None:
    now = 1_796_000_000_000
    report = {
        "EPC-96": b"3034257bf7194e4000003039",
        "EPC": b"3034257bf7194e4000003039",
        "AntennaID": 2,
        "PeakRSSI": -57,
        "FirstSeenTimestampUTC": (now - 500) * 1000 + 7,
        "LastSeenTimestampUTC": (now - 100) * 1000,
        "TagSeenCount": 4,
    }
    got = tag_read(report, now, 1)
    assert got == TagRead("3034257BF7194E4000003039", 2, -57.0, 4, now - 500, now - 100)
    # A reader clock at uptime (1970) is not used; RSSI above 0 dBm is dropped, not the read.
    bare = {"EPC": b"e2003412", "PeakRSSI": 12, "LastSeenTimestampUTC": 5_000_000}
    assert tag_read(bare, now, 3) == TagRead("E2003412", 3, None, 1, now, now)
    with pytest.raises(ValueError, match="antenna 0"):
        tag_read(dict(report, AntennaID=0), now, 1)
    with pytest.raises(ValueError, match="not 8-128 hex digits"):
        tag_read({"EPC": b"zz12"}, now, 1)
    with pytest.raises(TypeError, match="without an EPC"):
        tag_read({"AntennaID": 1}, now, 1)


def test_simulated_reader_messages_decode_with_sllurp() -> None:
    reply = llrp_status() + capabilities(4)
    caps = LLRPMessage(msgbytes=encode_message("GET_READER_CAPABILITIES_RESPONSE", reply, 7))
    body = caps.msgdict["GET_READER_CAPABILITIES_RESPONSE"]
    assert caps.isSuccess()
    assert body["ID"] == 7
    assert body["GeneralDeviceCapabilities"]["MaxNumberOfAntennaSupported"] == 4
    band = body["RegulatoryCapabilities"]["UHFBandCapabilities"]
    powers = [e["TransmitPowerValue"] for e in band["TransmitPowerLevelTableEntry"]]
    assert powers == [round(dbm * 100) for dbm in POWER_TABLE_DBM]
    assert band["UHFC1G2RFModeTable"]["UHFC1G2RFModeTableEntry"][0]["ModeIdentifier"] == 1000
    tags = [SimTag("3034257BF7194E4000003039", 2, -48, 5), SimTag("E2003412", 1, -70, 1)]
    report = b"".join(tag_report_data(t, 1_000_000, 2_000_000, 1, {}) for t in tags)
    decoded = LLRPMessage(msgbytes=encode_message("RO_ACCESS_REPORT", report, 9)).msgdict
    got = decoded["RO_ACCESS_REPORT"]["TagReportData"]
    assert [tag_read(r, 0, 1) for r in got] == [
        TagRead("3034257BF7194E4000003039", 2, -48.0, 5, 0, 0),
        TagRead("E2003412", 1, -70.0, 1, 0, 0),
    ]  # the simulator's clock (1970 + 2 s) is not plausible: the receive time is used
    assert [(r["FirstSeenTimestampUTC"], r["LastSeenTimestampUTC"]) for r in got] == [
        (1_000_000, 2_000_000)
    ] * 2
    error = encode_message("ERROR_MESSAGE", llrp_status("UnsupportedMessage"), 3)
    refused = LLRPMessage(msgbytes=error)
    assert not refused.isSuccess()
    assert refused.msgdict["ERROR_MESSAGE"]["LLRPStatus"]["StatusCode"] == "UnsupportedMessage"

"""Edge agent parts: config errors, register decoding, units, MT-SICS, filter, disk queue."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import pytest

from core.errors import ConfigError
from edge.codec import convert, decode_registers, parse_mt_sics, parse_regex
from edge.config import Register, WeightFilterConfig, parse_config
from edge.errors import ReadingError
from edge.filters import CellFilter
from edge.queue import DiskQueue

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
        WeightFilterConfig(deadband_g=5, settle_samples=3, settle_band_g=2, heartbeat_s=60)
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
    bit = CellFilter(WeightFilterConfig(deadband_g=5))
    assert bit.offer(50.0, True, 0.0) is True
    assert bit.offer(90.0, False, 1.0) is None
    assert bit.offer(90.0, True, 2.0) is True


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

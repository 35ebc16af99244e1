"""Property tests: whatever arrives, a decoder returns valid readings or raises PayloadError.

Inputs are the real fixtures of ``tests/fixtures`` and canonical messages with one to three
fields replaced by hostile values (huge integers, 1e308, -0.0, NaN text, deep nesting, unicode,
wrong types, trailing newlines), plus raw bytes and hostile topics. Accepted readings must be
finite, within their physical bounds, with clean names, and writable as line protocol.

Bounded in time: ``max_examples`` is modest and CI (``CI=true``) runs a fixed, derandomised
set so that a run is reproducible.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from core.bounds import MAX_TS_MS, MIN_TS_MS
from core.errors import PayloadError
from core.identifiers import EPC_HEX_RE, NAME_RE
from core.readings import DeviceStatus, Sample, TagSample, TempSample, WeightSample
from ingest.adapters import AdapterRoute, decode
from ingest.decode import decode_canonical
from ingest.lines import message_lines

settings.register_profile(
    "fuzz",
    max_examples=200,
    deadline=None,
    derandomize=os.environ.get("CI", "").lower() == "true",
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FUZZ = settings.get_profile("fuzz")

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
RECEIVED = 1_767_225_600_000
REASONS = {
    "invalid_json",
    "schema",
    "missing_field",
    "unknown_field",
    "not_finite",
    "out_of_range",
    "bad_topic",
    "oversize",
    "no_adapter",
}
ROUTES = [
    AdapterRoute(pattern="impinj/+/events", adapter="impinj", site="wh1"),
    AdapterRoute(pattern="zebra/+/data", adapter="zebra", site="wh1"),
    AdapterRoute(pattern="zebra/+/events", adapter="zebra", site="wh1"),
    AdapterRoute(pattern="tele/shelf-a1/+", adapter="tasmota", site="wh1", kind="weight"),
    AdapterRoute(pattern="tele/+/+", adapter="tasmota", site="wh1", timezone="Asia/Shanghai"),
    AdapterRoute(pattern="+/events/rpc", adapter="shelly", site="wh1"),
    AdapterRoute(pattern="+/online", adapter="shelly", site="wh1"),
]


class Raw:
    """JSON text placed verbatim where a value would be serialised (e.g. 5,000 digits)."""

    def __init__(self, text: str) -> None:
        self.text = text


def _fixture(name: str) -> tuple[str, Any, bool]:
    """Topic, JSON value and whether the payload is newline-delimited JSON."""
    doc = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    if "payload_text" in doc:
        lines = [json.loads(line) for line in doc["payload_text"].splitlines() if line]
        return doc["topic"], lines, True
    return doc["topic"], doc["payload"], False


VENDOR_FIXTURES = {
    vendor: sorted(
        p.name for p in FIXTURES.glob(f"{vendor}-*.json") if not p.name.startswith("epc-")
    )
    for vendor in ("impinj", "zebra", "tasmota", "shelly")
}

CANONICAL: list[tuple[str, Any]] = [
    (
        "stocksense/v1/wh1/temp/probe-1/data",
        {
            "ts": "2026-01-01T08:00:00.250+08:00",
            "seq": 7,
            "readings": [{"sensor": "t1", "celsius": 4.5, "humidity": 80.0, "ts": RECEIVED}],
        },
    ),
    (
        "stocksense/v1/wh1/weight/shelf-1/data",
        {
            "ts": RECEIVED,
            "seq": 0,
            "readings": [
                {"cell": "c1", "grams": 9987.5, "stable": True},
                {"cell": "c2", "grams": -2.5, "stable": False},
            ],
        },
    ),
    (
        "stocksense/v1/wh1/rfid/dock-1/data",
        {
            "ts": RECEIVED,
            "seq": 5,
            "reads": [{"epc": "3034257BF7194E4000003039", "antenna": 2, "rssi": -52.5, "count": 3}],
        },
    ),
    (
        "stocksense/v1/wh1/temp/probe-1/status",
        {"online": True, "ts": RECEIVED, "interval_s": 10, "firmware": "2.4.1", "reason": "ok"},
    ),
]

# Hostile values, as JSON values or as raw JSON text.
_RAW_TOKENS = st.sampled_from(
    [
        "NaN",
        "-Infinity",
        "Infinity",
        "1e400",
        "-1e400",
        "1e308",
        "-0",
        "-0.0",
        "1E+308",
        "4.9e-324",
        "0.0e-400",
        "1" * 4301,
        "-" + "9" * 5000,
        "1" * 4300,
        "[" * 3000 + "]" * 3000,
        '{"a":' * 2000 + "1" + "}" * 2000,
        '"\\ud800"',
        '"\\udfff\\ud800"',
        '"\\u0000"',
        "null",
        "true",
    ]
).map(Raw)
_NUMBERS = st.one_of(
    st.integers(min_value=-(10**400), max_value=10**400),
    st.sampled_from([1e308, -1e308, -0.0, 5e-324, 2**63, -(2**63) - 1, 2**64, 1e18, 1e15]),
    st.floats(),  # NaN and infinities are written as NaN/Infinity text by json.dumps
)
_TEXTS = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        ["", "NaN", "1e308", "\ud800", "t1\n", "a b", "x" * 300, "２０２６-01-01T00:00:00Z"]
    ),
    st.sampled_from(
        [
            "2026-01-01T00:00:00Z",
            "9999-12-31T23:59:59-23:59",
            "0001-01-01T00:00:00+23:59",
            "2026-01-01T00:00:00",
            "1970-01-01T00:00:00Z",
            "2026-01-01T00:00:00.123456789+0000",
        ]
    ),
)
_NESTED = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
HOSTILE = st.one_of(_RAW_TOKENS, _NUMBERS, _TEXTS, _NESTED)
# Same-type replacements: edge values that may well be accepted, so the reading checks run.
_LONG_DIGITS = st.sampled_from(["1" * 4301, "-" + "9" * 5000, "1" * 4300]).map(Raw)
_EDGE_FLOATS = st.one_of(
    st.sampled_from([1e308, -1e308, 1.7976931348623157e308, -0.0, 5e-324, 1e-300, 1e18]),
    st.sampled_from([-90.0, 150.0, 150.00000000000003, 100.0, -130.0, 0.0]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(min_value=-200.0, max_value=200.0),
    _LONG_DIGITS,
)
_EDGE_INTS = st.one_of(
    st.sampled_from([10**400, -(10**400), 2**63 - 1, 2**63, 2**64, -(2**63) - 1]),
    st.sampled_from([0, 1, 64, 65, -1, RECEIVED, MIN_TS_MS, MAX_TS_MS - 1, MAX_TS_MS]),
    st.integers(min_value=-(10**20), max_value=10**20),
    _LONG_DIGITS,
)


def _same_type(value: Any) -> st.SearchStrategy[Any]:
    if isinstance(value, bool):
        return st.booleans()
    if isinstance(value, float):
        return _EDGE_FLOATS
    if isinstance(value, int):
        return _EDGE_INTS
    if isinstance(value, str):
        return _TEXTS
    return HOSTILE


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every position in a JSON value (the root included)."""
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*path, index))
    return found


def _leaves(value: Any) -> list[tuple[Any, ...]]:
    """The positions of scalars: most hostile values belong there."""
    found = []
    for path in _paths(value):
        target = value
        for step in path:
            target = target[step]
        if not isinstance(target, dict | list):
            found.append(path)
    return found or [()]


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: _replace(value[head], rest, new)}
    copy = list(value)
    copy[head] = _replace(copy[head], rest, new)
    return copy


def _rename(value: Any, path: tuple[Any, ...], suffix: str) -> Any:
    """Append ``suffix`` to the key at ``path`` (a dict entry), keeping its value."""
    *parent_path, key = path
    parent = value
    for step in parent_path:
        parent = parent[step]
    renamed = {(k + suffix if k == key else k): v for k, v in parent.items()}
    return _replace(value, tuple(parent_path), renamed)


@st.composite
def mutated(draw: st.DrawFn, base: Any) -> Any:
    """``base`` with one to three hostile changes."""
    value = base
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        path = draw(st.sampled_from(_leaves(value)) | st.sampled_from(_paths(value)))
        action = draw(
            st.sampled_from(
                ["replace", "same_type", "same_type", "newline", "rename", "drop", "add"]
            )
        )
        target = value
        for step in path:
            target = target[step]
        if action == "newline" and isinstance(target, str):
            value = _replace(value, path, target + draw(st.sampled_from(["\n", "\r\n", " "])))
        elif action == "rename" and path and isinstance(path[-1], str):
            value = _rename(value, path, draw(st.sampled_from(["\n", " ", "x", ""])))
        elif action == "drop" and path:
            *parent_path, key = path
            parent = value
            for step in parent_path:
                parent = parent[step]
            pruned: Any
            if isinstance(parent, dict):
                pruned = {k: v for k, v in parent.items() if k != key}
            else:
                pruned = [v for i, v in enumerate(parent) if i != key]
            value = _replace(value, tuple(parent_path), pruned)
        elif action == "same_type":
            value = _replace(value, path, draw(_same_type(target)))
        elif action == "add" and isinstance(target, dict):
            key = draw(st.text(max_size=12))
            value = _replace(value, path, {**target, key: draw(HOSTILE)})
        else:
            value = _replace(value, path, draw(HOSTILE))
    return value


def _serialise(value: Any, *, ndjson: bool, ensure_ascii: bool, suffix: str) -> bytes:
    raws: list[str] = []

    def default(obj: object) -> str:
        if isinstance(obj, Raw):
            raws.append(obj.text)
            return f"\x00raw{len(raws) - 1}\x00"
        raise TypeError(type(obj).__name__)

    def dump(item: Any) -> str:
        return json.dumps(item, default=default, ensure_ascii=ensure_ascii)

    if ndjson and isinstance(value, list):
        text = "\n".join(dump(item) for item in value)
    else:
        text = dump(value)
    for index, raw in enumerate(raws):
        text = text.replace(f'"\\u0000raw{index}\\u0000"', raw).replace(
            f'"\x00raw{index}\x00"', raw
        )
    return (text + suffix).encode("utf-8", "surrogatepass")


SUFFIXES = st.sampled_from(["", "", "\n", "\r\n", " \t", "\n\n", "\x00"])


def _check_sample(sample: Sample) -> None:
    """The invariants of an accepted reading."""
    assert isinstance(sample.ts_ms, int)
    assert not isinstance(sample.ts_ms, bool)
    assert MIN_TS_MS <= sample.ts_ms < MAX_TS_MS
    assert NAME_RE.fullmatch(sample.site)
    assert NAME_RE.fullmatch(sample.device)
    if isinstance(sample, TempSample):
        assert NAME_RE.fullmatch(sample.sensor)
        assert isinstance(sample.celsius, float)
        assert math.isfinite(sample.celsius)
        assert -90.0 <= sample.celsius <= 150.0
        if sample.humidity is not None:
            assert math.isfinite(sample.humidity)
            assert 0.0 <= sample.humidity <= 100.0
    elif isinstance(sample, WeightSample):
        assert NAME_RE.fullmatch(sample.cell)
        assert math.isfinite(sample.grams)
        assert -1_000_000.0 <= sample.grams <= 10_000_000.0
        assert sample.stable in (None, True, False)
    elif isinstance(sample, TagSample):
        assert EPC_HEX_RE.fullmatch(sample.epc)
        assert sample.epc == sample.epc.upper()
        assert 1 <= sample.antenna <= 64
        assert 1 <= sample.count <= 1_000_000
        if sample.rssi is not None:
            assert math.isfinite(sample.rssi)
            assert -130.0 <= sample.rssi <= 0.0
    else:
        assert isinstance(sample, DeviceStatus)
        assert sample.kind in ("temp", "weight", "rfid")
        assert isinstance(sample.online, bool)
        if sample.interval_s is not None:
            assert math.isfinite(sample.interval_s)
            assert 0 < sample.interval_s <= 86_400
        if sample.reason is not None:
            assert len(sample.reason) <= 256


def _outcome(topic: str, payload: bytes, routes: list[AdapterRoute] | None = None) -> str:
    """Decode; check the readings or the refusal; return ``ok``, ``ignored`` or the reason."""
    refused: PayloadError | None = None
    try:
        if routes is None:
            decoded = decode_canonical(topic, payload, RECEIVED)
        else:
            decoded = decode(topic, payload, RECEIVED, routes)
    except PayloadError as exc:  # anything else fails the test
        refused = exc
    if refused is not None:
        assert refused.reason in REASONS, refused.reason
        assert isinstance(refused.detail, str)
        event(refused.reason)
        return refused.reason
    for sample in decoded.samples:
        _check_sample(sample)
    if decoded.seq is not None:
        assert 0 <= decoded.seq <= 2**63 - 1
    lines = message_lines(decoded.samples, decoded.seq)
    for line in lines:  # one line per reading, writable: no newline, no lone surrogate
        assert "\n" not in line
        line.encode("utf-8")
    outcome = "ok" if decoded.samples else "ignored"
    event(outcome)
    return outcome


@pytest.mark.parametrize("vendor", sorted(VENDOR_FIXTURES))
@FUZZ
@given(data=st.data())
def test_mutated_vendor_fixtures(vendor: str, data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(VENDOR_FIXTURES[vendor]), label="fixture")
    topic, base, ndjson = _fixture(name)
    value = data.draw(mutated(base), label="payload")
    payload = _serialise(
        value,
        ndjson=ndjson,
        ensure_ascii=data.draw(st.booleans()),
        suffix=data.draw(SUFFIXES),
    )
    _outcome(topic, payload, ROUTES)


@FUZZ
@given(data=st.data())
def test_mutated_canonical_messages(data: st.DataObject) -> None:
    topic, base = data.draw(st.sampled_from(CANONICAL), label="message")
    value = data.draw(mutated(base), label="payload")
    payload = _serialise(
        value, ndjson=False, ensure_ascii=data.draw(st.booleans()), suffix=data.draw(SUFFIXES)
    )
    _outcome(topic, payload)
    _outcome(topic, payload, ROUTES)  # the same through the router


TOPICS = [
    "impinj/r700-1/events",
    "zebra/fx7500-2/data",
    "tele/cold-room-1/SENSOR",
    "tele/cold-room-1/STATE",
    "tele/cold-room-1/LWT",
    "tele/shelf-a1/SENSOR",
    "shellyplusht-1/events/rpc",
    "shellyplusht-1/online",
    "stocksense/v1/wh1/temp/p1/data",
    "stocksense/v1/wh1/weight/p1/data",
    "stocksense/v1/wh1/rfid/p1/data",
    "stocksense/v1/wh1/rfid/p1/status",
]


@FUZZ
@given(topic=st.sampled_from(TOPICS), payload=st.binary(max_size=1024))
def test_raw_bytes(topic: str, payload: bytes) -> None:
    _outcome(topic, payload, ROUTES)


_SEGMENT = st.one_of(
    st.sampled_from(["wh1", "temp", "rfid", "weight", "p1", "data", "status", "", "+", "#"]),
    st.text(max_size=70),
    st.sampled_from(["p1\n", "p1\r", "p 1", "x" * 65, "\ud800", "p1/"]),
)


@FUZZ
@given(
    levels=st.lists(_SEGMENT, min_size=0, max_size=8),
    prefix=st.sampled_from(["stocksense/v1"] * 3 + ["tele", "impinj", "zebra", "", "stocksense"]),
    suffix=st.sampled_from(["", "/data", "/status", "/SENSOR", "/LWT", "/events/rpc", "/online"]),
)
def test_hostile_topics(levels: list[str], prefix: str, suffix: str) -> None:
    topic = "/".join([prefix, *levels]) + suffix
    payload = json.dumps(CANONICAL[0][1]).encode()
    _outcome(topic, payload, ROUTES)
    if topic.startswith("stocksense/v1/"):
        _outcome(topic, payload)

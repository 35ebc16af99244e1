"""The rules every path shares, each defined once: identifiers (core.identifiers) and the
physical bounds of readings (core.models), as the wire models, the vendor adapters, the
settings, the seed, the edge agent and the API apply them."""

from __future__ import annotations

import re
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from core import identifiers
from core.bounds import CELSIUS, GRAMS, HUMIDITY_PERCENT, RSSI_DBM, Bounds
from core.errors import PayloadError
from core.models import TempReading
from core.settings import AdapterRoute, ChannelSettings
from edge.config import DeviceBase
from ingest.adapters._common import check_range
from rules.seed import SensorRef

RULES = {
    "segment": (identifiers.SEGMENT_PATTERN, identifiers.SEGMENT_RE),
    "name": (identifiers.NAME_PATTERN, identifiers.NAME_RE),
    "ident": (identifiers.IDENT_PATTERN, identifiers.IDENT_RE),
    "path segment": (identifiers.PATH_SEGMENT_PATTERN, identifiers.PATH_SEGMENT_RE),
    "user name": (identifiers.USER_NAME_PATTERN, identifiers.USER_NAME_RE),
}
TYPES: dict[str, Any] = {
    "segment": identifiers.Segment,
    "name": identifiers.Name,
    "ident": identifiers.Ident,
    "user name": identifiers.UserName,
    # as api.fields.Segment hands it to FastAPI
    "path segment": Annotated[str, Field(pattern=identifiers.PATH_SEGMENT_PATTERN)],
}

# value -> the rules that accept it
VALUES = {
    "wh1": {"segment", "name", "ident", "path segment", "user name"},
    "a" * 64: {"segment", "name", "ident", "path segment", "user name"},
    "a" * 65: set(),
    "": set(),
    "probe-3.cold_room": {"segment", "name", "ident", "path segment", "user name"},
    "84:24:8D:01:02:03": {"name", "ident", "path segment"},
    "A/03": {"ident"},
    ".hidden": {"segment", "name", "ident", "user name"},
    "li.wei@wh1": {"user name"},
    "wh 1": set(),
    "wh1\n": set(),
    "\nwh1": set(),
    "wh1\r": set(),
    "wh1/+": set(),
    "wh#1": set(),
    "仓库": set(),
}


@pytest.mark.parametrize("value", sorted(VALUES))
@pytest.mark.parametrize("rule", sorted(RULES))
def test_pattern_and_regex_agree(rule: str, value: str) -> None:
    pattern, compiled = RULES[rule]
    accepted = rule in VALUES[value]
    assert bool(compiled.fullmatch(value)) is accepted
    assert bool(compiled.match(value)) is accepted  # \Z: no partial or newline escape
    adapter: TypeAdapter[str] = TypeAdapter(TYPES[rule])
    if accepted:
        assert adapter.validate_python(value) == value
    else:
        with pytest.raises(ValidationError, match="should match pattern"):
            adapter.validate_python(value)
    # The two texts differ in their end anchor only.
    assert pattern.removesuffix("$") == compiled.pattern.removesuffix("\\Z")


@pytest.mark.parametrize("rule", sorted(RULES))
def test_python_dollar_would_let_a_trailing_newline_through(rule: str) -> None:
    """Why the Python forms end in \\Z while pydantic's ``$`` (Rust regex) is end of text."""
    pattern, compiled = RULES[rule]
    assert re.match(pattern, "wh1\n") is not None
    assert compiled.match("wh1\n") is None
    with pytest.raises(ValidationError):
        TypeAdapter(TYPES[rule]).validate_python("wh1\n")


@pytest.mark.parametrize(
    ("model", "values"),
    [
        (AdapterRoute, {"pattern": "tele/#", "adapter": "tasmota", "site": "wh1\n"}),
        (ChannelSettings, {"name": "ops\n", "kind": "webhook", "url": "https://h.internal/x"}),
        (SensorRef, {"device": "probe-1\n"}),
        (TempReading, {"sensor": "t1\n", "celsius": 4.0}),
        (DeviceBase, {"name": "scale-1\n", "kind": "weight"}),
    ],
)
def test_every_model_refuses_a_trailing_newline(
    model: type[BaseModel], values: dict[str, Any]
) -> None:
    with pytest.raises(ValidationError, match="should match pattern"):
        model.model_validate(values)
    stripped = {k: v.rstrip("\n") if isinstance(v, str) else v for k, v in values.items()}
    assert model.model_validate(stripped)


def test_topic_levels_take_no_colon_but_payload_names_do() -> None:
    """The wire contract: site and device are topic levels; sensors and vendor ids may hold ':'."""
    with pytest.raises(ValidationError):
        AdapterRoute(pattern="tele/#", adapter="tasmota", site="wh:1")
    with pytest.raises(ValidationError):
        DeviceBase(name="scale:1", kind="weight")
    assert TempReading(sensor="28:FF:64:1E", celsius=4.0).sensor == "28:FF:64:1E"
    assert SensorRef(device="84:24:8D:01:02:03").device == "84:24:8D:01:02:03"


BOUNDS = [(CELSIUS, "celsius"), (HUMIDITY_PERCENT, "humidity"), (GRAMS, None), (RSSI_DBM, None)]


@pytest.mark.parametrize(("bounds", "field"), BOUNDS)
def test_vendor_and_canonical_bounds_are_the_same(bounds: Bounds, field: str | None) -> None:
    below, above = bounds.low - 1e-9, bounds.high + 1e-9
    for inside in (bounds.low, bounds.high):
        assert check_range(inside, bounds, "value") == inside
    for outside in (below, above):
        with pytest.raises(PayloadError) as caught:
            check_range(outside, bounds, "value")
        assert caught.value.reason == "out_of_range"
    if field is not None:
        base: dict[str, Any] = {"sensor": "t1", "celsius": 4.0}
        for inside in (bounds.low, bounds.high):
            assert getattr(TempReading(**{**base, field: inside}), field) == inside
        for outside in (below, above):
            with pytest.raises(ValidationError):
                TempReading(**{**base, field: outside})


def test_the_edge_agent_uses_the_same_bounds() -> None:
    assert DeviceBase(name="scale-1", kind="weight").value_range() == (GRAMS.low, GRAMS.high)
    assert DeviceBase(name="probe-1", kind="temp").value_range() == (CELSIUS.low, CELSIUS.high)
    narrowed = DeviceBase(name="probe-1", kind="temp", min_value=-30.0, max_value=10.0)
    assert narrowed.value_range() == (-30.0, 10.0)


def test_bounds_are_the_documented_ones() -> None:
    # docs/wire-contract.md: °C -90..150, humidity 0..100 %, RSSI -130..0 dBm.
    assert (CELSIUS, HUMIDITY_PERCENT, RSSI_DBM) == ((-90, 150), (0, 100), (-130, 0))
    assert GRAMS == (-1_000_000, 10_000_000)

"""InfluxDB's refusals, read from the exact answers InfluxDB 1.6.7 gave (recorded on the real
server: see tests/integration/test_partial_writes.py, which provokes each one)."""

from __future__ import annotations

import pytest

from core.influx import InfluxRefusedError, LineView, write_error

CONFLICT = (
    '{"error":"partial write: field type conflict: input field \\"value\\" on measurement'
    ' \\"temperature\\" is type integer, already exists as type float dropped=1"}\n'
)
MAX_VALUES = (
    '{"error":"partial write: max-values-per-tag limit exceeded (10/10): measurement=\\"weight\\"'
    ' tag=\\"device\\" value=\\"n0\\" dropped=6"}\n'
)
UNPARSABLE_PARTIAL = (
    '{"error":"partial write: unable to parse \'temperature,device=a value= 1796117018492757898\':'
    " missing field value\\nunable to parse 'bad line': invalid field format dropped=0\"}\n"
)
UNPARSABLE_ALL = (
    '{"error":"unable to parse \'bad one\': invalid field format\\n'
    "unable to parse 'bad two': invalid field format\"}\n"
)
NEW_FIELD_CONFLICT = '{"error":"field type conflict"}\n'
RETENTION = '{"error":"partial write: points beyond retention policy dropped=2"}\n'
MAX_SERIES = '{"error":"partial write: max-series-per-database limit exceeded: (50) dropped=60"}\n'
INVALID_FIELD = (
    '{"error":"partial write: invalid field name: input field \\"time\\" on measurement'
    ' \\"temperature\\" is invalid dropped=1"}\n'
)
ESCAPED = (
    '{"error":"partial write: field type conflict: input field \\"gr=ams\\" on measurement'
    ' \\"we ight\\" is type integer, already exists as type float dropped=1"}\n'
)


def refusal(body: str, status: int = 400) -> InfluxRefusedError:
    error = write_error(status, body)
    assert isinstance(error, InfluxRefusedError)
    assert not error.retryable
    return error


def test_type_conflict_names_measurement_field_and_type() -> None:
    error = refusal(CONFLICT)
    assert (error.kind, error.partial, error.dropped) == ("field_type_conflict", True, 1)
    assert (error.measurement, error.field, error.field_type) == ("temperature", "value", "integer")
    assert error.reason == (
        'field type conflict: input field "value" on measurement "temperature" is type integer,'
        " already exists as type float"
    )
    lines = [
        "temperature,device=a value=1.5 1",
        "temperature,device=a value=2i 2",
        "temperature,device=b value=3i,humidity=40.0 3",
        "weight,device=a value=2i 4",
        "temperature,device=a other=2i 5",
    ]
    assert error.named(lines) == [lines[1], lines[2]]


def test_escaped_names_are_matched_unescaped() -> None:
    error = refusal(ESCAPED)
    assert (error.measurement, error.field) == ("we ight", "gr=ams")
    refused = "we\\ ight,dev\\,ice=a\\ b gr\\=ams=1i 5"
    assert error.named([refused, "we\\ ight gr\\=ams=1.0 6"]) == [refused]


def test_max_values_per_tag_names_one_tag_value() -> None:
    error = refusal(MAX_VALUES)
    assert (error.kind, error.dropped) == ("max_values_per_tag", 6)
    assert (error.measurement, error.tag, error.tag_value) == ("weight", "device", "n0")
    lines = [
        "weight,cell=c1,device=n0,site=wh1 grams=1.0 1",
        "weight,cell=c1,device=n1,site=wh1 grams=1.0 2",
        "weight,cell=c2,device=n0,site=wh1 grams=2.0 3",
        "temperature,device=n0 celsius=2.0 4",
    ]
    assert error.named(lines) == [lines[0], lines[2]]


def test_unparsable_lines_are_quoted_verbatim_with_their_own_message() -> None:
    error = refusal(UNPARSABLE_PARTIAL)
    assert (error.kind, error.partial, error.dropped) == ("unparsable", True, 0)
    bad = "temperature,device=a value= 1796117018492757898"
    lines = ["temperature,device=a value=1.5 1", bad, "bad line"]
    assert error.named(lines) == [bad, "bad line"]
    assert error.reason_for(bad) == f"unable to parse '{bad}': missing field value"
    assert error.reason_for("bad line") == "unable to parse 'bad line': invalid field format"


def test_a_quoted_line_may_itself_contain_the_separator() -> None:
    line = 'temperature,device=仓库 note="it\': ok" value= 1796117247817293342'
    body = (
        '{"error":"partial write: unable to parse \'temperature,device=仓库 note=\\"it\': ok\\"'
        " value= 1796117247817293342': bad timestamp dropped=0\"}\n"
    )
    error = refusal(body)
    assert error.named([line, "temperature value=1.0 1"]) == [line]
    assert error.reason_for(line).endswith("': bad timestamp")


def test_a_batch_with_no_parsable_line_is_not_partial() -> None:
    error = refusal(UNPARSABLE_ALL)
    assert (error.kind, error.partial) == ("unparsable", False)
    assert error.named(["bad one", "bad two", "x value=1 1"]) == ["bad one", "bad two"]


def test_bare_type_conflict_points_at_the_less_common_type() -> None:
    error = refusal(NEW_FIELD_CONFLICT)
    assert (error.kind, error.partial, error.measurement) == ("field_type_conflict", False, None)
    lines = [
        "temperature,device=a value=2i 1",
        "temperature,device=a value=1.5 2",
        "temperature,device=b value=3.5 3",
        "temperature,device=b flag=t 4",
    ]
    assert error.named(lines) == [lines[0]]


@pytest.mark.parametrize(
    ("body", "kind", "dropped"),
    [(RETENTION, "beyond_retention", 2), (MAX_SERIES, "max_series", 60)],
)
def test_unnamed_refusals_name_no_line(body: str, kind: str, dropped: int) -> None:
    error = refusal(body)
    assert (error.kind, error.partial, error.dropped) == (kind, True, dropped)
    assert error.named(["temperature,device=a value=1.5 1"]) == []


def test_invalid_field_name_names_the_lines_carrying_it() -> None:
    error = refusal(INVALID_FIELD)
    assert (error.kind, error.field, error.measurement) == ("invalid_field", "time", "temperature")
    lines = ["temperature,device=a time=1.0 1", "temperature,device=a value=1.0 2"]
    assert error.named(lines) == [lines[0]]


def test_v2_style_message_is_read_too() -> None:
    body = '{"code":"invalid","message":"unable to parse \'bad\': missing fields"}'
    error = refusal(body)
    assert error.kind == "unparsable"
    assert error.named(["bad", "x value=1 1"]) == ["bad"]


def test_too_large_and_other_statuses() -> None:
    assert refusal("Request Entity Too Large", 413).kind == "too_large"
    assert refusal('{"error":"method not allowed"}', 405).kind == "refused"


@pytest.mark.parametrize("status", [401, 403, 404, 408, 429, 500, 503])
def test_answers_that_can_change_are_retryable(status: int) -> None:
    error = write_error(status, '{"error":"database not found: \\"nope\\""}')
    assert not isinstance(error, InfluxRefusedError)
    assert error.retryable
    assert error.status == status


def test_line_view_reads_what_ingest_writes() -> None:
    view = LineView.parse(
        'rfid,antenna=1,device=dock\\ 1,site=wh1 epc="3034, x=1",rssi=-50.5,count=3i,'
        "ok=t,n=5u 1795309200000000000"
    )
    assert view == LineView(
        measurement="rfid",
        tags={"antenna": "1", "device": "dock 1", "site": "wh1"},
        fields={
            "epc": "string",
            "rssi": "float",
            "count": "integer",
            "ok": "boolean",
            "n": "unsigned",
        },
    )
    assert LineView.parse("bad") is None

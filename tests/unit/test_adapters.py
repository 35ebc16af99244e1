"""Vendor payload adapters: real and documented fixtures, garbage, and MQTT topic routing."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, get_args

import pytest
from pydantic import ValidationError

from core import topics
from core.epc import decode_sgtin96, is_sgtin96
from core.errors import ConfigError, PayloadError, StockSenseError, TopicError
from core.readings import DeviceStatus, Sample, TagSample, TempSample, WeightSample
from core.settings import AdapterName
from ingest.adapters import (
    ADAPTERS,
    AdapterContext,
    AdapterRoute,
    decode,
    match_route,
)
from ingest.decode import MAX_PAYLOAD_BYTES

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
RECEIVED = 1_767_225_600_000  # 2026-01-01T00:00:00Z, the broker receive time used throughout
SGTIN = "3034257BF7194E4000003039"
NOT_SGTIN = "E2801191A5030065F26CCBFF"

ROUTES = [
    AdapterRoute(pattern="impinj/+/events", adapter="impinj", site="wh1"),
    AdapterRoute(pattern="zebra/+/data", adapter="zebra", site="wh1"),
    AdapterRoute(pattern="zebra/+/events", adapter="zebra", site="wh1"),
    # More specific routes first: the first matching route wins.
    AdapterRoute(
        pattern="tele/freezer-3/#", adapter="tasmota", site="wh2", timezone="Europe/Berlin"
    ),
    AdapterRoute(pattern="tele/shelf-a1/+", adapter="tasmota", site="wh1", kind="weight"),
    AdapterRoute(pattern="tele/+/+", adapter="tasmota", site="wh1"),
    AdapterRoute(pattern="+/events/rpc", adapter="shelly", site="wh1"),
    AdapterRoute(pattern="+/online", adapter="shelly", site="wh1"),
]


def _fixture(name: str) -> tuple[str, bytes, dict[str, Any]]:
    doc = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    if "payload_text" in doc:
        payload = doc["payload_text"].encode()
    else:
        payload = json.dumps(doc["payload"], separators=(",", ":")).encode()
    return doc["topic"], payload, doc


def _decode(topic: str, payload: bytes, routes: list[AdapterRoute] | None = None) -> list[Sample]:
    return decode(topic, payload, RECEIVED, ROUTES if routes is None else routes).samples


def _reason(topic: str, payload: bytes, routes: list[AdapterRoute] | None = None) -> str:
    with pytest.raises(PayloadError) as info:
        _decode(topic, payload, routes)
    return info.value.reason


def _tag(
    device: str, antenna: int, ts: int, epc: str, rssi: float | None, count: int = 1
) -> TagSample:
    return TagSample(
        site="wh1", device=device, antenna=antenna, ts_ms=ts, epc=epc, rssi=rssi, count=count
    )


SHELLY = "shellyplusht-b8d61a8b17cc"

# fixture file -> (device key, exact readings)
FIXTURE_CASES: dict[str, tuple[str, list[Sample]]] = {
    "impinj-r700-tagInventory.json": (
        "wh1/rfid/r700-1",
        [_tag("r700-1", 1, 1_747_497_793_944, NOT_SGTIN, -73.0)],
    ),
    "impinj-r700-tagInventory-epcHex.json": (
        "wh1/rfid/impinj-14-2b-0c",
        # lastSeenTime stamps the read, not the event timestamp
        [_tag("impinj-14-2b-0c", 2, 1_747_497_793_990, SGTIN, -56.5)],
    ),
    "impinj-r700-events-array.json": (
        "wh1/rfid/r700-1",
        [
            _tag("r700-1", 1, 1_747_497_794_500, SGTIN, None),
            DeviceStatus(
                site="wh1",
                kind="rfid",
                device="r700-1",
                ts_ms=1_747_497_795_000,
                online=True,
                reason="inventoryStatus status=running",
            ),
            DeviceStatus(
                site="wh1",
                kind="rfid",
                device="r700-1",
                ts_ms=1_747_497_796_000,
                online=True,
                reason="antennaDisconnected antennaPort=3",
            ),
        ],
    ),
    "impinj-r700-events-ndjson.json": (
        "wh1/rfid/impinj-14-2b-0d",
        [
            _tag("impinj-14-2b-0d", 1, 1_747_497_793_944, NOT_SGTIN, -73.0),
            _tag("impinj-14-2b-0d", 4, 1_747_497_794_044, SGTIN, -61.25),
        ],
    ),
    "zebra-iotc-simple-default.json": (
        "wh1/rfid/fx7500-2",
        [_tag("fx7500-2", 1, 1_788_785_436_194, "E2806894000040017790E471", None)],
    ),
    "zebra-iotc-simple-full.json": (
        "wh1/rfid/fx9600-1",
        [_tag("fx9600-1", 1, 1_566_656_122_000, "3005FB63AC1F3681EC880468", -39.0)],
    ),
    "zebra-iotc-array.json": (
        "wh1/rfid/fx7500-2",
        [
            _tag("fx7500-2", 3, 1_558_537_200_000, SGTIN, -61.5, count=4),
            _tag("fx7500-2", 1, 1_558_537_200_250, "E2806894000040017790E471", None),
        ],
    ),
    "zebra-iotc-heartbeat.json": (
        "wh1/rfid/fx7500-2",
        [
            DeviceStatus(
                site="wh1", kind="rfid", device="fx7500-2", ts_ms=1_788_785_460_000, online=True
            )
        ],
    ),
    "tasmota-ds18b20.json": (
        "wh1/temp/cold-room-1",
        [
            TempSample(
                site="wh1",
                device="cold-room-1",
                sensor="DS18B20",
                ts_ms=1_546_300_800_000,
                celsius=49.7,
            )
        ],
    ),
    "tasmota-am2301.json": (
        "wh1/temp/dock-th-2",
        [
            TempSample(
                site="wh1",
                device="dock-th-2",
                sensor="AM2301",
                ts_ms=1_546_300_800_000,
                celsius=24.6,
                humidity=58.2,
            )
        ],
    ),
    "tasmota-ds18b20-multi-fahrenheit.json": (
        "wh2/temp/freezer-3",
        [
            # 14:00 Europe/Berlin in July is 12:00Z; 39.2 °F = 4 °C, -4 °F = -20 °C
            TempSample(
                site="wh2",
                device="freezer-3",
                sensor="DS18B20-1",
                ts_ms=1_719_835_200_000,
                celsius=4.0,
            ),
            TempSample(
                site="wh2",
                device="freezer-3",
                sensor="DS18B20-2",
                ts_ms=1_719_835_200_000,
                celsius=-20.0,
            ),
        ],
    ),
    "tasmota-sht3x.json": (
        "wh1/temp/dock-th-1",
        [
            TempSample(
                site="wh1",
                device="dock-th-1",
                sensor="SHT3X",
                ts_ms=1_705_311_000_000,
                celsius=5.3,
                humidity=71.4,
            )
        ],
    ),
    "tasmota-hx711.json": (
        "wh1/weight/shelf-a1",
        [
            WeightSample(
                site="wh1", device="shelf-a1", cell="HX711", ts_ms=1_705_311_000_000, grams=1234.0
            )
        ],
    ),
    "tasmota-state.json": (
        "wh1/temp/cold-room-1",
        [
            DeviceStatus(
                site="wh1", kind="temp", device="cold-room-1", ts_ms=1_705_311_000_000, online=True
            )
        ],
    ),
    "shelly-plus-ht-fullstatus.json": (
        f"wh1/temp/{SHELLY}",
        [
            TempSample(
                site="wh1",
                device=SHELLY,
                sensor="temperature:0",
                ts_ms=1_680_962_879_620,
                celsius=19.8,
                humidity=42.2,
            )
        ],
    ),
    "shelly-plus-ht-notifystatus.json": (
        f"wh1/temp/{SHELLY}",
        [
            TempSample(
                site="wh1",
                device=SHELLY,
                sensor="temperature:0",
                ts_ms=1_680_963_179_010,
                celsius=20.1,
            )
        ],
    ),
    "shelly-notifyevent.json": (f"wh1/temp/{SHELLY}", []),
}


def test_every_fixture_file_is_covered() -> None:
    vendors = ("impinj-", "zebra-", "tasmota-", "shelly-", "epc-")
    names = {p.name for p in FIXTURES.iterdir() if p.name.startswith(vendors)}
    covered = set(FIXTURE_CASES) | {"tasmota-lwt.txt", "epc-sgtin96.json"}
    assert names == covered
    assert len(names) == 19


@pytest.mark.parametrize("name", sorted(FIXTURE_CASES))
def test_fixture_decodes_to_exact_readings(name: str) -> None:
    key, expected = FIXTURE_CASES[name]
    topic, payload, _ = _fixture(name)
    decoded = decode(topic, payload, RECEIVED, ROUTES)
    assert decoded.samples == expected
    assert decoded.device_key == key
    assert decoded.seq is None


@pytest.mark.parametrize("name", sorted(n for n in FIXTURE_CASES if "expect" in _fixture(n)[2]))
def test_fixture_matches_its_own_expect_block(name: str) -> None:
    topic, payload, doc = _fixture(name)
    expect = doc["expect"]
    (sample,) = _decode(topic, payload)
    if isinstance(sample, TagSample):
        assert sample.epc == expect["epc_hex"]
        # "antenna": null means not reported; the canonical default is antenna 1.
        assert sample.antenna == (expect["antenna"] or 1)
        assert sample.rssi == expect["rssi_dbm"]
        assert sample.count == expect.get("count", 1)
    else:
        assert isinstance(sample, TempSample)
        assert sample.celsius == expect["celsius"]
        assert sample.humidity == expect.get("humidity")


@pytest.mark.parametrize(
    ("name", "index"),
    [
        ("impinj-r700-tagInventory-epcHex.json", 0),
        ("impinj-r700-events-array.json", 0),  # base64url "MDQle_cZTkAAADA5"
        ("impinj-r700-events-ndjson.json", 1),
        ("zebra-iotc-array.json", 0),  # lower-case idHex
    ],
)
def test_sgtin_epcs_decode_to_gtin(name: str, index: int) -> None:
    vector = json.loads((FIXTURES / "epc-sgtin96.json").read_text(encoding="utf-8"))
    topic, payload, _ = _fixture(name)
    sample = _decode(topic, payload)[index]
    assert isinstance(sample, TagSample)
    assert sample.epc == vector["hex"]
    sgtin = decode_sgtin96(sample.epc)
    assert sgtin.gtin == vector["expect"]["gtin14"] == "80614141123458"
    assert sgtin.uri == vector["expect"]["pure_identity"]
    assert sgtin.serial == int(vector["expect"]["serial"])
    assert sgtin.filter == vector["expect"]["filter"]


def test_non_sgtin_epc_is_kept_as_hex() -> None:
    topic, payload, _ = _fixture("impinj-r700-tagInventory.json")
    (sample,) = _decode(topic, payload)
    assert isinstance(sample, TagSample)
    assert not is_sgtin96(sample.epc)


def test_tasmota_lwt_fixture() -> None:
    lines = (FIXTURES / "tasmota-lwt.txt").read_text(encoding="utf-8").splitlines()
    messages = [line.split(" ", 1) for line in lines if line and not line.startswith("#")]
    assert [payload for _, payload in messages] == ["Online", "Offline"]
    results = [_decode(topic, payload.encode()) for topic, payload in messages]
    assert results == [
        [DeviceStatus(site="wh1", kind="temp", device="cold-room-1", ts_ms=RECEIVED, online=True)],
        [
            DeviceStatus(
                site="wh1",
                kind="temp",
                device="cold-room-1",
                ts_ms=RECEIVED,
                online=False,
                reason="LWT Offline",
            )
        ],
    ]


# --- documented variations not worth a fixture file ------------------------------------------


def _tasmota(body: dict[str, Any], timezone: str = "UTC", **route: Any) -> list[Sample]:
    routes = [
        AdapterRoute(pattern="tele/#", adapter="tasmota", site="wh1", timezone=timezone, **route)
    ]
    return _decode("tele/probe-9/SENSOR", json.dumps(body).encode(), routes)


def test_tasmota_time_is_read_in_the_route_time_zone() -> None:
    body = {"Time": "2019-01-01T00:00:00", "DS18B20": {"Temperature": 3.5}, "TempUnit": "C"}
    assert [s.ts_ms for s in _tasmota(body, "Asia/Shanghai")] == [1_546_272_000_000]
    assert [s.ts_ms for s in _tasmota(body, "UTC")] == [1_546_300_800_000]


def test_tasmota_ambiguous_dst_hour_takes_the_first_instant() -> None:
    # 02:30 happens twice in Berlin on 2024-10-27; fold=0 is the CEST one, 00:30Z.
    body = {"Time": "2024-10-27T02:30:00", "DS18B20": {"Temperature": 3.5}}
    assert [s.ts_ms for s in _tasmota(body, "Europe/Berlin")] == [1_729_989_000_000]


def test_tasmota_time_with_offset_is_honoured() -> None:
    body = {"Time": "2019-01-01T08:00:00+08:00", "DS18B20": {"Temperature": 3.5}}
    assert [s.ts_ms for s in _tasmota(body, "Europe/Berlin")] == [1_546_300_800_000]


@pytest.mark.parametrize("time", ["1970-01-01T00:00:17", None])
def test_tasmota_unsynced_or_missing_clock_uses_receive_time(time: str | None) -> None:
    body: dict[str, Any] = {"DS18B20": {"Temperature": 3.5}}
    if time is not None:
        body["Time"] = time
    assert _tasmota(body) == [
        TempSample(site="wh1", device="probe-9", sensor="DS18B20", ts_ms=RECEIVED, celsius=3.5)
    ]


def test_tasmota_skips_the_chip_temperature_and_defaults_to_celsius() -> None:
    body = {
        "Time": "2024-01-15T09:30:00",
        "ESP32": {"Temperature": 48.3},
        "BME280": {"Temperature": 21.0, "Humidity": 40.5, "Pressure": 1013.2},
    }
    assert _tasmota(body) == [
        TempSample(
            site="wh1",
            device="probe-9",
            sensor="BME280",
            ts_ms=1_705_311_000_000,
            celsius=21.0,
            humidity=40.5,
        )
    ]


def test_tasmota_hx711_in_grams_when_configured() -> None:
    body = {"Time": "2024-01-15T09:30:00", "HX711": {"Weight": 1234.5, "WeightRaw": 1}}
    (sample,) = _tasmota(body, weight_unit="g")
    assert isinstance(sample, WeightSample)
    assert sample.grams == 1234.5
    (sample,) = _tasmota({"HX711": {"Weight": 0.1234}})
    assert isinstance(sample, WeightSample)
    assert sample.grams == 123.4  # kg * 1000 without float noise


def test_shelly_fahrenheit_only_online_topic_and_missing_src() -> None:
    body = {"method": "NotifyStatus", "params": {"ts": 1680963179.5, "temperature:1": {"tF": 41.0}}}
    assert _decode("shellyplus1-aa/events/rpc", json.dumps(body).encode()) == [
        TempSample(
            site="wh1",
            device="shellyplus1-aa",
            sensor="temperature:1",
            ts_ms=1_680_963_179_500,
            celsius=5.0,
        )
    ]
    assert _decode("shellyplus1-aa/online", b"false") == [
        DeviceStatus(
            site="wh1",
            kind="temp",
            device="shellyplus1-aa",
            ts_ms=RECEIVED,
            online=False,
            reason="offline (Last Will)",
        )
    ]


def test_impinj_epc_and_epc_hex_may_both_be_present() -> None:
    event = {
        "timestamp": "2025-05-17T16:03:13Z",
        "eventType": "tagInventory",
        "tagInventoryEvent": {"epc": "MDQle_cZTkAAADA5", "epcHex": SGTIN.lower()},
    }
    (sample,) = _decode("impinj/r700-1/events", json.dumps(event).encode())
    assert isinstance(sample, TagSample)
    assert sample.epc == SGTIN


def test_route_device_segment_overrides_payload_ids() -> None:
    routes = [
        AdapterRoute(pattern="site/+/+/events", adapter="impinj", site="wh1", device_segment=2)
    ]
    topic, payload, _ = _fixture("impinj-r700-tagInventory-epcHex.json")
    (sample,) = _decode("site/dock/reader-7/events", payload, routes)
    assert isinstance(sample, TagSample)
    assert sample.device == "reader-7"
    assert topic != "site/dock/reader-7/events"


# --- ignored messages: empty samples, never an error ------------------------------------------


@pytest.mark.parametrize(
    ("topic", "payload", "key"),
    [
        (f"{SHELLY}/events/rpc", _fixture("shelly-notifyevent.json")[1], f"wh1/temp/{SHELLY}"),
        # humidity-only change: nothing to attach it to
        (
            f"{SHELLY}/events/rpc",
            b'{"src":"%s","method":"NotifyStatus","params":{"ts":1680963179.0,'
            b'"humidity:0":{"id":0,"rh":43.0}}}' % SHELLY.encode(),
            f"wh1/temp/{SHELLY}",
        ),
        (
            "tele/cold-room-1/SENSOR",
            b'{"Time":"2024-01-15T09:30:00","ENERGY":{"Power":3}}',
            "wh1/temp/cold-room-1",
        ),
        (
            "tele/cold-room-1/INFO1",
            b'{"Module":"Generic","Version":"13.1.0"}',
            "wh1/temp/cold-room-1",
        ),
        (
            "impinj/r700-1/events",
            b'{"timestamp":"2025-05-17T16:03:17Z","eventType":"diagnostic"}',
            "wh1/rfid/r700-1",
        ),
        ("impinj/r700-1/events", b"[]", "wh1/rfid/r700-1"),
        (
            "zebra/fx7500-2/events",
            b'{"type":"alert","timestamp":"2026-09-07T12:51:00Z","data":{}}',
            "wh1/rfid/fx7500-2",
        ),
    ],
)
def test_ignored_messages_return_no_samples(topic: str, payload: bytes, key: str) -> None:
    decoded = decode(topic, payload, RECEIVED, ROUTES)
    assert decoded.samples == []
    assert decoded.device_key == key


# --- garbage ----------------------------------------------------------------------------------

IMPINJ = "impinj/r700-1/events"
ZEBRA = "zebra/fx7500-2/data"
TASMOTA = "tele/cold-room-1/SENSOR"
SHELLY_RPC = f"{SHELLY}/events/rpc"


ITS = "2025-05-17T16:03:13Z"
ZTS = "2019-08-24T14:15:22Z"
ZEBRA_EPC = "e2806894000040017790e471"


def _j(value: Any) -> bytes:
    return json.dumps(value).encode()


def _impinj(**fields: Any) -> bytes:
    return _j({"timestamp": ITS, "eventType": "heartbeat", **fields})


def _impinj_tag(**tag: Any) -> bytes:
    return _impinj(eventType="tagInventory", tagInventoryEvent={"epcHex": SGTIN, **tag})


def _zebra(**data: Any) -> bytes:
    return _j({"type": "SIMPLE", "timestamp": ZTS, "data": {"idHex": ZEBRA_EPC, **data}})


def _shelly(params: dict[str, Any]) -> bytes:
    return _j({"src": SHELLY, "method": "NotifyStatus", "params": params})


def _tasmota_probe(temperature: Any, unit: str = "C") -> bytes:
    return _j({"DS18B20": {"Temperature": temperature}, "TempUnit": unit})


TS = 1680962879.6
GARBAGE: list[tuple[str, str, bytes, str]] = [
    # (case id, topic, payload, reason)
    ("impinj-binary", IMPINJ, b"\x00\xff\xfe\x80\x81", "invalid_json"),
    ("zebra-binary", ZEBRA, bytes(range(256)), "invalid_json"),
    ("tasmota-binary", TASMOTA, b"\xc3\x28\xa0\xa1", "invalid_json"),
    ("shelly-binary", SHELLY_RPC, b"\x89PNG\r\n\x1a\n", "invalid_json"),
    ("impinj-truncated", IMPINJ, _fixture("impinj-r700-tagInventory.json")[1][:-9], "invalid_json"),
    ("zebra-truncated", ZEBRA, _fixture("zebra-iotc-simple-full.json")[1][:40], "invalid_json"),
    ("tasmota-truncated", TASMOTA, _fixture("tasmota-ds18b20.json")[1][:30], "invalid_json"),
    (
        "shelly-truncated",
        SHELLY_RPC,
        _fixture("shelly-plus-ht-fullstatus.json")[1][:-1],
        "invalid_json",
    ),
    ("impinj-ndjson-bad-line", IMPINJ, _impinj_tag() + b'\n{"timestamp":', "invalid_json"),
    ("deeply-nested", ZEBRA, b"[" * 100_000, "invalid_json"),
    ("tasmota-nan", TASMOTA, b'{"DS18B20":{"Temperature":NaN},"TempUnit":"C"}', "not_finite"),
    (
        "shelly-infinity",
        SHELLY_RPC,
        b'{"method":"NotifyStatus","params":{"ts":1.7e9,"temperature:0":{"tC":Infinity}}}',
        "not_finite",
    ),
    (
        "zebra-overflow-to-inf",
        ZEBRA,
        _zebra().replace(b"}}", b', "peakRssi": -1e999}}'),
        "not_finite",
    ),
    # wrong units
    ("tasmota-fahrenheit-labelled-celsius", TASMOTA, _tasmota_probe(302.0), "out_of_range"),
    ("tasmota-fahrenheit-beyond-range", TASMOTA, _tasmota_probe(400.0, "F"), "out_of_range"),
    (
        "tasmota-humidity-over-100",
        TASMOTA,
        _j({"AM2301": {"Temperature": 20.0, "Humidity": 120.0}}),
        "out_of_range",
    ),
    (
        "tasmota-hx711-grams-read-as-kg",
        "tele/shelf-a1/SENSOR",
        _j({"HX711": {"Weight": 25000.0}}),
        "out_of_range",
    ),
    (
        "tasmota-time-2150",
        TASMOTA,
        _j({"Time": "2150-01-01T00:00:00", "SHT3X": {"Temperature": 4.0}}),
        "out_of_range",
    ),
    (
        "shelly-fahrenheit-as-tc",
        SHELLY_RPC,
        _shelly({"ts": TS, "temperature:0": {"tC": 212.0}}),
        "out_of_range",
    ),
    (
        "shelly-ts-in-ms",
        SHELLY_RPC,
        _shelly({"ts": 1680962879620, "temperature:0": {"tC": 5.0}}),
        "out_of_range",
    ),
    ("impinj-ts-ms-not-ns", IMPINJ, _impinj(timestamp=1747497793944), "out_of_range"),
    ("impinj-rssi-positive", IMPINJ, _impinj_tag(peakRssiCdbm=7300), "out_of_range"),
    ("zebra-rssi-positive", ZEBRA, _zebra(peakRssi=39), "out_of_range"),
    ("impinj-antenna-0", IMPINJ, _impinj_tag(antennaPort=0), "out_of_range"),
    # wrong types and shapes
    ("tasmota-temperature-string", TASMOTA, _tasmota_probe("24.6"), "schema"),
    ("tasmota-temperature-null", TASMOTA, _tasmota_probe(None), "schema"),
    ("tasmota-unit-kelvin", TASMOTA, _tasmota_probe(277.1, "K"), "schema"),
    ("tasmota-not-object", TASMOTA, b"[1,2,3]", "schema"),
    (
        "tasmota-bad-time",
        TASMOTA,
        _j({"Time": "yesterday", "SHT3X": {"Temperature": 4.0}}),
        "schema",
    ),
    ("tasmota-lwt-unknown", "tele/cold-room-1/LWT", b"Maybe", "schema"),
    ("tasmota-lwt-binary", "tele/cold-room-1/LWT", b"\xff\xfe", "schema"),
    ("impinj-antenna-bool", IMPINJ, _impinj_tag(antennaPort=True), "schema"),
    ("impinj-rssi-string", IMPINJ, _impinj_tag(peakRssiCdbm="-7300"), "schema"),
    (
        "impinj-epc-not-base64",
        IMPINJ,
        _impinj(eventType="tagInventory", tagInventoryEvent={"epc": "not base64!"}),
        "schema",
    ),
    ("impinj-epc-hex-bad", IMPINJ, _impinj_tag(epcHex="30ZZ"), "schema"),
    ("impinj-epcs-disagree", IMPINJ, _impinj_tag(epc="4oARkaUDAGXybMv_"), "schema"),
    ("impinj-event-not-object", IMPINJ, b"[1,2]", "schema"),
    ("impinj-hostname-bad", IMPINJ, _impinj(hostname="a b/c"), "schema"),
    ("impinj-timestamp-no-offset", IMPINJ, _impinj(timestamp="2025-05-17T16:03:13"), "schema"),
    (
        "impinj-tags-under-other-type",
        IMPINJ,
        _impinj(eventType="x", tagInventoryEvent={"epcHex": SGTIN}),
        "schema",
    ),
    ("zebra-antenna-string", ZEBRA, _zebra(antenna="1"), "schema"),
    ("zebra-idhex-not-hex", ZEBRA, _zebra(idHex="hello-world"), "schema"),
    ("zebra-format-tid", ZEBRA, _zebra(idHex="e20060030178529d", format="tid"), "schema"),
    ("zebra-timestamp-no-offset", ZEBRA, _zebra().replace(b"Z", b""), "schema"),
    ("shelly-ts-string", SHELLY_RPC, _shelly({"ts": "1680962879.62"}), "schema"),
    (
        "shelly-component-not-object",
        SHELLY_RPC,
        _shelly({"ts": TS, "temperature:0": 19.8}),
        "schema",
    ),
    ("shelly-online-garbage", f"{SHELLY}/online", b"1", "schema"),
    # missing fields
    ("impinj-no-tag-event", IMPINJ, _impinj(eventType="tagInventory"), "missing_field"),
    (
        "impinj-no-epc",
        IMPINJ,
        _impinj(eventType="tagInventory", tagInventoryEvent={"antennaPort": 1}),
        "missing_field",
    ),
    ("impinj-no-timestamp", IMPINJ, b'{"eventType":"heartbeat"}', "missing_field"),
    ("zebra-no-timestamp", ZEBRA, b'{"type":"heartbeat","data":{}}', "missing_field"),
    (
        "zebra-no-idhex",
        ZEBRA,
        _j({"type": "SIMPLE", "timestamp": ZTS, "data": {}}),
        "missing_field",
    ),
    ("zebra-no-data", ZEBRA, _j({"type": "SIMPLE", "timestamp": ZTS}), "missing_field"),
    ("shelly-no-ts", SHELLY_RPC, _shelly({"temperature:0": {"tC": 19.8}}), "missing_field"),
    ("shelly-no-params", SHELLY_RPC, b'{"src":"x","method":"NotifyStatus"}', "missing_field"),
    ("shelly-no-method", SHELLY_RPC, b'{"src":"x"}', "missing_field"),
    # numbers that used to raise something other than PayloadError
    (
        "tasmota-int-over-the-digit-limit",
        TASMOTA,
        b'{"DS18B20":{"Temperature":' + b"1" * 4301 + b"}}",
        "invalid_json",
    ),
    (
        "shelly-ts-1e308",
        SHELLY_RPC,
        _shelly({"ts": 1e308, "temperature:0": {"tC": 5.0}}),
        "out_of_range",
    ),
    ("shelly-ts-negative-1e308", SHELLY_RPC, _shelly({"ts": -1e308}), "out_of_range"),
    (
        "shelly-ts-over-the-digit-limit",
        SHELLY_RPC,
        _shelly({"ts": 0}).replace(b'"ts": 0', b'"ts": ' + b"9" * 5000),
        "invalid_json",
    ),
    (
        "shelly-tf-1e308",
        SHELLY_RPC,
        _shelly({"ts": TS, "temperature:0": {"tF": 1e308}}),
        "out_of_range",
    ),
    (
        "impinj-ts-over-the-digit-limit",
        IMPINJ,
        _impinj(timestamp=0).replace(b"0", b"1" * 4400, 1),
        "invalid_json",
    ),
    ("impinj-rssi-huge-int", IMPINJ, _impinj_tag(peakRssiCdbm=-(10**400)), "out_of_range"),
    ("impinj-ts-huge-int", IMPINJ, _impinj(timestamp=10**400), "out_of_range"),
    (
        "zebra-rssi-over-the-digit-limit",
        ZEBRA,
        _zebra(peakRssi=0).replace(b"0}", b"7" * 5000 + b"}"),
        "invalid_json",
    ),
    ("zebra-rssi-huge-int", ZEBRA, _zebra(peakRssi=-(10**400)), "schema"),
    (
        "tasmota-weight-1e308",
        "tele/shelf-a1/SENSOR",
        _j({"HX711": {"Weight": 1e308}}),
        "out_of_range",
    ),
    # a trailing newline is not part of a valid name (a regex `$` lets it through)
    ("tasmota-device-newline", "tele/cold-room-1\n/SENSOR", _tasmota_probe(4.0), "bad_topic"),
    ("tasmota-sensor-key-newline", TASMOTA, _j({"DS18B20\n": {"Temperature": 4.0}}), "schema"),
    ("tasmota-hx711-key-newline", TASMOTA, _j({"HX711-1\n": {"Weight": 1.0}}), "schema"),
    (
        "shelly-src-newline",
        SHELLY_RPC,
        _j({"src": "sh-1\n", "method": "NotifyStatus", "params": {"ts": TS}}),
        "schema",
    ),
    (
        "shelly-component-newline",
        SHELLY_RPC,
        _shelly({"ts": TS, "temperature:0\n": {"tC": 4.0}}),
        "schema",
    ),
    (
        "shelly-device-segment-newline",
        "sh-1\n/events/rpc",
        b'{"method":"NotifyStatus","params":{"ts":1.7e9}}',
        "bad_topic",
    ),
    ("impinj-hostname-newline", IMPINJ, _impinj(hostname="r700-1\n"), "schema"),
    ("impinj-epc-hex-newline", IMPINJ, _impinj_tag(epcHex=SGTIN + "\n"), "schema"),
    (
        "impinj-epc-b64-newline",
        IMPINJ,
        _impinj(eventType="tagInventory", tagInventoryEvent={"epc": "MDQle_cZTkAAADA5\n"}),
        "schema",
    ),
    ("zebra-idhex-newline", ZEBRA, _zebra(idHex=ZEBRA_EPC + "\n"), "schema"),
    ("zebra-device-newline", "zebra/fx7500-2\n/data", _zebra(), "bad_topic"),
    ("canonical-device-newline", "stocksense/v1/wh1/temp/p1\n/data", b"{}", "bad_topic"),
    ("canonical-site-newline", "stocksense/v1/wh1\n/temp/p1/data", b"{}", "bad_topic"),
    ("canonical-seven-levels", "stocksense/v1/wh1/temp/p1/data/extra", b"{}", "bad_topic"),
    # routing
    ("unrouted-topic", "other/vendor/data", b"{}", "no_adapter"),
    ("canonical-bad-topic", "stocksense/v1/wh1/humidity/p1/data", b"{}", "bad_topic"),
]


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [pytest.param(topic, payload, reason, id=case) for case, topic, payload, reason in GARBAGE],
)
def test_garbage_is_refused_with_a_reason(topic: str, payload: bytes, reason: str) -> None:
    assert _reason(topic, payload) == reason


def test_one_bad_event_rejects_the_whole_batch() -> None:
    good = json.loads(_impinj_tag())
    bad = json.loads(_impinj(eventType="tagInventory", tagInventoryEvent={}))
    with pytest.raises(PayloadError) as info:
        _decode(IMPINJ, _j([good, bad]))
    assert info.value.reason == "missing_field"
    assert info.value.detail.startswith("event 1: ")


@pytest.mark.parametrize(
    "topic",
    [IMPINJ, ZEBRA, TASMOTA, SHELLY_RPC, "stocksense/v1/wh1/temp/p1/data", "no/route/at/all"],
)
def test_oversize_is_refused_before_anything_else(topic: str) -> None:
    payload = b" " * (MAX_PAYLOAD_BYTES + 1)
    assert _reason(topic, payload) == "oversize"


@pytest.mark.parametrize("name", ["impinj", "zebra", "tasmota", "shelly"])
def test_adapters_called_directly_check_size(name: str) -> None:
    ctx = AdapterContext(site="wh1")
    with pytest.raises(PayloadError) as info:
        ADAPTERS[name]("tele/x/SENSOR", b"{" * (MAX_PAYLOAD_BYTES + 1), RECEIVED, ctx)
    assert info.value.reason == "oversize"


def test_payload_at_the_limit_is_parsed() -> None:
    body = _impinj_tag()
    payload = body + b" " * (MAX_PAYLOAD_BYTES - len(body))
    assert len(payload) == MAX_PAYLOAD_BYTES
    (sample,) = _decode(IMPINJ, payload)
    assert isinstance(sample, TagSample)
    assert sample.epc == SGTIN


# --- routing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "topic", "matches"),
    [
        ("sport/tennis/player1/#", "sport/tennis/player1", True),  # '#' includes the parent
        ("sport/tennis/player1/#", "sport/tennis/player1/ranking", True),
        ("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", True),
        ("sport/tennis/player1/#", "sport/tennis", False),
        ("sport/#", "sport", True),
        ("#", "sport/tennis/player1", True),
        ("#", "/", True),
        ("sport/tennis/+", "sport/tennis/player1", True),
        ("sport/tennis/+", "sport/tennis/player1/ranking", False),
        ("sport/+", "sport", False),
        ("sport/+", "sport/", True),  # '+' matches an empty level
        ("+/+", "/finance", True),
        ("/+", "/finance", True),
        ("+", "/finance", False),
        ("+/+/+", "a//c", True),
        ("+/tennis/#", "sport/tennis/player1/ranking", True),
        ("sport/tennis", "sport/tennis/", False),  # trailing slash is another level
        ("sport/tennis", "Sport/Tennis", False),  # case-sensitive
        ("#", "$SYS/broker/load", False),  # wildcards never match '$' topics at the first level
        ("+/monitor/Clients", "$SYS/monitor/Clients", False),
        ("+/#", "$SYS/broker", False),
        ("#", "$", False),
        ("$SYS/#", "$SYS/broker/load", True),
        ("$SYS/#", "$SYS", True),  # '#' includes the parent for '$' topics too
        ("$SYS/monitor/+", "$SYS/monitor/Clients", True),
        ("$SYS/+", "$SYS/", True),
        ("a/+", "a/$b", True),  # '$' only matters at the first level
        ("a/#", "a", True),
        ("a/#", "ab", False),
        ("/#", "/", True),
        ("+/+", "/", True),  # two empty levels
        ("+", "", False),
        ("+", "x", True),
        ("#", "a/+/b", False),  # not a valid topic name
        ("a/+/b", "a/+/b", False),  # wildcards in a topic name match nothing, not even themselves
        ("a/#", "a/#", False),
        ("#", "", False),
    ],
)
def test_topic_matches_mqtt_semantics(pattern: str, topic: str, matches: bool) -> None:
    assert topics.matches(pattern, topic) is matches


@pytest.mark.parametrize(
    "pattern",
    ["#", "+", "/", "a//b", "+/+/#", "$SYS/#", "$share/g/tele/#", "tele/+/SENSOR", "x" * 65_535],
)
def test_valid_filters_are_returned_as_they_are(pattern: str) -> None:
    assert topics.validate_filter(pattern) == pattern


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        ("", "1..65535 chars"),
        ("x" * 65_536, "1..65535 chars"),
        ("a/b\x00", "no NUL"),
        ("sport/tennis#", "'#' must be the whole last level"),
        ("sport/#/ranking", "'#' must be the whole last level"),
        ("#/x", "'#' must be the whole last level"),
        ("##", "'#' must be the whole last level"),
        ("sport+", "'+' must be a whole level"),
        ("sport/+tennis", "'+' must be a whole level"),
        ("++", "'+' must be a whole level"),
    ],
)
def test_filter_validation_names_the_problem(pattern: str, why: str) -> None:
    with pytest.raises(TopicError, match=re.escape(why)) as caught:
        topics.validate_filter(pattern)
    # Callers catching either base keep working.
    assert isinstance(caught.value, StockSenseError)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    "pattern",
    [
        "",
        "sport/tennis#",
        "sport/#/ranking",
        "sport+",
        "sport/+tennis",
        "#/x",
        "a/b\x00",
        "$share/g/tele/#",
    ],
)
def test_invalid_filters_are_refused(pattern: str) -> None:
    with pytest.raises(ValidationError, match=r"topic filter|share"):
        AdapterRoute(pattern=pattern, adapter="tasmota", site="wh1")


def test_route_validation() -> None:
    with pytest.raises(ValidationError, match="needs a site"):
        AdapterRoute(pattern="tele/#", adapter="tasmota")
    with pytest.raises(ValidationError, match="unknown time zone"):
        AdapterRoute(pattern="tele/#", adapter="tasmota", site="wh1", timezone="Mars/Olympus")
    with pytest.raises(ValidationError, match="site"):
        AdapterRoute(pattern="tele/#", adapter="tasmota", site="wh 1")
    with pytest.raises(ValidationError, match="adapter"):
        AdapterRoute.model_validate({"pattern": "x/#", "adapter": "llrp", "site": "wh1"})
    with pytest.raises(ValidationError, match="Extra inputs"):
        AdapterRoute.model_validate({"pattern": "x/#", "adapter": "zebra", "site": "wh1", "x": 1})
    assert AdapterRoute(pattern="stocksense/v1/#", adapter="canonical").site is None


def test_match_route_first_match_wins() -> None:
    route = match_route(ROUTES, "tele/freezer-3/SENSOR")
    assert route is not None
    assert (route.site, route.timezone) == ("wh2", "Europe/Berlin")
    route = match_route(ROUTES, "tele/dock-th-1/SENSOR")
    assert route is not None
    assert (route.site, route.timezone) == ("wh1", "UTC")
    assert match_route(ROUTES, "tele/a/b/c") is None
    assert match_route([], "tele/a/SENSOR") is None


def test_registry_names() -> None:
    assert set(ADAPTERS) == {"canonical", "impinj", "zebra", "tasmota", "shelly"}
    # The settings refuse a route to any other name, and accept every one of these.
    assert set(get_args(AdapterName)) == set(ADAPTERS)


CANONICAL_TOPIC = "stocksense/v1/wh1/temp/probe-1/data"
CANONICAL_PAYLOAD = b'{"ts":1767225600000,"seq":7,"readings":[{"sensor":"t1","celsius":4.5}]}'
CANONICAL_SAMPLE = TempSample(
    site="wh1", device="probe-1", sensor="t1", ts_ms=1_767_225_600_000, celsius=4.5
)


def test_canonical_topics_use_the_canonical_decoder_without_routes() -> None:
    decoded = decode(CANONICAL_TOPIC, CANONICAL_PAYLOAD, RECEIVED, [])
    assert decoded.samples == [CANONICAL_SAMPLE]
    assert decoded.seq == 7
    assert decoded.device_key == "wh1/temp/probe-1"


def test_canonical_topics_are_never_routed_to_vendor_adapters() -> None:
    routes = [AdapterRoute(pattern="#", adapter="tasmota", site="wh9")]
    assert _decode(CANONICAL_TOPIC, CANONICAL_PAYLOAD, routes) == [CANONICAL_SAMPLE]


def test_canonical_route_pins_the_site() -> None:
    pinned = [AdapterRoute(pattern="stocksense/v1/#", adapter="canonical", site="wh1")]
    assert _decode(CANONICAL_TOPIC, CANONICAL_PAYLOAD, pinned) == [CANONICAL_SAMPLE]
    other = [AdapterRoute(pattern="stocksense/v1/#", adapter="canonical", site="wh2")]
    assert _reason(CANONICAL_TOPIC, CANONICAL_PAYLOAD, other) == "bad_topic"
    stray = [AdapterRoute(pattern="legacy/#", adapter="canonical")]
    assert _reason("legacy/wh1/temp", CANONICAL_PAYLOAD, stray) == "bad_topic"


def test_canonical_adapter_checks_the_context_site() -> None:
    canonical = ADAPTERS["canonical"]
    decoded = canonical(CANONICAL_TOPIC, CANONICAL_PAYLOAD, RECEIVED, AdapterContext(site="wh1"))
    assert decoded.samples == [CANONICAL_SAMPLE]
    with pytest.raises(PayloadError) as info:
        canonical(CANONICAL_TOPIC, CANONICAL_PAYLOAD, RECEIVED, AdapterContext(site="wh2"))
    assert info.value.reason == "bad_topic"


def test_device_segment_errors_are_bad_topic() -> None:
    routes = [AdapterRoute(pattern="tele/#", adapter="tasmota", site="wh1", device_segment=5)]
    assert _reason("tele/a/SENSOR", b"{}", routes) == "bad_topic"
    routes = [AdapterRoute(pattern="+/#", adapter="tasmota", site="wh1", device_segment=1)]
    assert _reason("tele/a b/SENSOR", b"{}", routes) == "bad_topic"


def test_context_validation() -> None:
    with pytest.raises(ConfigError, match="time zone"):
        AdapterContext(site="wh1", timezone="Nowhere/Else")
    with pytest.raises(ConfigError, match="site"):
        AdapterContext(site="")
    assert AdapterContext(site="wh1").tz.key == "UTC"


def test_impinj_status_text_is_escaped_so_it_can_be_written() -> None:
    # JSON allows a lone surrogate; it cannot be encoded as UTF-8 for the InfluxDB write.
    payload = b'{"timestamp":"%s","eventType":"heartbeat","heartbeatEvent":{"status":"\\ud800\\n"}}'
    (sample,) = _decode(IMPINJ, payload % ITS.encode())
    assert isinstance(sample, DeviceStatus)
    assert sample.reason == "heartbeat status=\\ud800\\n"
    assert sample.reason.encode("utf-8")


@pytest.mark.parametrize(
    ("topic", "payload"),
    [
        (
            "stocksense/v1/wh1/temp/p1/data",
            b'{"ts":1767225600000,"seq":1,"readings":[{"sensor":"t1\\n","celsius":4.0}]}',
        ),
        (
            "stocksense/v1/wh1/weight/s1/data",
            b'{"ts":1767225600000,"seq":1,"readings":[{"cell":"c1\\n","grams":4.0}]}',
        ),
        (
            "stocksense/v1/wh1/rfid/r1/data",
            b'{"ts":1767225600000,"seq":1,"reads":[{"epc":"%s\\n"}]}' % SGTIN.encode(),
        ),
    ],
)
def test_canonical_names_with_a_trailing_newline_are_refused(topic: str, payload: bytes) -> None:
    assert _reason(topic, payload, []) == "schema"


def test_site_names_with_a_trailing_newline_are_refused() -> None:
    with pytest.raises(ValidationError, match="site"):
        AdapterRoute(pattern="tele/#", adapter="tasmota", site="wh1\n")
    with pytest.raises(ConfigError, match="site"):
        AdapterContext(site="wh1\n")
    with pytest.raises(TopicError):
        topics.build("wh1\n", "temp", "p1")
    with pytest.raises(TopicError):
        topics.build("wh1", "temp", "p1\n")


def test_rfc3339_milliseconds_are_exact() -> None:
    # Through a float this instant came out one millisecond early.
    payload = b'{"ts":"2038-07-19T07:35:20.233Z","seq":1,"readings":[{"sensor":"t","celsius":4}]}'
    (sample,) = _decode("stocksense/v1/wh1/temp/p1/data", payload, [])
    assert sample.ts_ms == 2_163_137_720_233

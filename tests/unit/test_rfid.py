"""RFID: EPC to SKU, dedup window, strongest-RSSI zone, enter/exit, counts per SKU per zone."""

from __future__ import annotations

import pytest

from core.epc import encode_sgtin96
from core.readings import TagSample
from rules.inventory import InvalidParameterError
from rules.inventory.rfid import RfidEvent, RfidTracker, TagRead, ZoneEnter, ZoneExit

T0 = 1_795_309_200_000
EPC = "3034257BF7194E4000003039"  # urn:epc:id:sgtin:0614141.812345.12345
GTIN = "80614141123458"
OTHER_GTIN = "00614141000012"


def _tracker(
    *,
    dedup_window_ms: int = 2_000,
    exit_after_ms: int = 30_000,
    zone_window_ms: int = 5_000,
    hysteresis_db: float = 3.0,
) -> RfidTracker:
    return RfidTracker(
        antenna_zones={
            ("r1", 1): "dock",
            ("r1", 2): "dock",
            ("r2", 1): "aisle-3",
            ("r3", 1): "outbound",
        },
        gtin_to_sku={GTIN: "SKU-ACME", OTHER_GTIN: "SKU-OTHER"},
        dedup_window_ms=dedup_window_ms,
        exit_after_ms=exit_after_ms,
        zone_window_ms=zone_window_ms,
        hysteresis_db=hysteresis_db,
    )


def _read(
    epc: str, ts_ms: int, *, device: str = "r1", antenna: int = 1, rssi: float | None = -60.0
) -> TagSample:
    return TagSample(site="wh1", device=device, antenna=antenna, ts_ms=ts_ms, epc=epc, rssi=rssi)


def _kinds(events: list[RfidEvent]) -> list[tuple[str, str]]:
    return [(type(e).__name__, e.zone) for e in events]


def test_first_read_decodes_epc_to_gtin_and_sku() -> None:
    tracker = _tracker()
    events = tracker.observe(_read(EPC.lower(), T0))
    read, enter = events
    assert isinstance(read, TagRead)
    assert (read.epc, read.gtin, read.sku, read.zone) == (EPC, GTIN, "SKU-ACME", "dock")
    assert isinstance(enter, ZoneEnter)
    assert tracker.zone_of(EPC) == "dock"
    assert tracker.count("dock", "SKU-ACME") == 1


def test_repeated_reads_within_the_window_count_once() -> None:
    tracker = _tracker(dedup_window_ms=2_000)
    events: list[RfidEvent] = []
    for i in range(20):  # 20 reads in 1.9 s, over both antennas of the dock
        events += tracker.observe(_read(EPC, T0 + i * 100, antenna=1 + i % 2))
    assert _kinds(events) == [("TagRead", "dock"), ("ZoneEnter", "dock")]
    assert tracker.counts() == {("dock", "SKU-ACME"): 1}
    # after the window the tag is reported again, but it does not enter again
    assert _kinds(tracker.observe(_read(EPC, T0 + 2_000))) == [("TagRead", "dock")]
    assert tracker.count("dock", "SKU-ACME") == 1


def test_moving_between_zones_gives_one_exit_and_one_enter() -> None:
    tracker = _tracker()
    tracker.observe(_read(EPC, T0, rssi=-60))
    events: list[RfidEvent] = []
    # the tag moves to aisle 3: read strongly there, while the dock still hears it faintly
    for i in range(1, 30):
        events += tracker.observe(_read(EPC, T0 + i * 100, device="r2", rssi=-45))
        events += tracker.observe(_read(EPC, T0 + i * 100 + 50, rssi=-75))
    exits = [e for e in events if isinstance(e, ZoneExit)]
    enters = [e for e in events if isinstance(e, ZoneEnter)]
    assert [(e.zone, e.reason) for e in exits] == [("dock", "moved")]
    assert [e.zone for e in enters] == ["aisle-3"]
    assert exits[0].ts_ms == enters[0].ts_ms == T0 + 100
    assert tracker.counts() == {("aisle-3", "SKU-ACME"): 1}


def test_strongest_rssi_wins_with_hysteresis() -> None:
    tracker = _tracker(hysteresis_db=3.0)
    tracker.observe(_read(EPC, T0, device="r2", rssi=-50))
    # a weaker and a marginally stronger read elsewhere do not move the tag
    assert _kinds(tracker.observe(_read(EPC, T0 + 10, rssi=-70))) == []
    assert _kinds(tracker.observe(_read(EPC, T0 + 20, rssi=-48))) == []
    assert tracker.zone_of(EPC) == "aisle-3"
    # clearly stronger: moves
    moved = tracker.observe(_read(EPC, T0 + 30, rssi=-40))
    assert _kinds(moved) == [("ZoneExit", "aisle-3"), ("ZoneEnter", "dock")]


def test_zone_whose_reads_went_stale_loses_the_tag() -> None:
    tracker = _tracker(zone_window_ms=5_000, exit_after_ms=60_000)
    tracker.observe(_read(EPC, T0, device="r2", rssi=-40))
    # only the outbound portal hears it from now on, weaker than the last aisle read
    events: list[RfidEvent] = []
    for i in range(1, 8):
        events += tracker.observe(_read(EPC, T0 + i * 1_000, device="r3", rssi=-65))
    # reads at +1..+7 s are reported at +2, +4, +6 s (2 s dedup from the +0 s report);
    # the aisle read at +0 s is stale from +6 s on (older than the 5 s zone window)
    assert _kinds(events) == [
        ("TagRead", "outbound"),
        ("TagRead", "outbound"),
        ("TagRead", "outbound"),
        ("ZoneExit", "aisle-3"),
        ("ZoneEnter", "outbound"),
    ]
    assert events[-1].ts_ms == T0 + 6_000


def test_exit_after_unseen_timeout_is_raised_once() -> None:
    tracker = _tracker(exit_after_ms=30_000)
    tracker.observe(_read(EPC, T0))
    assert tracker.tick(T0 + 30_000) == []  # exactly T unseen: not yet
    events = tracker.tick(T0 + 30_001)
    assert _kinds(events) == [("ZoneExit", "dock")]
    assert isinstance(events[0], ZoneExit)
    assert events[0].reason == "timeout"
    assert tracker.tick(T0 + 60_000) == []
    assert tracker.counts() == {}
    assert tracker.zone_of(EPC) is None
    # it comes back later: a fresh read and a fresh enter
    assert _kinds(tracker.observe(_read(EPC, T0 + 90_000))) == [
        ("TagRead", "dock"),
        ("ZoneEnter", "dock"),
    ]


def test_tick_only_expires_tags_not_seen_recently() -> None:
    tracker = _tracker(exit_after_ms=10_000)
    epcs = [encode_sgtin96(GTIN, serial) for serial in range(1, 6)]
    for i, epc in enumerate(epcs):
        tracker.observe(_read(epc, T0 + i * 5_000))
    # refresh the first tag so it is the most recent
    tracker.observe(_read(epcs[0], T0 + 25_000))
    events = tracker.tick(T0 + 31_000)
    assert sorted(e.epc for e in events) == sorted(epcs[1:5])
    assert tracker.count("dock", "SKU-ACME") == 1


def test_counts_per_sku_per_zone() -> None:
    tracker = _tracker()
    acme = [encode_sgtin96(GTIN, serial) for serial in range(100, 110)]
    other = [encode_sgtin96(OTHER_GTIN, serial) for serial in range(3)]
    for i, epc in enumerate(acme):
        tracker.observe(_read(epc, T0 + i, device="r1" if i < 6 else "r2"))
        tracker.observe(_read(epc, T0 + i + 100, device="r1" if i < 6 else "r2"))
    for epc in other:
        tracker.observe(_read(epc, T0, device="r2"))
    assert tracker.counts() == {
        ("dock", "SKU-ACME"): 6,
        ("aisle-3", "SKU-ACME"): 4,
        ("aisle-3", "SKU-OTHER"): 3,
    }


def test_unknown_antennas_and_gtins() -> None:
    tracker = _tracker()
    assert tracker.observe(_read(EPC, T0, device="r9")) == []
    assert tracker.unknown_antenna_reads == 1
    unknown = encode_sgtin96("00614141999996", 1)
    read, enter = tracker.observe(_read(unknown, T0))
    assert isinstance(read, TagRead)
    assert read.sku is None
    assert read.gtin == "00614141999996"
    assert isinstance(enter, ZoneEnter)
    # a non-SGTIN EPC is tracked but belongs to no SKU
    events = tracker.observe(_read("E2801160600002054CC2096F", T0))
    assert isinstance(events[0], TagRead)
    assert events[0].gtin is None
    assert tracker.counts() == {}
    assert tracker.unknown_sku_tags == 2


def test_reads_without_rssi_still_place_the_tag() -> None:
    tracker = _tracker()
    events = tracker.observe(_read(EPC, T0, rssi=None))
    assert _kinds(events) == [("TagRead", "dock"), ("ZoneEnter", "dock")]


def test_invalid_windows_are_rejected() -> None:
    with pytest.raises(InvalidParameterError):
        _tracker(exit_after_ms=0)

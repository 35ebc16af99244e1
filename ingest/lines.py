"""Readings -> InfluxDB line protocol.

Point identity is (measurement, tags, timestamp). The timestamp is the reading's epoch ms in
nanoseconds plus its index within the message, so readings that share a millisecond never
overwrite each other and a redelivered message lands on exactly the same points (idempotent).
EPCs and other high-cardinality values are fields, never tags.
"""

from __future__ import annotations

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
    received_ns: int = 0,
) -> str:
    """One line for one reading; ``index`` is its position within the message.

    ``device_ts_ms`` is set when the device clock was not trusted and the reading was re-stamped
    with the receive time (``received_ns``, full resolution so that re-stamped messages of one
    device never share a point): the device's own time is kept in a ``device_ts`` field.
    """
    ts_ns = (sample.ts_ms * 1_000_000 if device_ts_ms is None else received_ns) + index
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
    received_ns: int = 0,
) -> list[str]:
    """Lines for all readings of one message; ``restamped`` maps index -> device time."""
    if restamped:
        return [
            sample_line(s, i, seq, restamped.get(i), received_ns) for i, s in enumerate(samples)
        ]
    return [sample_line(s, i, seq) for i, s in enumerate(samples)]

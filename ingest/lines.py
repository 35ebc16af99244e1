"""Readings -> InfluxDB line protocol.

Point identity is (measurement, tags, timestamp). The timestamp is the reading's epoch ms in
nanoseconds plus its index within the message, so readings that share a millisecond never
overwrite each other and a redelivered message lands on exactly the same points (idempotent).
EPCs and other high-cardinality values are fields, never tags.
"""

from __future__ import annotations

from core.influx import escape_tag, field_str
from core.readings import DeviceStatus, Sample, TagSample, TempSample, WeightSample

MEASUREMENTS = {
    "temp": "temperature",
    "weight": "weight",
    "rfid": "rfid",
    "status": "device_status",
}


def _opt_float(name: str, value: float | None) -> str:
    return "" if value is None else f",{name}={value!r}"


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
    site = escape_tag(sample.site)
    device = escape_tag(sample.device)
    seq_field = "" if seq is None else f",seq={seq}i"
    if device_ts_ms is not None:
        seq_field += f",device_ts={device_ts_ms}i"
    if isinstance(sample, TempSample):
        return (
            f"temperature,device={device},sensor={escape_tag(sample.sensor)},site={site} "
            f"celsius={sample.celsius!r}{_opt_float('humidity', sample.humidity)}{seq_field}"
            f" {ts_ns}"
        )
    if isinstance(sample, WeightSample):
        stable = "" if sample.stable is None else f",stable={'t' if sample.stable else 'f'}"
        return (
            f"weight,cell={escape_tag(sample.cell)},device={device},site={site} "
            f"grams={sample.grams!r}{stable}{seq_field} {ts_ns}"
        )
    if isinstance(sample, TagSample):
        return (
            f"rfid,antenna={sample.antenna},device={device},site={site} "
            f'epc="{sample.epc}",count={sample.count}i{_opt_float("rssi", sample.rssi)}'
            f"{seq_field} {ts_ns}"
        )
    assert isinstance(sample, DeviceStatus)
    reason = "" if sample.reason is None else f",reason={field_str(sample.reason)}"
    return (
        f"device_status,device={device},kind={escape_tag(sample.kind)},site={site} "
        f"online={'t' if sample.online else 'f'}{_opt_float('interval_s', sample.interval_s)}"
        f"{reason} {ts_ns}"
    )


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

"""Alert text for people, in Chinese or English: what, where, value vs threshold, what to do.

Every part of a message is in the channel's language: the detail sentence is rendered from the
alert's structured fields (value, threshold, details) by a template per type, and only when
the details lack what a template needs (or the type has none) is the rule's own English
message shown instead. Times are the site's local time with its UTC offset.

An active alert is kept current by its rule, so a message shows the latest value and the peak
(when it differs), how long the condition has lasted up to the latest the alert knows of (its
last sighting, reminder or escalation — in live operation, the send time within the write
throttle), the owner and the deadlines; a resolved notice shows who resolved it, the cause
and their note.

Types without an entry in the tables still render: the type name is made readable and a
generic action points at the console, so a new rule never produces an empty message.

Everything that comes from a device, an API caller or the catalog (message, details, site,
zone, source) goes through :func:`rules.notify.markup.neutralise` for the message's style;
our own labels, names and actions do not.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.alerts import Alert, AlertEvent, Cause, Severity
from core.errors import ConfigError
from rules.notify.markup import Style, neutralise

if TYPE_CHECKING:
    from rules.seed import Seed

logger = logging.getLogger(__name__)

Language = Literal["zh", "en"]

SEVERITY_ORDER: dict[str, int] = {"critical": 0, "major": 1, "minor": 2, "warning": 3, "info": 4}

_SEVERITY = {
    "zh": {"critical": "严重", "major": "重要", "minor": "次要", "warning": "警告", "info": "提示"},
    "en": {
        "critical": "CRITICAL",
        "major": "MAJOR",
        "minor": "MINOR",
        "warning": "WARNING",
        "info": "INFO",
    },
}
_TYPES: dict[str, dict[str, str]] = {
    "cold_chain_excursion": {"zh": "冷链温度超限", "en": "Cold-chain excursion"},
    "cold_chain_mkt": {"zh": "冷链平均动力学温度超限", "en": "Cold-chain MKT over limit"},
    "sensor_offline": {"zh": "传感器离线", "en": "Sensor offline"},
    "unexplained_loss": {"zh": "库存异常减少", "en": "Unexplained stock loss"},
    "misplaced_item": {"zh": "货品放错位置", "en": "Misplaced item"},
    "sensor_drift": {"zh": "传感器漂移", "en": "Sensor drift"},
    "sensor_stuck": {"zh": "传感器读数卡滞", "en": "Sensor stuck"},
    "reorder": {"zh": "需要补货", "en": "Reorder needed"},
    "expiry_alert": {"zh": "临期提醒", "en": "Expiring soon"},
    "expired_on_shelf": {"zh": "过期商品在架", "en": "Expired stock on shelf"},
    "dead_stock": {"zh": "呆滞库存", "en": "Dead stock"},
    "supply_imbalance": {"zh": "库存分布失衡", "en": "Supply imbalance"},
    "channel_health": {"zh": "通知通道异常", "en": "Notification channel problem"},
    "cold_chain_cumulative": {
        "zh": "冷链累计超温时间超限",
        "en": "Cold-chain daily time out of range",
    },
    "store_rejecting": {"zh": "时序数据库拒收数据", "en": "InfluxDB refusing points"},
    "weight_ambiguous": {"zh": "重量变化无法识别", "en": "Ambiguous weight change"},
}
_ACTIONS: dict[str, dict[str, str]] = {
    "cold_chain_excursion": {
        "zh": "请检查冷库门和制冷机组，必要时转移货物，并记录超温时长。",
        "en": "Check the cold-room door and refrigeration unit, move stock if needed, "
        "and record the excursion time.",
    },
    "cold_chain_mkt": {
        "zh": "请评估受影响批次的质量，必要时隔离待检，并检查制冷设备。",
        "en": "Assess the affected lots, quarantine them for QA if needed, and check the "
        "refrigeration equipment.",
    },
    "sensor_offline": {
        "zh": "请检查设备供电、电池和网络连接；离线期间的数据无法监控。",
        "en": "Check the device's power, battery and network; nothing is monitored while it "
        "is offline.",
    },
    "unexplained_loss": {
        "zh": "请盘点该货位，核对出库记录和监控录像。",
        "en": "Count the location, and check outbound records and CCTV.",
    },
    "misplaced_item": {
        "zh": "请将货品移回指定货位，或在系统中更新其位置。",
        "en": "Move the item back to its assigned location, or update its location in the system.",
    },
    "sensor_drift": {
        "zh": "请用参考仪表比对读数，必要时校准或更换传感器。",
        "en": "Compare with a reference instrument; recalibrate or replace the sensor if needed.",
    },
    "sensor_stuck": {
        "zh": "读数长时间不变，请检查传感器是否故障或被遮挡。",
        "en": "The reading has not changed for a long time: check the sensor for a fault or "
        "obstruction.",
    },
    "reorder": {
        "zh": "库存低于补货点，请创建采购或调拨单。",
        "en": "Stock is below the reorder point: raise a purchase or transfer order.",
    },
    "expiry_alert": {
        "zh": "请优先出库该批次（先到期先出），或安排促销/调拨。",
        "en": "Ship this lot first (FEFO), or arrange a promotion or transfer.",
    },
    "expired_on_shelf": {
        "zh": "请立即下架并隔离过期商品，按规定处理。",
        "en": "Pull the expired stock from the shelf now, quarantine it and dispose of it per "
        "procedure.",
    },
    "dead_stock": {
        "zh": "该货品长期无出库，请评估促销、退货或调拨。",
        "en": "No movement for a long time: consider a promotion, return or transfer.",
    },
    "supply_imbalance": {
        "zh": "请在仓库/区域之间调拨库存以平衡供需。",
        "en": "Transfer stock between sites or zones to balance supply and demand.",
    },
    "cold_chain_cumulative": {
        "zh": "今日累计超温时间已超限，请评估受影响批次并检查制冷设备。",
        "en": "Today's time out of range is over the limit: assess the affected lots and check "
        "the refrigeration equipment.",
    },
    "channel_health": {
        "zh": "请检查该通知通道的配置（地址、密钥、签名、关键词）；告警可能未送达。",
        "en": "Check the channel's configuration (URL, key, signing secret, keywords); alerts "
        "may not be reaching people.",
    },
    "store_rejecting": {
        "zh": "请根据拒收原因检查数据库的保留策略、字段类型和磁盘空间；被拒收的数据不会保存。",
        "en": "Check InfluxDB's retention policy, field types and disk space against the "
        "reason; refused points are not stored.",
    },
    "weight_ambiguous": {
        "zh": "请盘点该货架并在系统中更正库存。",
        "en": "Count the shelf and correct the stock in the system.",
    },
}
_CAUSES: dict[Cause, dict[Language, str]] = {
    "equipment": {"zh": "设备", "en": "equipment"},
    "process": {"zh": "流程", "en": "process"},
    "supplier": {"zh": "供应商", "en": "supplier"},
    "data": {"zh": "数据", "en": "data"},
    "false_alarm": {"zh": "误报", "en": "false alarm"},
    "other": {"zh": "其他", "en": "other"},
}
_OVERDUE = {"zh": "（已超期）", "en": " (overdue)"}
# Types whose detail sentence states how long the condition has lasted.
_SENTENCE_DURATION = frozenset(
    {"cold_chain_excursion", "sensor_stuck", "sensor_offline", "cold_chain_cumulative"}
)
# Types whose detail sentence states the peak.
_SENTENCE_PEAK = frozenset({"cold_chain_excursion"})
_GENERIC_ACTION = {
    "zh": "请在控制台查看详情并确认处理。",
    "en": "Open the console for details and acknowledge the alert.",
}
# Units of the alert's value by type, used when the alert's details do not name one. ``s``
# values are shown as durations.
_UNITS: dict[str, str] = {
    "cold_chain_excursion": "°C",
    "cold_chain_mkt": "°C",
    "cold_chain_cumulative": "s",
    "sensor_drift": "°C",
    "sensor_stuck": "°C",
}
_COUNTED = {"zh": "件", "en": "units"}
_WORD_UNITS: dict[str, dict[str, str]] = {
    "dead_stock": {"zh": "天", "en": "days"},
    "unexplained_loss": _COUNTED,
    "expiry_alert": _COUNTED,
    "expired_on_shelf": _COUNTED,
    "weight_ambiguous": _COUNTED,
    "reorder": _COUNTED,
    "store_rejecting": {"zh": "个", "en": "points"},
}
_SUBJECT_KEYS = ("sku", "epc", "sensor", "cell", "device", "location")
# A device with a sensor is one probe, with a cell one shelf cell: ``device/part`` under the
# part's label, as the rest of the system names them.
_DEVICE_PARTS = ("sensor", "cell")
_LABELS = {
    "zh": {
        "raised": "告警",
        "cleared": "已恢复",
        "escalated": "升级",
        "reminder": "提醒",
        "peak": "峰值",
        "owner": "负责人",
        "ack_due": "确认期限",
        "resolve_due": "处理期限",
        "resolved_by": "处理人",
        "cause": "原因",
        "resolution": "处理说明",
        "site": "仓库",
        "zone": "区域",
        "value": "当前值",
        "threshold": "阈值",
        "since": "开始时间",
        "detail": "详情",
        "action": "处理建议",
        "console": "查看控制台",
        "duration": "持续时间",
        "sku": "SKU",
        "epc": "EPC",
        "sensor": "传感器",
        "device": "设备",
        "location": "货位",
        "cell": "货架",
        "source": "来源",
        "until": "恢复时间",
        "id": "编号",
    },
    "en": {
        "raised": "ALERT",
        "cleared": "RESOLVED",
        "escalated": "ESCALATED",
        "reminder": "REMINDER",
        "peak": "Peak",
        "owner": "Owner",
        "ack_due": "Acknowledge by",
        "resolve_due": "Resolve by",
        "resolved_by": "Resolved by",
        "cause": "Cause",
        "resolution": "Resolution",
        "site": "Site",
        "zone": "Zone",
        "value": "Value",
        "threshold": "Threshold",
        "since": "Since",
        "detail": "Detail",
        "action": "What to do",
        "console": "Open console",
        "duration": "Duration",
        "sku": "SKU",
        "epc": "EPC",
        "sensor": "Sensor",
        "device": "Device",
        "location": "Location",
        "cell": "Shelf",
        "source": "Source",
        "until": "Resolved at",
        "id": "Alert",
    },
}


def label(key: str, language: Language) -> str:
    """A field label (``site``, ``console``, ...) in ``language``."""
    return _LABELS[language].get(key, key)


def severity(level: Severity | str, language: Language) -> str:
    """The severity as people read it."""
    return _SEVERITY[language].get(level, level)


def type_name(type_: str, language: Language) -> str:
    """The alert type as people read it; unknown types are made readable, not hidden."""
    known = _TYPES.get(type_)
    if known:
        return known[language]
    return type_.replace("_", " ").replace("-", " ").strip().capitalize() or type_


def cause_name(cause: Cause, language: Language) -> str:
    """A resolution's cause category as people read it."""
    return _CAUSES[cause][language]


def action(type_: str, language: Language) -> str:
    """What to do about an alert of this type."""
    known = _ACTIONS.get(type_)
    return known[language] if known else _GENERIC_ACTION[language]


# -- time -------------------------------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class SiteTimezones:
    """Each site's timezone (IANA name from the seed).

    Called with a site id, it returns the zone that site's times are shown in. Other sites
    (``system`` alerts, sites missing from the seed) read the sites' common timezone when
    they all share one, else UTC.
    """

    def __init__(self, zones: Mapping[str, str] | None = None) -> None:
        self._zones: dict[str, tzinfo] = {}
        for site, name in (zones or {}).items():
            try:
                self._zones[site] = ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                raise ConfigError(f"site {site}: unknown timezone {name!r}") from None
        names = set((zones or {}).values())
        self._default = self._zones[next(iter(zones or {}))] if len(names) == 1 else UTC

    @classmethod
    def from_seed(cls, seed: Seed) -> SiteTimezones:
        """The timezones of the seed's sites."""
        return cls({site.id: site.timezone for site in seed.sites})

    def __call__(self, site: str) -> tzinfo:
        return self._zones.get(site, self._default)


def _local(ms: int, tz: tzinfo) -> datetime:
    # Integer milliseconds: a float timestamp can round 23:59:59.9995 up into the next day.
    return (_EPOCH + timedelta(milliseconds=ms)).astimezone(tz)


def utc_offset(moment: datetime) -> str:
    """``UTC+8``, ``UTC+5:30``, ``UTC-3``; ``UTC`` when the offset is zero."""
    offset = moment.utcoffset() or timedelta(0)
    minutes = round(offset.total_seconds() / 60)
    if minutes == 0:
        return "UTC"
    hours, rest = divmod(abs(minutes), 60)
    sign = "+" if minutes > 0 else "-"
    return f"UTC{sign}{hours}" + (f":{rest:02d}" if rest else "")


def _stamp(moment: datetime, fmt: str) -> str:
    offset = utc_offset(moment)
    text = moment.strftime(fmt)
    return f"{text} {offset}" if offset == "UTC" else f"{text} ({offset})"


def local_time(ms: int, tz: tzinfo = UTC) -> str:
    """``2026-12-01 09:05:07 (UTC+8)``, or ``2026-12-01 01:05:07 UTC`` at a UTC site."""
    return _stamp(_local(ms, tz), "%Y-%m-%d %H:%M:%S")


def clock_time(ms: int, tz: tzinfo = UTC) -> str:
    """``09:05:07 (UTC+8)`` (``01:05:07 UTC`` at a UTC site) for compact lists."""
    return _stamp(_local(ms, tz), "%H:%M:%S")


def duration(seconds: float, language: Language) -> str:
    """``1h 05m`` / ``1小时5分``-style durations."""
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if language == "zh":
        parts = [(hours, "小时"), (minutes, "分"), (secs, "秒")]
        text = "".join(f"{n}{unit}" for n, unit in parts if n)
        return text or "0秒"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


# -- values and subjects ----------------------------------------------------------------------


def _number(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".") if value != int(value) else f"{value:g}"


def _signed(value: float) -> str:
    return ("+" if value >= 0 else "-") + _number(abs(value))


def _amount(value: float, unit: str, language: Language) -> str:
    if unit == "s":
        return duration(value, language)
    return f"{_number(value)} {unit}" if unit else _number(value)


def value_text(alert: Alert, language: Language, style: Style = "markdown") -> str | None:
    """``9.3 °C / threshold 8 °C`` or None when the alert carries no value."""
    if alert.value is None:
        return None
    raw_unit = alert.details.get("unit")
    if raw_unit:
        unit = "s" if raw_unit == "s" else neutralise(str(raw_unit), style)
    else:
        unit = _UNITS.get(alert.type) or _WORD_UNITS.get(alert.type, {}).get(language, "")
    text = _amount(alert.value, unit, language)
    if alert.threshold is not None:
        text += f" / {label('threshold', language)} {_amount(alert.threshold, unit, language)}"
    peak = peak_text(alert, language, style)
    if peak is not None:
        text += f" / {label('peak', language)} {peak}"
    return text


def peak_text(alert: Alert, language: Language, style: Style = "markdown") -> str | None:
    """The peak value with its unit, or None when the alert has none other than its value."""
    if alert.peak_value is None or alert.peak_value == alert.value:
        return None
    raw_unit = alert.details.get("unit")
    if raw_unit:
        unit = "s" if raw_unit == "s" else neutralise(str(raw_unit), style)
    else:
        unit = _UNITS.get(alert.type) or _WORD_UNITS.get(alert.type, {}).get(language, "")
    return _amount(alert.peak_value, unit, language)


def until_ms(alert: Alert, event: AlertEvent) -> int:
    """The time a message's durations run to: the clear of a resolved notice, else the latest
    time the alert knows it is active (raised, last seen, reminded or escalated)."""
    if event == "cleared" and alert.cleared_at is not None:
        return alert.cleared_at
    known = (alert.last_seen_at, alert.reminded_at, alert.escalated_at)
    return max([alert.raised_at, *(t for t in known if t is not None)])


def lasted_s(alert: Alert, event: AlertEvent, held_s: float) -> float:
    """``held_s`` (a duration the rule reported at its last sighting) carried on to
    :func:`until_ms`; as reported when the alert records no sighting."""
    if alert.last_seen_at is None:
        return held_s
    return held_s + max(0, until_ms(alert, event) - alert.last_seen_at) / 1000


def _subject_parts(alert: Alert, language: Language, style: Style) -> list[str]:
    details: dict[str, Any] = alert.details
    shown = {k: str(details[k]) for k in _SUBJECT_KEYS if details.get(k)}
    device = shown.get("device")
    for part in _DEVICE_PARTS:
        if device and part in shown:
            shown[part] = f"{device}/{shown.pop(part)}"
            del shown["device"]
            break
    return [f"{label(k, language)} {neutralise(v, style)}" for k, v in shown.items()]


def subject(alert: Alert, language: Language, style: Style = "markdown") -> str:
    """What the alert is about: SKU, EPC, sensor or device from the details, else the source
    (shown under the ``source`` label, so it carries no label of its own)."""
    parts = _subject_parts(alert, language, style)
    if parts:
        return ("，" if language == "zh" else ", ").join(parts)
    return neutralise(alert.source, style)


def _subject_adds(alert: Alert, language: Language, style: Style) -> bool:
    """False when the subject would only repeat the site and zone (a zone-wide source)."""
    if _subject_parts(alert, language, style):
        return True
    return alert.source not in (alert.site, f"{alert.site}/{alert.zone}")


def where(alert: Alert, style: Style = "markdown") -> str:
    """``site/zone``."""
    text = f"{alert.site}/{alert.zone}" if alert.zone else alert.site
    return neutralise(text, style)


# -- detail sentences -------------------------------------------------------------------------


class _MissingFieldError(Exception):
    """A template needs a field the alert does not carry: the rule's message is shown."""


_NOT_SET = {"zh": "未设定", "en": "not set"}
_REASONS = {"lwt": {"zh": "连接中断（遗嘱消息）", "en": "connection lost (last will)"}}


@dataclass(frozen=True)
class _Fields:
    """The alert's structured fields as a template reads them, in the message's language and
    style and the site's timezone; a field missing or of the wrong type raises
    :class:`_MissingFieldError`."""

    alert: Alert
    language: Language
    style: Style
    tz: tzinfo
    event: AlertEvent = "raised"

    @property
    def zh(self) -> bool:
        return self.language == "zh"

    def require(self, key: str) -> Any:
        if key not in self.alert.details:
            raise _MissingFieldError(key)
        return self.alert.details[key]

    def has(self, key: str) -> bool:
        return self.alert.details.get(key) is not None

    def number(self, key: str) -> float:
        raw = self.require(key)
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            raise _MissingFieldError(key)
        return float(raw)

    def value(self) -> float:
        if self.alert.value is None:
            raise _MissingFieldError("value")
        return self.alert.value

    def threshold(self) -> float:
        if self.alert.threshold is None:
            raise _MissingFieldError("threshold")
        return self.alert.threshold

    def text(self, key: str) -> str:
        """A string from the details, made inert (it may come from a device or the catalog)."""
        raw = self.require(key)
        if raw is None or raw == "":
            raise _MissingFieldError(key)
        return neutralise(str(raw), self.style)

    def optional_text(self, key: str) -> str | None:
        return self.text(key) if self.has(key) and self.alert.details[key] != "" else None

    def duration(self, seconds: float) -> str:
        return duration(seconds, self.language)

    def lasted(self, key: str = "duration_s") -> str:
        """A duration of the details carried on to the time the message runs to."""
        return duration(lasted_s(self.alert, self.event, self.number(key)), self.language)

    def time(self, key: str, *, optional: bool = False) -> str:
        """A time in the details (epoch ms) in the site's timezone; ``optional``: may be None."""
        raw = self.require(key)
        if raw is None and optional:
            return _NOT_SET[self.language]
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise _MissingFieldError(key)
        return local_time(raw, self.tz)

    def pick(self, zh: str, en: str) -> str:
        return zh if self.zh else en


def _excursion(f: _Fields) -> str:
    value, low, high = f.value(), f.number("band_low"), f.number("band_high")
    lasted = f.lasted()
    allowed = f.duration(f.number("allowance_s")) if f.has("allowance_s") else None
    peak = f.alert.peak_value if f.alert.peak_value != value else None
    above = (peak if peak is not None else value) > high
    edge = _number(high if above else low)
    if f.zh:
        side = "高于上限" if above else "低于下限"
        top = f"（峰值 {_number(peak)} °C）" if peak is not None else ""
        text = f"温度 {_number(value)} °C{top}，{side} {edge} °C，已持续 {lasted}"
        return text + (f"（允许 {allowed}）" if allowed else "")
    side = "above the upper limit" if above else "below the lower limit"
    top = f" (peak {_number(peak)} °C)" if peak is not None else ""
    text = f"Reads {_number(value)} °C{top}, {side} of {edge} °C, for {lasted}"
    return text + (f" (allowed: {allowed})" if allowed else "")


def _cumulative(f: _Fields) -> str:
    total, limit = f.duration(f.value()), f.duration(f.threshold())
    band = f"{_number(f.number('band_low'))}–{_number(f.number('band_high'))} °C"
    day = f.text("day")
    return f.pick(
        f"{day} 累计超出 {band} 共 {total}，上限 {limit}",
        f"Outside {band} for {total} in all on {day} (limit {limit})",
    )


def _mkt(f: _Fields) -> str:
    value, limit = _number(f.value()), _number(f.threshold())
    window, readings = f.duration(f.number("window_s")), _number(f.number("readings"))
    return f.pick(
        f"过去 {window} 的平均动力学温度为 {value} °C，高于限值 {limit} °C（{readings} 个读数）",
        f"Mean kinetic temperature over the last {window} is {value} °C, above the limit of "
        f"{limit} °C ({readings} readings)",
    )


def _offline(f: _Fields) -> str:
    reason = f.require("reason")
    if reason == "timeout":
        silent, timeout = f.duration(f.value()), f.duration(f.threshold())
        text = f.pick(
            f"已 {silent} 未收到数据（超时 {timeout}）",
            f"Nothing received for {silent} (timeout {timeout})",
        )
    else:
        known = _REASONS.get(str(reason))
        shown = known[f.language] if known else f.text("reason")
        text = f.pick(
            f"设备报告离线，原因：{shown}", f"The device announced it is offline: {shown}"
        )
    if f.has("last_seen_ms"):
        seen = f.time("last_seen_ms")
        text += f.pick(f"；最后数据 {seen}", f"; last data {seen}")
    return text


def _drift(f: _Fields) -> str:
    drift, reference = _signed(f.value()), _number(f.number("reference_c"))
    offset = _signed(f.number("offset_c"))
    limit = _number(f.alert.threshold) if f.alert.threshold is not None else None
    if f.zh:
        tail = f"，阈值 ±{limit} °C" if limit else ""
        return (
            f"读数比同区其他探头偏离 {drift} °C（参考值 {reference} °C，"
            f"常规偏差 {offset} °C{tail}）"
        )
    tail = f", threshold ±{limit} °C" if limit else ""
    return (
        f"Reads {drift} °C away from the zone's other probes (reference {reference} °C, "
        f"usual offset {offset} °C{tail})"
    )


def _stuck(f: _Fields) -> str:
    value, samples = _number(f.value()), _number(f.number("samples"))
    held = f.lasted()
    return f.pick(
        f"连续 {samples} 次读数均为 {value} °C，持续 {held}",
        f"Read exactly {value} °C {samples} times in a row over {held}",
    )


def _loss(f: _Fields) -> str:
    # The shelf cell (device/cell) is the subject: without it nothing says where to count.
    f.text("device")
    f.text("cell")
    units = _number(f.value())
    window = f.duration(f.number("window_s")) if f.has("window_s") else None
    if f.zh:
        within = f"前后 {window} 内" if window else ""
        return f"减少 {units} 件，{within}无 RFID 出库或拣货记录"
    within = f" within {window}" if window else ""
    return f"Lost {units} units with no RFID exit or recorded pick{within}"


def _misplaced(f: _Fields) -> str:
    f.text("sku")  # shown as the subject; without it nothing says what the tag is on
    home = f.text("home_zone")
    return f.pick(
        f"标签已停留在本区域，应放在区域 {home}",
        f"The tag settled in this zone; it belongs in zone {home}",
    )


def _reorder(f: _Fields) -> str:
    name, qty = f.text("name"), _number(f.number("qty"))
    projected, level = _number(f.value()), _number(f.threshold())
    f.require("supplier")  # None when the SKU has none; absent means the rule did not say
    supplier = f.optional_text("supplier")
    if f.zh:
        source = f"，供应商 {supplier}" if supplier else ""
        return f"{name}：预计库存 {projected} 件，补货点 {level} 件，建议采购 {qty} 件{source}"
    source = f" from {supplier}" if supplier else ""
    return (
        f"{name}: projected stock {projected}, reorder point {level}; "
        f"suggested purchase of {qty}{source}"
    )


def _expiry(f: _Fields) -> str:
    lot, qty = f.text("lot"), _number(f.value())
    expires = f.time("expiration_at", optional=True)
    removal = f.time("removal_at", optional=True)
    return f.pick(
        f"批次 {lot} 共 {qty} 件已到临期提醒时间；过期时间 {expires}，下架时间 {removal}",
        f"{qty} units of lot {lot} reached their alert date; expires {expires}, removal {removal}",
    )


def _expired(f: _Fields) -> str:
    lot, qty, removal = f.text("lot"), _number(f.value()), f.time("removal_at")
    return f.pick(
        f"批次 {lot} 共 {qty} 件已过下架时间 {removal}，须立即下架；这些货品已不计入可用库存",
        f"{qty} units of lot {lot} passed their removal time {removal}: take them out of "
        "stock; they no longer count as available",
    )


def _dead(f: _Fields) -> str:
    stock, days = _number(f.number("stock")), f"{f.value():.0f}"
    limit = _number(f.alert.threshold) if f.alert.threshold is not None else None
    if f.zh:
        tail = f"（超过 {limit} 天即为呆滞）" if limit else ""
        return f"库存 {stock} 件，已 {days} 天无出库{tail}"
    tail = f" (dead after {limit} days)" if limit else ""
    return f"{stock} units, no outflow for {days} days{tail}"


def _imbalance(f: _Fields) -> str:
    short, due = _number(f.number("shortfall")), f.time("first_due_at")
    at_risk = f"{f.value():.2f}"
    parts = ("demand", "available", "in_transit")
    breakdown = [_number(f.number(k)) for k in parts] if all(f.has(k) for k in parts) else None
    if f.zh:
        text = f"缺货 {short} 件，最早需求时间 {due}，风险金额 {at_risk}"
        if breakdown:
            demand, available, inbound = breakdown
            text += f"（已确认需求 {demand} 件，可用 {available} 件，在途 {inbound} 件）"
        return text
    text = f"Short by {short} units, first due {due}, value at risk {at_risk}"
    if breakdown:
        demand, available, inbound = breakdown
        text += f" (confirmed demand {demand}, available {available}, inbound {inbound})"
    return text


def _channel(f: _Fields) -> str:
    # The message is the channel's own error (the robot's errcode and words): shown as sent.
    error = neutralise(f.alert.message, f.style)
    return f.pick(f"发送失败：{error}", f"Delivery failed: {error}")


def _rejecting(f: _Fields) -> str:
    total = _number(f.value())
    refused = _number(f.number("refused")) if f.has("refused") else None
    f.require("reason")
    reason, said = f.optional_text("reason"), f.optional_text("message")
    if reason and said and said.startswith(reason):
        reason = None  # InfluxDB's message often starts with its reason
    last = ": ".join(t for t in (reason, said) if t)
    if f.zh:
        text = f"累计 {total} 个数据点被拒收" + (f"（本次 {refused} 个）" if refused else "")
        return text + (f"；最近一次：{last}" if last else "")
    text = f"{total} points refused in all" + (f" ({refused} this time)" if refused else "")
    return text + (f"; last: {last}" if last else "")


def _ambiguous(f: _Fields) -> str:
    grams, units = _signed(f.number("delta_grams")), _signed(f.value())
    return f.pick(
        f"重量变化 {grams} g，折合 {units} 件，不是整数，库存未变更",
        f"Weight changed by {grams} g, {units} units: not a whole number, stock not changed",
    )


_DETAILS: dict[str, Callable[[_Fields], str]] = {
    "cold_chain_excursion": _excursion,
    "cold_chain_cumulative": _cumulative,
    "cold_chain_mkt": _mkt,
    "sensor_offline": _offline,
    "sensor_drift": _drift,
    "sensor_stuck": _stuck,
    "unexplained_loss": _loss,
    "misplaced_item": _misplaced,
    "reorder": _reorder,
    "expiry_alert": _expiry,
    "expired_on_shelf": _expired,
    "dead_stock": _dead,
    "supply_imbalance": _imbalance,
    "channel_health": _channel,
    "store_rejecting": _rejecting,
    "weight_ambiguous": _ambiguous,
}


def templated_detail(
    alert: Alert,
    language: Language,
    style: Style = "markdown",
    tz: tzinfo = UTC,
    event: AlertEvent = "raised",
) -> str | None:
    """The detail sentence from the alert's fields in ``language``, durations up to
    :func:`until_ms` of ``event``; None when its type has no template or its details lack
    what the template needs."""
    template = _DETAILS.get(alert.type)
    if template is None:
        return None
    try:
        return template(_Fields(alert, language, style, tz, event))
    except _MissingFieldError as missing:
        # Debug only: it holds for every alert of the type until the rule adds the field.
        logger.debug(
            "%s alert %d: details lack %s, showing the rule's message",
            alert.type,
            alert.id,
            missing,
        )
        return None


def detail(
    alert: Alert,
    language: Language,
    style: Style = "markdown",
    tz: tzinfo = UTC,
    event: AlertEvent = "raised",
) -> str:
    """What happened, in ``language``; the rule's own message when no template applies."""
    text = templated_detail(alert, language, style, tz, event)
    return text if text is not None else neutralise(alert.message, style)


# -- messages ---------------------------------------------------------------------------------


def _duration_s(alert: Alert, event: AlertEvent) -> float | None:
    if event == "cleared" and alert.cleared_at is not None:
        return (alert.cleared_at - alert.raised_at) / 1000
    raw = alert.details.get("duration_s")
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return lasted_s(alert, event, float(raw))
    if event in ("reminder", "escalated"):
        return (until_ms(alert, event) - alert.raised_at) / 1000
    return None


def _due_text(due_at: int, alert: Alert, event: AlertEvent, language: Language, tz: tzinfo) -> str:
    text = local_time(due_at, tz)
    return text + _OVERDUE[language] if until_ms(alert, event) >= due_at else text


def _ownership(
    alert: Alert, event: AlertEvent, language: Language, style: Style, tz: tzinfo
) -> list[tuple[str, str]]:
    """Owner and deadlines of an active alert; who resolved it, why and how of a resolved one."""
    out: list[tuple[str, str]] = []
    if event == "cleared":
        if alert.resolved_by:
            out.append((label("resolved_by", language), neutralise(alert.resolved_by, style)))
        if alert.cause:
            out.append((label("cause", language), cause_name(alert.cause, language)))
        if alert.resolved_by and alert.resolution_note:
            out.append((label("resolution", language), neutralise(alert.resolution_note, style)))
        return out
    if alert.owner:
        out.append((label("owner", language), neutralise(alert.owner, style)))
    if alert.ack_due_at is not None and alert.acked_at is None:
        out.append((label("ack_due", language), _due_text(alert.ack_due_at, alert, event,
                                                          language, tz)))  # fmt: skip
    if alert.resolve_due_at is not None:
        out.append((label("resolve_due", language), _due_text(alert.resolve_due_at, alert, event,
                                                              language, tz)))  # fmt: skip
    return out


def title(alert: Alert, event: AlertEvent, language: Language, style: Style = "markdown") -> str:
    """A one-line headline (``text`` style for DingTalk's title field and text messages)."""
    labels = _LABELS[language]
    return (
        f"[{labels[event]}][{severity(alert.severity, language)}] "
        f"{type_name(alert.type, language)} {where(alert, style)}"
    )


def facts(
    alert: Alert,
    event: AlertEvent,
    language: Language,
    style: Style = "markdown",
    tz: tzinfo = UTC,
) -> list[tuple[str, str]]:
    """(label, value) pairs shown in every format, in reading order; data made inert.

    Times are in ``tz`` (the site's timezone). A templated detail sentence states the value
    and how long the condition lasted, so those are not listed again on their own lines.
    """
    sentence = templated_detail(alert, language, style, tz, event)
    out = [
        (label("id", language), f"#{alert.id}"),
        (label("site", language), neutralise(alert.site, style)),
    ]
    if alert.zone:
        out.append((label("zone", language), neutralise(alert.zone, style)))
    if _subject_adds(alert, language, style):
        out.append((label("source", language), subject(alert, language, style)))
    value = value_text(alert, language, style)
    if value and sentence is None:
        out.append((label("value", language), value))
    peak = peak_text(alert, language, style)
    if peak is not None and sentence is not None and alert.type not in _SENTENCE_PEAK:
        out.append((label("peak", language), peak))
    out.append((label("since", language), local_time(alert.raised_at, tz)))
    if event == "cleared" and alert.cleared_at is not None:
        out.append((label("until", language), local_time(alert.cleared_at, tz)))
    seconds = _duration_s(alert, event)
    # A reminder or escalation says how long it has lasted unless its sentence does.
    stated = sentence is not None and alert.type in _SENTENCE_DURATION
    later = event in ("reminder", "escalated") and not stated
    if seconds is not None and (event == "cleared" or sentence is None or later):
        out.append((label("duration", language), duration(seconds, language)))
    shown = sentence if sentence is not None else neutralise(alert.message, style)
    out.append((label("detail", language), shown))
    out += _ownership(alert, event, language, style, tz)
    if event != "cleared":
        out.append((label("action", language), action(alert.type, language)))
    return out


def alert_link(alert: Alert, console_url: str) -> str:
    """The console address of one alert."""
    return f"{console_url}#alert-{alert.id}"


def markdown(
    alert: Alert, event: AlertEvent, language: Language, console_url: str, tz: tzinfo = UTC
) -> str:
    """A markdown body that both DingTalk and WeCom render; times in ``tz``."""
    lines = [f"### {title(alert, event, language)}", ""]
    lines += [
        f"- **{name}**: {value}" for name, value in facts(alert, event, language, "markdown", tz)
    ]
    lines.append("")
    lines.append(f"[{label('console', language)}]({alert_link(alert, console_url)})")
    return "\n".join(lines)


def plain(
    alert: Alert, event: AlertEvent, language: Language, console_url: str, tz: tzinfo = UTC
) -> str:
    """A plain-text body (WeCom text messages); times in ``tz``."""
    lines = [title(alert, event, language, "text")]
    lines += [f"{name}: {value}" for name, value in facts(alert, event, language, "text", tz)]
    lines.append(f"{label('console', language)}: {alert_link(alert, console_url)}")
    return "\n".join(lines)


def summary_line(
    alert: Alert,
    event: AlertEvent,
    language: Language,
    style: Style = "markdown",
    tz: tzinfo = UTC,
) -> str:
    """One compact line for digests: id, severity, type, where, subject, value, time in ``tz``."""
    state = "" if event == "raised" else f"[{label(event, language)}]"
    head = f"#{alert.id} {state}[{severity(alert.severity, language)}] "
    parts = [f"{head}{type_name(alert.type, language)} {where(alert, style)}"]
    if _subject_adds(alert, language, style):
        parts.append(subject(alert, language, style))
    value = value_text(alert, language, style)
    if value:
        parts.append(value)
    at = alert.cleared_at if event == "cleared" and alert.cleared_at else alert.raised_at
    parts.append(clock_time(at, tz))
    return " · ".join(parts)

"""Alert text for people, in Chinese or English: what, where, value vs threshold, what to do.

Types without an entry in the tables still render: the type name is made readable and a
generic action points at the console, so a new rule never produces an empty message.

Everything that comes from a device, an API caller or the catalog (message, details, site,
zone, source) goes through :func:`rules.notify.markup.neutralise` for the message's style;
our own labels, names and actions do not.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from core.alerts import Alert, AlertEvent, Severity
from rules.notify.markup import Style, neutralise

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
}
_GENERIC_ACTION = {
    "zh": "请在控制台查看详情并确认处理。",
    "en": "Open the console for details and acknowledge the alert.",
}
# Units by type, used when the alert's details do not name one.
_UNITS: dict[str, str] = {
    "cold_chain_excursion": "°C",
    "cold_chain_mkt": "°C",
    "cold_chain_cumulative": "s",
    "sensor_drift": "°C",
    "sensor_stuck": "°C",
}
_SUBJECT_KEYS = ("sku", "epc", "sensor", "device", "location")
_LABELS = {
    "zh": {
        "raised": "告警",
        "cleared": "已恢复",
        "escalated": "升级",
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
        "source": "来源",
        "until": "恢复时间",
        "id": "编号",
    },
    "en": {
        "raised": "ALERT",
        "cleared": "RESOLVED",
        "escalated": "ESCALATED",
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


def action(type_: str, language: Language) -> str:
    """What to do about an alert of this type."""
    known = _ACTIONS.get(type_)
    return known[language] if known else _GENERIC_ACTION[language]


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def clock_time(ms: int) -> str:
    """``HH:MM:SS`` (UTC) for compact lists."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%H:%M:%S")


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


def _number(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".") if value != int(value) else f"{value:g}"


def value_text(alert: Alert, language: Language, style: Style = "markdown") -> str | None:
    """``9.3 °C / threshold 8 °C`` or None when the alert carries no value."""
    if alert.value is None:
        return None
    raw_unit = alert.details.get("unit")
    unit = neutralise(str(raw_unit), style) if raw_unit else _UNITS.get(alert.type, "")
    suffix = f" {unit}" if unit else ""
    text = f"{_number(alert.value)}{suffix}"
    if alert.threshold is not None:
        text += f" / {label('threshold', language)} {_number(alert.threshold)}{suffix}"
    return text


def subject(alert: Alert, language: Language, style: Style = "markdown") -> str:
    """What the alert is about: SKU, EPC, sensor or device from the details, else the source."""
    details: dict[str, Any] = alert.details
    parts = [
        f"{label(k, language)} {neutralise(str(details[k]), style)}"
        for k in _SUBJECT_KEYS
        if details.get(k)
    ]
    if parts:
        return ", ".join(parts)
    return f"{label('source', language)} {neutralise(alert.source, style)}"


def _duration_s(alert: Alert, event: AlertEvent) -> float | None:
    if event == "cleared" and alert.cleared_at is not None:
        return (alert.cleared_at - alert.raised_at) / 1000
    raw = alert.details.get("duration_s")
    return float(raw) if isinstance(raw, int | float) else None


def where(alert: Alert, style: Style = "markdown") -> str:
    """``site/zone``."""
    text = f"{alert.site}/{alert.zone}" if alert.zone else alert.site
    return neutralise(text, style)


def title(alert: Alert, event: AlertEvent, language: Language, style: Style = "markdown") -> str:
    """A one-line headline (``text`` style for DingTalk's title field and text messages)."""
    labels = _LABELS[language]
    return (
        f"[{labels[event]}][{severity(alert.severity, language)}] "
        f"{type_name(alert.type, language)} {where(alert, style)}"
    )


def facts(
    alert: Alert, event: AlertEvent, language: Language, style: Style = "markdown"
) -> list[tuple[str, str]]:
    """(label, value) pairs shown in every format, in reading order; data made inert."""
    out = [
        (label("id", language), f"#{alert.id}"),
        (label("site", language), neutralise(alert.site, style)),
    ]
    if alert.zone:
        out.append((label("zone", language), neutralise(alert.zone, style)))
    out.append((label("source", language), subject(alert, language, style)))
    value = value_text(alert, language, style)
    if value:
        out.append((label("value", language), value))
    out.append((label("since", language), _when(alert.raised_at)))
    if event == "cleared" and alert.cleared_at is not None:
        out.append((label("until", language), _when(alert.cleared_at)))
    seconds = _duration_s(alert, event)
    if seconds is not None:
        out.append((label("duration", language), duration(seconds, language)))
    out.append((label("detail", language), neutralise(alert.message, style)))
    if event != "cleared":
        out.append((label("action", language), action(alert.type, language)))
    return out


def alert_link(alert: Alert, console_url: str) -> str:
    """The console address of one alert."""
    return f"{console_url}#alert-{alert.id}"


def markdown(alert: Alert, event: AlertEvent, language: Language, console_url: str) -> str:
    """A markdown body that both DingTalk and WeCom render."""
    lines = [f"### {title(alert, event, language)}", ""]
    lines += [f"- **{name}**: {value}" for name, value in facts(alert, event, language)]
    lines.append("")
    lines.append(f"[{label('console', language)}]({alert_link(alert, console_url)})")
    return "\n".join(lines)


def plain(alert: Alert, event: AlertEvent, language: Language, console_url: str) -> str:
    """A plain-text body (WeCom text messages)."""
    lines = [title(alert, event, language, "text")]
    lines += [f"{name}: {value}" for name, value in facts(alert, event, language, "text")]
    lines.append(f"{label('console', language)}: {alert_link(alert, console_url)}")
    return "\n".join(lines)


def summary_line(
    alert: Alert, event: AlertEvent, language: Language, style: Style = "markdown"
) -> str:
    """One compact line for digests: id, severity, type, where, subject, value, time."""
    state = "" if event == "raised" else f"[{label(event, language)}]"
    head = f"#{alert.id} {state}[{severity(alert.severity, language)}] "
    parts = [
        f"{head}{type_name(alert.type, language)} {where(alert, style)}",
        subject(alert, language, style),
    ]
    value = value_text(alert, language, style)
    if value:
        parts.append(value)
    at = alert.cleared_at if event == "cleared" and alert.cleared_at else alert.raised_at
    parts.append(clock_time(at))
    return " · ".join(parts)

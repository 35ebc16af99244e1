"""Alert text for people, in Chinese or English: what, where, value vs threshold, what to do."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from core.alerts import Alert, AlertEvent

Language = Literal["zh", "en"]

_SEVERITY = {
    "zh": {"critical": "严重", "major": "重要", "minor": "次要", "warning": "警告", "info": "提示"},
    "en": {"critical": "CRITICAL", "major": "MAJOR", "minor": "MINOR", "warning": "WARNING",
           "info": "INFO"},
}
_TYPES = {
    "cold_chain_excursion": {"zh": "冷链温度超限", "en": "Cold-chain excursion"},
}
_ACTIONS = {
    "cold_chain_excursion": {
        "zh": "请检查冷库门和制冷机组，必要时转移货物，并记录超温时长。",
        "en": "Check the cold-room door and refrigeration unit, move stock if needed, "
        "and record the excursion time.",
    },
}
_LABELS = {
    "zh": {"raised": "告警", "cleared": "已恢复", "site": "仓库", "zone": "区域", "value": "当前值",
           "threshold": "阈值", "since": "开始时间", "detail": "详情", "action": "处理建议",
           "console": "查看控制台"},
    "en": {"raised": "ALERT", "cleared": "RESOLVED", "site": "Site", "zone": "Zone",
           "value": "Value", "threshold": "Threshold", "since": "Since", "detail": "Detail",
           "action": "What to do", "console": "Open console"},
}


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def title(alert: Alert, event: AlertEvent, language: Language) -> str:
    """A one-line headline."""
    labels = _LABELS[language]
    kind = _TYPES.get(alert.type, {}).get(language, alert.type)
    zone = f"/{alert.zone}" if alert.zone else ""
    return f"[{labels[event]}][{_SEVERITY[language][alert.severity]}] {kind} {alert.site}{zone}"


def markdown(alert: Alert, event: AlertEvent, language: Language, console_url: str) -> str:
    """A markdown body that both DingTalk and WeCom render."""
    labels = _LABELS[language]
    lines = [f"### {title(alert, event, language)}", ""]
    lines.append(f"- **{labels['site']}**: {alert.site}")
    if alert.zone:
        lines.append(f"- **{labels['zone']}**: {alert.zone}")
    if alert.value is not None:
        threshold = "" if alert.threshold is None else f" / {labels['threshold']} {alert.threshold:g}"
        lines.append(f"- **{labels['value']}**: {alert.value:g}{threshold}")
    lines.append(f"- **{labels['since']}**: {_when(alert.raised_at)}")
    lines.append(f"- **{labels['detail']}**: {alert.message}")
    action = _ACTIONS.get(alert.type, {}).get(language)
    if action and event == "raised":
        lines.append(f"- **{labels['action']}**: {action}")
    lines.append("")
    lines.append(f"[{labels['console']}]({console_url}#alert-{alert.id})")
    return "\n".join(lines)

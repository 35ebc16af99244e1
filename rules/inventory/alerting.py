"""The inventory's alerts, raised and cleared only through the alert lifecycle."""

from __future__ import annotations

import logging

from core.alerts import AlertCondition
from rules.lifecycle import AlertLifecycle

logger = logging.getLogger(__name__)


class InventoryAlerts:
    """Reports conditions to the lifecycle (which debounces and applies severity overrides)."""

    def __init__(self, lifecycle: AlertLifecycle) -> None:
        self.lifecycle = lifecycle

    def report(self, condition: AlertCondition) -> None:
        """The condition holds; every sweep that still sees it reports it again."""
        if self.lifecycle.report(condition) is not None:
            logger.info(
                "alert %s raised for %s: %s", condition.type, condition.source, condition.title
            )

    def clear(self, source: str, type_: str, at_ms: int, note: str) -> None:
        """The condition of (source, type) is gone."""
        if self.lifecycle.resolve(source, type_, at_ms=at_ms, note=note) is not None:
            logger.info("alert %s cleared for %s: %s", type_, source, note)

    def clear_gone(
        self, types: tuple[str, ...], live: set[tuple[str, str]], at_ms: int, note: str
    ) -> None:
        """Clear every tracked (source, type) of ``types`` a sweep no longer saw in ``live``.

        Open alerts and conditions still debouncing alike: a condition gone before its
        debounce ended must start again from zero.
        """
        for source, type_ in sorted(self.lifecycle.tracked(types) - live):
            self.clear(source, type_, at_ms, note)

"""The three alert stores over one connection, built together."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from core import db
from core.alerts.outbox import OutboxStore
from core.alerts.silences import SilenceStore
from core.alerts.state import AlertStateStore
from core.settings import AlertingSettings


@dataclass(frozen=True, slots=True)
class AlertStores:
    """Alert state, outbox and silence stores sharing one connection."""

    state: AlertStateStore
    outbox: OutboxStore
    silences: SilenceStore

    @classmethod
    def over(
        cls,
        conn: db.Connection,
        channels: list[str],
        *,
        alerting: AlertingSettings | None = None,
        on_enqueue: Callable[[], None] | None = None,
    ) -> AlertStores:
        """The stores over ``conn``: ``channels`` and ``alerting`` as for
        :class:`AlertStateStore`, ``on_enqueue`` as for :class:`OutboxStore`."""
        silences = SilenceStore(conn)
        outbox = OutboxStore(conn, on_enqueue=on_enqueue)
        state = AlertStateStore(conn, channels, silences=silences, outbox=outbox, alerting=alerting)
        return cls(state, outbox, silences)

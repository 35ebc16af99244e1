"""The alert state store: alerts, their history, flapping and escalation.

One active alert per (source, type) is enforced by a partial unique index, so a rule that
fires again while its alert is open cannot create a duplicate, even across processes.

The lifecycle that must survive a restart lives here too:

- **reopening and flapping**: an alert raised again within ``reopen_window_s`` of its clear
  reopens the same row (a new *occurrence*) rather than starting another one. More than
  ``flap_max_transitions`` raise/clear transitions of a (source, type) inside
  ``flap_window_s`` mark its alert flapping: it stays open, clears are held, and people get
  nothing until it has been quiet for ``flap_stable_s``; then it settles to its real state.
- **silences** (maintenance windows) by site/zone/type: a silenced alert is recorded and goes
  to InfluxDB, but no person is notified.
- **routing** (``AlertingSettings.routes``) decides the channels of an event at enqueue time;
  the channel named ``influxdb`` always gets every state change. A resolved notice goes to the
  channels that were told the alert was active.
- **escalation**: :meth:`AlertStateStore.escalate_due` sends still-unacked alerts to the
  escalation channels of their route.
"""

from __future__ import annotations

import builtins
import json
import logging
import sqlite3
import time
from typing import Any

from core.alerts.models import (
    CHANNEL_HEALTH_TYPE,
    INFLUX_CHANNEL,
    Alert,
    AlertCondition,
    AlertEvent,
    AlertState,
    now_ms,
)
from core.alerts.outbox import OutboxStore
from core.alerts.silences import SilenceStore
from core.settings import AlertingSettings, RouteSettings

logger = logging.getLogger(__name__)

# History events that count as raise/clear transitions for flapping detection.
_TRANSITIONS = ("raised", "reopened", "cleared", "clear_held", "reraised")


class AlertStateStore:
    """Alert lifecycle persistence: raise, clear, acknowledge, list and history.

    ``channels`` are the names of every configured channel; ``alerting`` holds the routes and
    the flapping limits (defaults: every alert to every channel). Silences come from
    ``silences``; every state change is queued for delivery in ``outbox`` in the same
    transaction.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        channels: builtins.list[str],
        *,
        silences: SilenceStore,
        outbox: OutboxStore,
        alerting: AlertingSettings | None = None,
    ) -> None:
        self._conn = conn
        self.channels = channels
        self.alerting = alerting or AlertingSettings()
        self._silences = silences
        self._outbox = outbox

    def active(self, source: str, type_: str) -> Alert | None:
        """The open alert for (source, type), if any."""
        row = self._conn.execute(
            "SELECT * FROM alerts WHERE source = ? AND type = ? AND state = 'active'",
            (source, type_),
        ).fetchone()
        return None if row is None else Alert.from_row(row)

    def get(self, alert_id: int) -> Alert | None:
        """One alert by id."""
        row = self._conn.execute("SELECT * FROM alerts WHERE id = ?", (alert_id,)).fetchone()
        return None if row is None else Alert.from_row(row)

    def list(
        self,
        *,
        state: AlertState | None = None,
        limit: int = 100,
        type_: str | None = None,
        site: str | None = None,
    ) -> list[Alert]:
        """Newest first; optionally of one state, type and site."""
        where: builtins.list[str] = []
        params: builtins.list[object] = []
        for column, value in (("state", state), ("type", type_), ("site", site)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        sql = "SELECT * FROM alerts"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self._conn.execute(
            sql + " ORDER BY raised_at DESC, id DESC LIMIT ?", (*params, limit)
        )
        return [Alert.from_row(r) for r in rows.fetchall()]

    def raised_between(self, site: str, start_ms: int, end_ms: int) -> builtins.list[Alert]:
        """Alerts of ``site`` raised in ``[start_ms, end_ms)``, oldest first (for KPIs)."""
        rows = self._conn.execute(
            """SELECT * FROM alerts WHERE site = ? AND raised_at >= ? AND raised_at < ?
               ORDER BY raised_at, id""",
            (site, start_ms, end_ms),
        )
        return [Alert.from_row(r) for r in rows.fetchall()]

    def raise_alert(self, condition: AlertCondition) -> tuple[Alert, bool]:
        """Record ``condition`` as an alert unless one is already active; (alert, created).

        Only the lifecycle calls this, with debounce and severity policy already applied. An
        alert cleared less than ``reopen_window_s`` before ``at_ms`` is reopened instead of a
        new one being created (``created`` is True: it is a new occurrence).
        """
        source, type_, at_ms = condition.source, condition.type, condition.at_ms
        severity, site, zone = condition.severity, condition.site, condition.zone
        title, message = condition.title, condition.message
        value, threshold, details = condition.value, condition.threshold, condition.details
        existing = self.active(source, type_)
        if existing is not None:
            if existing.pending_clear_at is not None:
                # A flapping alert whose condition came back before it settled.
                with self._tx():
                    self._conn.execute(
                        "UPDATE alerts SET pending_clear_at = NULL, updated_at = ? WHERE id = ?",
                        (now_ms(), existing.id),
                    )
                    self._event(existing.id, "reraised", at_ms)
                existing = self._must_get(existing.id)
            return existing, False
        stamp = now_ms()
        silence = self._silences.silence_for(site, zone, type_, at_ms)
        silenced_by = None if silence is None else silence.id
        detail_text = json.dumps(details, ensure_ascii=False)
        window_ms = int(self.alerting.reopen_window_s * 1000)
        recent = (
            None
            if window_ms <= 0
            else self._conn.execute(
                """SELECT id FROM alerts WHERE source = ? AND type = ? AND state = 'cleared'
               AND cleared_at >= ? ORDER BY id DESC LIMIT 1""",
                (source, type_, at_ms - window_ms),
            ).fetchone()
        )
        with self._tx():
            if recent is not None:
                alert_id = int(recent["id"])
                self._conn.execute(
                    """UPDATE alerts SET state = 'active', severity = ?, title = ?, message = ?,
                       value = ?, threshold = ?, details = ?, raised_at = ?, cleared_at = NULL,
                       acked_by = NULL, acked_at = NULL, escalated_at = NULL, silenced_by = ?,
                       occurrence = occurrence + 1, updated_at = ? WHERE id = ?""",
                    (
                        severity,
                        title,
                        message,
                        value,
                        threshold,
                        detail_text,
                        at_ms,
                        silenced_by,
                        stamp,
                        alert_id,
                    ),
                )
                self._event(alert_id, "reopened", at_ms)
            else:
                cur = self._conn.execute(
                    """INSERT INTO alerts (source, type, severity, state, site, zone, title,
                       message, value, threshold, details, raised_at, updated_at, silenced_by)
                       VALUES (?, ?, ?, 'active', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                    (
                        source,
                        type_,
                        severity,
                        site,
                        zone,
                        title,
                        message,
                        value,
                        threshold,
                        detail_text,
                        at_ms,
                        stamp,
                        silenced_by,
                    ),
                )
                alert_id = int(cur.lastrowid or 0)
                self._event(alert_id, "raised", at_ms)
            self._check_flapping(self._must_get(alert_id), at_ms, extra=0)
            if silence is not None:
                self._event(
                    alert_id, "silenced", at_ms, actor=silence.created_by, note=silence.reason
                )
            self._enqueue(self._must_get(alert_id), "raised", stamp, at_ms=at_ms)
        self._outbox.wake()
        return self._must_get(alert_id), True

    def clear(
        self, source: str, type_: str, *, at_ms: int, note: str | None = None
    ) -> Alert | None:
        """Clear the active alert for (source, type); returns it, or None if none was open.

        A flapping alert (or one this clear would make flap) stays active with the clear
        held until it settles (see :meth:`settle_flapping`).
        """
        existing = self.active(source, type_)
        if existing is None:
            return None
        stamp = now_ms()
        with self._tx():
            if existing.flapping or self._check_flapping(existing, at_ms, extra=1):
                if existing.pending_clear_at is None:
                    self._conn.execute(
                        "UPDATE alerts SET pending_clear_at = ?, updated_at = ? WHERE id = ?",
                        (at_ms, stamp, existing.id),
                    )
                    self._event(existing.id, "clear_held", at_ms, note=note)
                return self._must_get(existing.id)
            self._clear(existing.id, at_ms, stamp, note=note)
        self._outbox.wake()
        return self.get(existing.id)

    def _clear(self, alert_id: int, at_ms: int, stamp: int, *, note: str | None) -> None:
        self._conn.execute(
            """UPDATE alerts SET state = 'cleared', cleared_at = ?, updated_at = ?, flapping = 0,
               pending_clear_at = NULL WHERE id = ?""",
            (at_ms, stamp, alert_id),
        )
        self._event(alert_id, "cleared", at_ms, note=note)
        self._enqueue(self._must_get(alert_id), "cleared", stamp, at_ms=at_ms)

    def ack(self, alert_id: int, *, by: str, at_ms: int | None = None) -> Alert | None:
        """Acknowledge an alert (who and when); None if it does not exist."""
        at = at_ms or now_ms()
        with self._tx():
            cur = self._conn.execute(
                "UPDATE alerts SET acked_by = ?, acked_at = ?, updated_at = ? WHERE id = ?",
                (by, at, at, alert_id),
            )
            if cur.rowcount == 0:
                return None
            self._event(alert_id, "acked", at, actor=by)
        return self.get(alert_id)

    def events(self, alert_id: int) -> builtins.list[dict[str, Any]]:
        """History of one alert, oldest first."""
        rows = self._conn.execute(
            "SELECT event, at, actor, note FROM alert_events WHERE alert_id = ? ORDER BY id",
            (alert_id,),
        )
        return [dict(r) for r in rows.fetchall()]

    # -- flapping -------------------------------------------------------------------------

    def _check_flapping(self, alert: Alert, at_ms: int, *, extra: int) -> bool:
        """Mark ``alert`` flapping when the transitions of its (source, type) in the window,
        plus ``extra`` not yet recorded, exceed ``flap_max_transitions``."""
        window_ms = int(self.alerting.flap_window_s * 1000)
        marks = ",".join("?" * len(_TRANSITIONS))
        row = self._conn.execute(
            f"""SELECT COUNT(*) FROM alert_events e JOIN alerts a ON a.id = e.alert_id
                WHERE a.source = ? AND a.type = ? AND e.at > ?
                AND e.event IN ({marks})""",  # noqa: S608 - placeholders only
            (alert.source, alert.type, at_ms - window_ms, *_TRANSITIONS),
        ).fetchone()
        if int(row[0]) + extra <= self.alerting.flap_max_transitions:
            return False
        self._conn.execute("UPDATE alerts SET flapping = 1 WHERE id = ?", (alert.id,))
        self._event(alert.id, "flapping", at_ms)
        logger.warning("alert %d is flapping: notifications held until it settles", alert.id)
        return True

    def settle_flapping(self, now_ms: int) -> builtins.list[Alert]:
        """Settle flapping alerts quiet for ``flap_stable_s``; returns the settled alerts.

        A held clear becomes a real clear (resolved notice to whoever was told); an alert
        whose condition is present stays active and people who last heard "resolved" are told
        it is active.
        """
        stable_ms = int((self.alerting.flap_stable_s or self.alerting.flap_window_s) * 1000)
        marks = ",".join("?" * len(_TRANSITIONS))
        rows = self._conn.execute(
            f"""SELECT a.id, MAX(e.at) AS last_at FROM alerts a
                JOIN alert_events e ON e.alert_id = a.id AND e.event IN ({marks})
                WHERE a.state = 'active' AND a.flapping = 1
                GROUP BY a.id""",  # noqa: S608 - placeholders only
            _TRANSITIONS,
        ).fetchall()
        settled: builtins.list[Alert] = []
        for row in rows:
            if now_ms - int(row["last_at"]) < stable_ms:
                continue
            alert = self._must_get(int(row["id"]))
            stamp = time.time_ns() // 1_000_000
            with self._tx():
                self._conn.execute(
                    "UPDATE alerts SET flapping = 0, updated_at = ? WHERE id = ?",
                    (stamp, alert.id),
                )
                self._event(alert.id, "stable", now_ms)
                if alert.pending_clear_at is not None:
                    self._clear(alert.id, alert.pending_clear_at, stamp, note="settled")
                else:
                    self._enqueue(
                        self._must_get(alert.id), "raised", stamp, at_ms=now_ms, influx=False
                    )
            settled.append(self._must_get(alert.id))
        if settled:
            self._outbox.wake()
        return settled

    # -- escalation -----------------------------------------------------------------------

    def escalate_due(self, now_ms: int) -> builtins.list[Alert]:
        """Escalate active, unacked alerts older than their route's ``escalate_after_s``."""
        escalating = [r for r in self.alerting.routes if r.escalate_after_s and r.escalate_to]
        if not escalating:
            return []
        shortest = min(int((r.escalate_after_s or 0) * 1000) for r in escalating)
        rows = self._conn.execute(
            """SELECT * FROM alerts WHERE state = 'active' AND acked_at IS NULL
               AND escalated_at IS NULL AND raised_at <= ?""",
            (now_ms - shortest,),
        ).fetchall()
        escalated: builtins.list[Alert] = []
        for row in rows:
            alert = Alert.from_row(row)
            targets: builtins.list[str] = []
            for route in escalating:
                after_ms = int((route.escalate_after_s or 0) * 1000)
                if route_matches(route, alert) and now_ms - alert.raised_at >= after_ms:
                    targets += [c for c in route.escalate_to if c not in targets]
            if not targets:
                continue
            stamp = time.time_ns() // 1_000_000
            with self._tx():
                self._conn.execute(
                    "UPDATE alerts SET escalated_at = ?, updated_at = ? WHERE id = ?",
                    (now_ms, stamp, alert.id),
                )
                self._event(alert.id, "escalated", now_ms, note=",".join(targets))
                self._enqueue(
                    self._must_get(alert.id), "escalated", stamp, at_ms=now_ms, targets=targets
                )
            logger.warning("alert %d unacked: escalated to %s", alert.id, ", ".join(targets))
            escalated.append(self._must_get(alert.id))
        if escalated:
            self._outbox.wake()
        return escalated

    # -- routing --------------------------------------------------------------------------

    def route_channels(self, alert: Alert) -> builtins.list[str]:
        """People channels (not InfluxDB) that the routes give an alert."""
        routes = self.alerting.routes
        people = [c for c in self.channels if c != INFLUX_CHANNEL]
        if not routes:
            return people
        chosen: builtins.list[str] = []
        for route in routes:
            if route_matches(route, alert):
                chosen += [c for c in route.channels if c not in chosen]
        if not any(route_matches(r, alert) for r in routes):
            default = self.alerting.default_channels
            chosen = people if default is None else builtins.list(default)
        return [c for c in chosen if c in people]

    def _enqueue(
        self,
        alert: Alert,
        event: AlertEvent,
        stamp: int,
        *,
        at_ms: int,
        targets: builtins.list[str] | None = None,
        influx: bool = True,
    ) -> None:
        channels: builtins.list[str] = []
        if influx and INFLUX_CHANNEL in self.channels:
            channels.append(INFLUX_CHANNEL)
        quiet = alert.flapping or alert.silenced_by is not None
        if (
            not quiet
            and self._silences.silence_for(alert.site, alert.zone, alert.type, at_ms) is not None
        ):
            quiet = True
            self._event(alert.id, f"{event}_silenced", at_ms)
        if not quiet:
            channels += self._people_targets(alert, event, targets)
        self._outbox.enqueue(alert, event, channels, stamp)

    def _people_targets(
        self, alert: Alert, event: AlertEvent, targets: builtins.list[str] | None
    ) -> builtins.list[str]:
        last = self._outbox.last_events(alert.id)
        if event == "cleared":
            # Resolved notices go to whoever was told the alert is active.
            chosen = [c for c, e in last.items() if e != "cleared"]
        elif event == "escalated":
            chosen = builtins.list(targets or [])
        else:
            # Skip channels that already know it is active (a settled flapping alert).
            chosen = [
                c for c in self.route_channels(alert) if last.get(c) not in ("raised", "escalated")
            ]
        excluded = {INFLUX_CHANNEL}
        if alert.type == CHANNEL_HEALTH_TYPE:
            # A failing channel cannot carry the news of its own failure.
            excluded.add(str(alert.details.get("channel", "")))
        return [c for c in chosen if c in self.channels and c not in excluded]

    def _must_get(self, alert_id: int) -> Alert:
        alert = self.get(alert_id)
        if alert is None:
            raise LookupError(f"alert {alert_id} vanished")
        return alert

    def _event(
        self,
        alert_id: int,
        event: str,
        at: int,
        *,
        actor: str | None = None,
        note: str | None = None,
    ) -> None:
        self._conn.execute(
            "INSERT INTO alert_events (alert_id, event, at, actor, note) VALUES (?, ?, ?, ?, ?)",
            (alert_id, event, at, actor, note),
        )

    def _tx(self) -> _Transaction:
        return _Transaction(self._conn)


def route_matches(route: RouteSettings, alert: Alert) -> bool:
    """Whether ``route`` applies to ``alert`` (empty match lists match anything)."""
    return (
        (not route.sites or alert.site in route.sites)
        and (not route.zones or alert.zone in route.zones)
        and (not route.types or alert.type in route.types)
        and (not route.severities or alert.severity in route.severities)
    )


class _Transaction:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._conn.execute("COMMIT" if exc_type is None else "ROLLBACK")

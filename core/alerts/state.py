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
- **staying current**: :meth:`AlertStateStore.update_active` keeps an open alert's latest
  value, peak, details and message as the rule keeps reporting it (the lifecycle throttles it).
- **owners and deadlines**: a raised alert gets an owner (its route's ``owner``, else the
  on-call rotation of ``AlertingSettings.oncall``) and acknowledge/resolve deadlines by
  severity (``AlertingSettings.due``); :meth:`AlertStateStore.assign` reassigns it.
- **escalation**: :meth:`AlertStateStore.escalate_due` sends still-unacked alerts, and alerts
  past a deadline, to the escalation channels of their route.
- **reminders**: :meth:`AlertStateStore.remind_due` reminds the channels told of an active,
  unacked alert every ``remind_every_s`` (per type or route).
- **resolution**: a rule's clear keeps its note; :meth:`AlertStateStore.resolve` is a person
  closing an alert (or explaining a cleared one) with a note and a cause.
"""

from __future__ import annotations

import builtins
import json
import logging
import time
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from core import db
from core.alerts.models import (
    CHANNEL_HEALTH_TYPE,
    INFLUX_CHANNEL,
    Alert,
    AlertCondition,
    AlertEvent,
    AlertState,
    Cause,
    now_ms,
)
from core.alerts.outbox import OutboxStore
from core.alerts.silences import SilenceStore
from core.db import SqlStore
from core.settings import WEEKDAYS, AlertingSettings, RouteSettings

logger = logging.getLogger(__name__)

# History events that count as raise/clear transitions for flapping detection.
_TRANSITIONS = ("raised", "reopened", "cleared", "clear_held", "reraised")
# Reset when a cleared alert reopens: they describe one occurrence.
_OCCURRENCE_RESET = """acked_by = NULL, acked_at = NULL, escalated_at = NULL,
    ack_overdue_at = NULL, resolve_overdue_at = NULL, reminded_at = NULL, reminders = 0,
    resolved_by = NULL, resolution_note = NULL, cause = NULL, time_to_ack_s = NULL,
    time_to_resolve_s = NULL"""


class AlertStateStore(SqlStore):
    """Alert lifecycle persistence: raise, clear, acknowledge, list and history.

    ``channels`` are the names of every configured channel; ``alerting`` holds the routes and
    the flapping limits (defaults: every alert to every channel). Silences come from
    ``silences``; every state change is queued for delivery in ``outbox`` in the same
    transaction.
    """

    def __init__(
        self,
        conn: db.Connection,
        channels: builtins.list[str],
        *,
        silences: SilenceStore,
        outbox: OutboxStore,
        alerting: AlertingSettings | None = None,
    ) -> None:
        super().__init__(conn)
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
        owner: str | None = None,
        raised_from: int | None = None,
        raised_to: int | None = None,
    ) -> list[Alert]:
        """Newest first; optionally of one state, type, site and owner, raised in
        ``[raised_from, raised_to)``."""
        where: builtins.list[str] = []
        params: builtins.list[object] = []
        filters = (("state", state), ("type", type_), ("site", site), ("owner", owner))
        for column, value in filters:
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if raised_from is not None:
            where.append("raised_at >= ?")
            params.append(raised_from)
        if raised_to is not None:
            where.append("raised_at < ?")
            params.append(raised_to)
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
        existing = self.active(condition.source, condition.type)
        if existing is not None and existing.pending_clear_at is None:
            return existing, False
        # Looked up again inside the write transaction: another process raising the same
        # alert at the same moment waits for this one, then finds it active.
        with self.transaction():
            alert, created = self._raise(condition)
        if created:
            self._outbox.wake()
        return alert, created

    def _raise(self, condition: AlertCondition) -> tuple[Alert, bool]:
        source, type_, at_ms = condition.source, condition.type, condition.at_ms
        severity, site, zone = condition.severity, condition.site, condition.zone
        title, message = condition.title, condition.message
        value, threshold, details = condition.value, condition.threshold, condition.details
        existing = self.active(source, type_)
        if existing is not None:
            if existing.pending_clear_at is not None:
                # A flapping alert whose condition came back before it settled.
                with self.transaction():
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
        with self.transaction():
            if recent is not None:
                alert_id = int(recent["id"])
                self._conn.execute(
                    f"""UPDATE alerts SET state = 'active', severity = ?, title = ?, message = ?,
                       value = ?, peak_value = ?, threshold = ?, details = ?, raised_at = ?,
                       last_seen_at = ?, cleared_at = NULL, {_OCCURRENCE_RESET}, silenced_by = ?,
                       occurrence = occurrence + 1, updated_at = ? WHERE id = ?""",  # noqa: S608
                    (
                        severity,
                        title,
                        message,
                        value,
                        value,
                        threshold,
                        detail_text,
                        at_ms,
                        at_ms,
                        silenced_by,
                        stamp,
                        alert_id,
                    ),
                )
                self._event(alert_id, "reopened", at_ms)
            else:
                row_id = self._conn.insert(
                    """INSERT INTO alerts (source, type, severity, state, site, zone, title,
                       message, value, peak_value, threshold, details, raised_at, last_seen_at,
                       updated_at, silenced_by)
                       VALUES (?, ?, ?, 'active', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                    (
                        source,
                        type_,
                        severity,
                        site,
                        zone,
                        title,
                        message,
                        value,
                        value,
                        threshold,
                        detail_text,
                        at_ms,
                        at_ms,
                        stamp,
                        silenced_by,
                    ),
                )
                alert_id = row_id
                self._event(alert_id, "raised", at_ms)
            self._set_owner_and_deadlines(self._must_get(alert_id), at_ms)
            self._check_flapping(self._must_get(alert_id), at_ms, extra=0)
            if silence is not None:
                self._event(
                    alert_id, "silenced", at_ms, actor=silence.created_by, note=silence.reason
                )
            self._enqueue(self._must_get(alert_id), "raised", stamp, at_ms=at_ms)
        return self._must_get(alert_id), True

    def clear(
        self, source: str, type_: str, *, at_ms: int, note: str | None = None
    ) -> Alert | None:
        """Clear the active alert for (source, type); returns it, or None if none was open.

        A flapping alert (or one this clear would make flap) stays active with the clear
        held until it settles (see :meth:`settle_flapping`).
        """
        if self.active(source, type_) is None:
            return None
        stamp = now_ms()
        with self.transaction():
            # Again inside the transaction: another process may have cleared it meanwhile.
            existing = self.active(source, type_)
            if existing is None:
                return None
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

    def _clear(
        self,
        alert_id: int,
        at_ms: int,
        stamp: int,
        *,
        note: str | None,
        by: str | None = None,
        cause: Cause | None = None,
    ) -> None:
        self._conn.execute(
            """UPDATE alerts SET state = 'cleared', cleared_at = ?, updated_at = ?, flapping = 0,
               pending_clear_at = NULL, resolution_note = ?, resolved_by = ?, cause = ?,
               time_to_resolve_s = GREATEST(0, ? - raised_at) / 1000.0 WHERE id = ?""",
            (at_ms, stamp, note, by, cause, at_ms, alert_id),
        )
        self._event(alert_id, "cleared" if by is None else "resolved", at_ms, actor=by, note=note)
        self._enqueue(self._must_get(alert_id), "cleared", stamp, at_ms=at_ms)

    def update_active(
        self,
        source: str,
        type_: str,
        *,
        value: float | None,
        peak_value: float | None,
        title: str,
        message: str,
        details: dict[str, Any],
        at_ms: int,
    ) -> bool:
        """A still-active condition seen again at ``at_ms``: store its latest value, peak,
        details (merged over the stored ones), title and message; False if no alert is open
        (a person resolved it). A report older than the stored one only moves the peak."""
        row = self._conn.execute(
            """SELECT id, details, last_seen_at FROM alerts
               WHERE source = ? AND type = ? AND state = 'active'""",
            (source, type_),
        ).fetchone()
        if row is None:
            return False
        last_seen = row["last_seen_at"]
        if last_seen is not None and at_ms < int(last_seen):
            self._conn.execute(
                "UPDATE alerts SET peak_value = ?, updated_at = ? WHERE id = ?",
                (peak_value, now_ms(), row["id"]),
            )
            return True
        merged = {**json.loads(row["details"]), **details}
        self._conn.execute(
            """UPDATE alerts SET value = ?, peak_value = ?, title = ?, message = ?, details = ?,
               last_seen_at = ?, updated_at = ? WHERE id = ?""",
            (
                value,
                peak_value,
                title,
                message,
                json.dumps(merged, ensure_ascii=False),
                at_ms,
                now_ms(),
                row["id"],
            ),
        )
        return True

    def resolve(
        self, alert_id: int, *, by: str, note: str, cause: Cause, at_ms: int | None = None
    ) -> Alert | None:
        """A person closes an alert with a note and a cause; None if it does not exist.

        An active alert is cleared at once (flapping or not) and its resolved notice queued;
        an alert a rule cleared keeps its clear time and gets the person's note and cause.
        """
        at = at_ms or now_ms()
        alert = self.get(alert_id)
        if alert is None:
            return None
        stamp = now_ms()
        with self.transaction():
            if alert.state == "active":
                self._clear(alert_id, at, stamp, note=note, by=by, cause=cause)
            else:
                self._conn.execute(
                    """UPDATE alerts SET resolved_by = ?, resolution_note = ?, cause = ?,
                       updated_at = ? WHERE id = ?""",
                    (by, note, cause, stamp, alert_id),
                )
                self._event(alert_id, "resolution", at, actor=by, note=note)
        self._outbox.wake()
        return self.get(alert_id)

    def assign(
        self, alert_id: int, owner: str, *, by: str, at_ms: int | None = None
    ) -> Alert | None:
        """Give an alert to ``owner``; None if it does not exist."""
        at = at_ms or now_ms()
        with self.transaction():
            cur = self._conn.execute(
                "UPDATE alerts SET owner = ?, updated_at = ? WHERE id = ?", (owner, at, alert_id)
            )
            if cur.rowcount == 0:
                return None
            self._event(alert_id, "assigned", at, actor=by, note=owner)
        return self.get(alert_id)

    def ack(self, alert_id: int, *, by: str, at_ms: int | None = None) -> Alert | None:
        """Acknowledge an alert (who and when); None if it does not exist."""
        at = at_ms or now_ms()
        with self.transaction():
            cur = self._conn.execute(
                """UPDATE alerts SET acked_by = ?, acked_at = ?, updated_at = ?,
                   time_to_ack_s = GREATEST(0, ? - raised_at) / 1000.0 WHERE id = ?""",
                (by, at, at, at, alert_id),
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
            with self.transaction():
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
        """Escalate active alerts: unacked ones older than their route's ``escalate_after_s``,
        and those past their acknowledge or resolve deadline, to their routes' ``escalate_to``.

        A deadline found passed is recorded (``ack_overdue_at``, ``resolve_overdue_at`` and an
        ``overdue`` history event) whether or not a route escalates; each deadline escalates
        once, and an alert escalated for its age is not escalated again for its acknowledge
        deadline.
        """
        escalating = [r for r in self.alerting.routes if r.escalate_after_s and r.escalate_to]
        shortest = min((int((r.escalate_after_s or 0) * 1000) for r in escalating), default=None)
        aged, params = "1 = 0", [now_ms, now_ms]
        if shortest is not None:
            aged = "(acked_at IS NULL AND escalated_at IS NULL AND raised_at <= ?)"
            params.insert(0, now_ms - shortest)
        rows = self._conn.execute(
            f"""SELECT * FROM alerts WHERE state = 'active' AND ({aged}
                OR (acked_at IS NULL AND ack_overdue_at IS NULL AND ack_due_at <= ?)
                OR (resolve_overdue_at IS NULL AND resolve_due_at <= ?))
                ORDER BY id""",  # noqa: S608 - no values in the text
            params,
        ).fetchall()
        escalated: builtins.list[Alert] = []
        for row in rows:
            alert = Alert.from_row(row)
            if self._escalate(alert, now_ms, escalating):
                escalated.append(self._must_get(alert.id))
        if escalated:
            self._outbox.wake()
        return escalated

    def _escalate(
        self, alert: Alert, now_ms: int, escalating: builtins.list[RouteSettings]
    ) -> bool:
        """Record the deadlines ``alert`` missed and queue its escalation; True if queued."""
        matching = [r for r in self.alerting.routes if r.escalate_to and route_matches(r, alert)]
        unacked = alert.acked_at is None
        ack_late = unacked and alert.ack_overdue_at is None and _passed(alert.ack_due_at, now_ms)
        resolve_late = alert.resolve_overdue_at is None and _passed(alert.resolve_due_at, now_ms)
        targets: builtins.list[str] = []
        reasons: builtins.list[str] = []
        if unacked and alert.escalated_at is None:
            for route in escalating:
                after_ms = int((route.escalate_after_s or 0) * 1000)
                if route_matches(route, alert) and now_ms - alert.raised_at >= after_ms:
                    targets += [c for c in route.escalate_to if c not in targets]
                    reasons.append("unacknowledged")
            if ack_late:
                targets += [c for r in matching for c in r.escalate_to if c not in targets]
                reasons.append("acknowledge deadline passed")
        if resolve_late:
            targets += [c for r in matching for c in r.escalate_to if c not in targets]
            reasons.append("resolve deadline passed")
        if not (targets or ack_late or resolve_late):
            return False
        stamp = time.time_ns() // 1_000_000
        with self.transaction():
            if ack_late:
                self._conn.execute(
                    "UPDATE alerts SET ack_overdue_at = ?, updated_at = ? WHERE id = ?",
                    (now_ms, stamp, alert.id),
                )
                self._event(alert.id, "overdue", now_ms, note="acknowledge")
            if resolve_late:
                self._conn.execute(
                    "UPDATE alerts SET resolve_overdue_at = ?, updated_at = ? WHERE id = ?",
                    (now_ms, stamp, alert.id),
                )
                self._event(alert.id, "overdue", now_ms, note="resolve")
            if targets:
                self._conn.execute(
                    "UPDATE alerts SET escalated_at = ?, updated_at = ? WHERE id = ?",
                    (now_ms, stamp, alert.id),
                )
                note = f"{', '.join(dict.fromkeys(reasons))}: {','.join(targets)}"
                self._event(alert.id, "escalated", now_ms, note=note)
                # The resolve deadline is a second escalation of the same occurrence.
                self._enqueue(
                    self._must_get(alert.id),
                    "escalated",
                    stamp,
                    at_ms=now_ms,
                    targets=targets,
                    seq=1 if resolve_late else 0,
                )
        if targets:
            logger.warning(
                "alert %d escalated to %s (%s)",
                alert.id,
                ", ".join(targets),
                ", ".join(dict.fromkeys(reasons)),
            )
        return bool(targets)

    # -- reminders ------------------------------------------------------------------------

    def reminder_interval_s(self, alert: Alert) -> float | None:
        """How often an active, unacked ``alert`` is reminded: the shortest of its type's and
        its matching routes' ``remind_every_s``; None when none is set."""
        found = [self.alerting.policy(alert.type).remind_every_s]
        found += [r.remind_every_s for r in self.alerting.routes if route_matches(r, alert)]
        intervals = [f for f in found if f is not None]
        return min(intervals) if intervals else None

    def remind_due(self, now_ms: int) -> builtins.list[Alert]:
        """Queue a reminder for each active, unacked alert whose interval has passed since it
        was raised or last reminded (at exactly the interval, too); returns them.

        Reminders go to the channels told the alert is active, not to InfluxDB (they change
        nothing); a flapping or silenced alert reminds nobody.
        """
        configured = any(p.remind_every_s for p in self.alerting.types.values()) or any(
            r.remind_every_s for r in self.alerting.routes
        )
        if not configured:
            return []
        rows = self._conn.execute(
            """SELECT * FROM alerts WHERE state = 'active' AND acked_at IS NULL
               AND flapping = 0 AND silenced_by IS NULL ORDER BY id"""
        ).fetchall()
        reminded: builtins.list[Alert] = []
        for row in rows:
            alert = Alert.from_row(row)
            interval = self.reminder_interval_s(alert)
            since = alert.reminded_at if alert.reminded_at is not None else alert.raised_at
            if interval is None or now_ms - since < int(interval * 1000):
                continue
            stamp = time.time_ns() // 1_000_000
            with self.transaction():
                self._conn.execute(
                    """UPDATE alerts SET reminded_at = ?, reminders = reminders + 1,
                       updated_at = ? WHERE id = ?""",
                    (now_ms, stamp, alert.id),
                )
                self._event(alert.id, "reminder", now_ms)
                current = self._must_get(alert.id)
                self._enqueue(
                    current, "reminder", stamp, at_ms=now_ms, influx=False, seq=current.reminders
                )
            reminded.append(self._must_get(alert.id))
        if reminded:
            self._outbox.wake()
        return reminded

    # -- owners and deadlines -------------------------------------------------------------

    def owner_for(self, alert: Alert) -> str | None:
        """Who owns a new ``alert``: the first matching route's ``owner``, else the first
        matching on-call rotation's person for the day of ``raised_at``; None if nobody."""
        for route in self.alerting.routes:
            if route.owner and route_matches(route, alert):
                return route.owner
        for oncall in self.alerting.oncall:
            if oncall.sites and alert.site not in oncall.sites:
                continue
            moment = datetime.fromtimestamp(alert.raised_at / 1000, UTC)
            day = WEEKDAYS[moment.astimezone(ZoneInfo(oncall.timezone)).weekday()]
            person = oncall.days.get(day) or oncall.default
            if person:
                return person
        return None

    def _set_owner_and_deadlines(self, alert: Alert, at_ms: int) -> None:
        """Inside the raise's transaction: deadlines from ``raised_at``, and an owner unless a
        reopened alert has one already."""
        due = self.alerting.due_for(alert.severity)
        ack_due = None if due.ack_s is None else alert.raised_at + int(due.ack_s * 1000)
        resolve_due = None if due.resolve_s is None else alert.raised_at + int(due.resolve_s * 1000)
        owner = alert.owner or self.owner_for(alert)
        self._conn.execute(
            "UPDATE alerts SET owner = ?, ack_due_at = ?, resolve_due_at = ? WHERE id = ?",
            (owner, ack_due, resolve_due, alert.id),
        )
        if owner is not None and owner != alert.owner:
            self._event(alert.id, "assigned", at_ms, note=owner)

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
        seq: int = 0,
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
        self._outbox.enqueue(alert, event, channels, stamp, seq=seq)

    def _people_targets(
        self, alert: Alert, event: AlertEvent, targets: builtins.list[str] | None
    ) -> builtins.list[str]:
        last = self._outbox.last_events(alert.id)
        if event in ("cleared", "reminder"):
            # Resolved notices and reminders go to whoever was told the alert is active.
            chosen = [c for c, e in last.items() if e != "cleared"]
        elif event == "escalated":
            chosen = builtins.list(targets or [])
        else:
            # Skip channels that already know it is active (a settled flapping alert).
            chosen = [
                c
                for c in self.route_channels(alert)
                if last.get(c) not in ("raised", "escalated", "reminder")
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


def _passed(due_at: int | None, now_ms: int) -> bool:
    """A deadline is missed at exactly its time, not a millisecond later."""
    return due_at is not None and now_ms >= due_at


def route_matches(route: RouteSettings, alert: Alert) -> bool:
    """Whether ``route`` applies to ``alert`` (empty match lists match anything)."""
    return (
        (not route.sites or alert.site in route.sites)
        and (not route.zones or alert.zone in route.zones)
        and (not route.types or alert.type in route.types)
        and (not route.severities or alert.severity in route.severities)
    )

"""Every table of the relational store, for SQLite and PostgreSQL alike.

Times are epoch milliseconds in 64-bit integers; quantities and money are doubles. A change
here comes with an Alembic revision in ``core/migrations/versions`` (``stocksense db
revision -m "..."`` writes its draft from the difference).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    text,
)

metadata = MetaData(
    naming_convention={
        "ix": "%(table_name)s_%(column_0_N_name)s_idx",
        "uq": "%(table_name)s_%(column_0_N_name)s_key",
        "fk": "%(table_name)s_%(column_0_name)s_fkey",
        "pk": "%(table_name)s_pkey",
    }
)

# SQLite gives an autoincrementing row id only to a column declared exactly INTEGER PRIMARY KEY.
RowId = BigInteger().with_variant(Integer(), "sqlite")


def _id() -> Column[int]:
    return Column("id", RowId, primary_key=True, autoincrement=True)


def _int(name: str, *, nullable: bool = True, default: int | None = None) -> Column[int]:
    server_default = None if default is None else text(str(default))
    return Column(name, BigInteger, nullable=nullable, server_default=server_default)


def _real(name: str, *, nullable: bool = True, default: float | None = None) -> Column[float]:
    server_default = None if default is None else text(repr(default))
    return Column(name, Double, nullable=nullable, server_default=server_default)


def _text(name: str, *, nullable: bool = True, default: str | None = None) -> Column[str]:
    server_default = None if default is None else text(f"'{default}'")
    return Column(name, Text, nullable=nullable, server_default=server_default)


def _one_of(column: str, *values: str) -> CheckConstraint:
    listed = ", ".join(f"'{v}'" for v in values)
    return CheckConstraint(f"{column} IN ({listed})")


# --- alerts, their history, silences and the notification outbox ----------------------------

alerts = Table(
    "alerts",
    metadata,
    _id(),
    _text("source", nullable=False),
    _text("type", nullable=False),
    _text("severity", nullable=False),
    _text("state", nullable=False),
    _text("site", nullable=False),
    _text("zone"),
    _text("title", nullable=False),
    _text("message", nullable=False),
    _real("value"),
    _real("threshold"),
    _text("details", nullable=False, default="{}"),
    _int("raised_at", nullable=False),
    _int("cleared_at"),
    _text("acked_by"),
    _int("acked_at"),
    _int("updated_at", nullable=False),
    _int("flapping", nullable=False, default=0),
    _int("pending_clear_at"),
    _int("escalated_at"),
    _int("silenced_by"),
    _int("occurrence", nullable=False, default=0),
    _real("peak_value"),
    _int("last_seen_at"),
    _text("owner"),
    _int("ack_due_at"),
    _int("resolve_due_at"),
    _int("ack_overdue_at"),
    _int("resolve_overdue_at"),
    _int("reminded_at"),
    _int("reminders", nullable=False, default=0),
    _text("resolved_by"),
    _text("resolution_note"),
    _text("cause"),
    _real("time_to_ack_s"),
    _real("time_to_resolve_s"),
    _one_of("state", "active", "cleared"),
    _one_of("cause", "equipment", "process", "supplier", "data", "false_alarm", "other"),
)
Index(
    "alerts_one_active",
    alerts.c.source,
    alerts.c.type,
    unique=True,
    sqlite_where=text("state = 'active'"),
    postgresql_where=text("state = 'active'"),
)
Index("alerts_by_time", alerts.c.raised_at)
Index("alerts_by_source", alerts.c.source, alerts.c.type, alerts.c.id)
Index("alerts_by_state", alerts.c.state, alerts.c.flapping)
Index("alerts_by_owner", alerts.c.owner, alerts.c.state)

alert_events = Table(
    "alert_events",
    metadata,
    _id(),
    Column("alert_id", BigInteger, ForeignKey("alerts.id"), nullable=False),
    _text("event", nullable=False),
    _int("at", nullable=False),
    _text("actor"),
    _text("note"),
)
Index("alert_events_by_alert", alert_events.c.alert_id, alert_events.c.at)

silences = Table(
    "silences",
    metadata,
    _id(),
    _text("site"),
    _text("zone"),
    _text("type"),
    _int("starts_at", nullable=False),
    _int("ends_at", nullable=False),
    _text("created_by", nullable=False),
    _text("reason", nullable=False),
    _int("created_at", nullable=False),
    _int("deleted_at"),
    _text("deleted_by"),
    CheckConstraint("ends_at > starts_at"),
)
Index("silences_by_end", silences.c.ends_at)

outbox = Table(
    "outbox",
    metadata,
    _id(),
    _text("channel", nullable=False),
    Column("alert_id", BigInteger, ForeignKey("alerts.id"), nullable=False),
    _text("event", nullable=False),
    _int("occurrence", nullable=False, default=0),
    _int("seq", nullable=False, default=0),
    _text("status", nullable=False, default="pending"),
    _int("attempts", nullable=False, default=0),
    _int("next_attempt_at", nullable=False),
    _text("last_error"),
    _int("created_at", nullable=False),
    _int("sent_at"),
    _text("claimed_by"),
    _int("claimed_until"),
    UniqueConstraint("channel", "alert_id", "event", "occurrence", "seq"),
    _one_of("status", "pending", "sending", "sent", "dead"),
)
Index("outbox_due", outbox.c.status, outbox.c.next_attempt_at)
Index("outbox_by_alert", outbox.c.alert_id)

robot_sends = Table(
    "robot_sends",
    metadata,
    _text("channel", nullable=False),
    _real("sent_at", nullable=False),
)
Index("robot_sends_by_channel", robot_sends.c.channel, robot_sends.c.sent_at)

robot_pauses = Table(
    "robot_pauses",
    metadata,
    Column("channel", Text, primary_key=True),
    _real("paused_until", nullable=False),
)

# --- catalog, stock, lots, ledger and planning ---------------------------------------------

inv_skus = Table(
    "inv_skus",
    metadata,
    Column("sku", Text, primary_key=True),
    Column("gtin", Text, unique=True),
    _text("name", nullable=False, default=""),
    _real("unit_grams"),
    _real("weight_tolerance", nullable=False, default=0.2),
    _real("unit_cost", nullable=False, default=0.0),
    _real("lead_time_days", nullable=False, default=7.0),
    _real("lead_time_sigma_days", nullable=False, default=0.0),
    _real("review_days", nullable=False, default=0.0),
    _real("service_level", nullable=False, default=0.95),
    _text("policy", nullable=False, default="min_max"),
    _real("min_qty", nullable=False, default=0.0),
    _real("max_qty", nullable=False, default=0.0),
    _real("reorder_level"),
    _real("reorder_qty"),
    _real("pack_multiple", nullable=False, default=1.0),
    _text("supplier"),
    _text("home_zone"),
    _int("created_at", nullable=False),
    _int("updated_at", nullable=False),
    CheckConstraint("unit_grams IS NULL OR unit_grams > 0"),
    CheckConstraint("unit_cost >= 0"),
    CheckConstraint("lead_time_days >= 0"),
    CheckConstraint("lead_time_sigma_days >= 0"),
    CheckConstraint("review_days >= 0"),
    CheckConstraint("service_level > 0 AND service_level < 1"),
    _one_of("policy", "min_max", "dynamic", "forecast"),
)

inv_shelves = Table(
    "inv_shelves",
    metadata,
    _text("site", nullable=False),
    _text("device", nullable=False),
    _text("cell", nullable=False),
    Column("sku", Text, ForeignKey("inv_skus.sku"), nullable=False),
    _real("tare_grams", nullable=False, default=0.0),
    _text("location", nullable=False),
    _int("updated_at", nullable=False),
    PrimaryKeyConstraint("site", "device", "cell"),
)

inv_rfid_zones = Table(
    "inv_rfid_zones",
    metadata,
    _text("site", nullable=False),
    _text("device", nullable=False),
    _int("antenna", nullable=False),
    _text("zone", nullable=False),
    _text("role", nullable=False, default="storage"),
    _int("updated_at", nullable=False),
    PrimaryKeyConstraint("site", "device", "antenna"),
    _one_of("role", "storage", "receiving", "shipping"),
)

inv_lots = Table(
    "inv_lots",
    metadata,
    _id(),
    _text("lot", nullable=False),
    Column("sku", Text, ForeignKey("inv_skus.sku"), nullable=False),
    _text("site", nullable=False),
    _text("location", nullable=False),
    _real("qty", nullable=False, default=0.0),
    _int("received_at"),
    _int("expiration_at"),
    _int("best_before_at"),
    _int("removal_at"),
    _int("alert_at"),
    _int("updated_at", nullable=False),
    UniqueConstraint("site", "sku", "lot"),
    CheckConstraint("qty >= 0"),
)

inv_stock = Table(
    "inv_stock",
    metadata,
    _text("site", nullable=False),
    _text("location", nullable=False),
    _text("sku", nullable=False),
    _real("qty", nullable=False, default=0.0),
    _int("updated_at", nullable=False),
    PrimaryKeyConstraint("site", "location", "sku"),
)
# The stock of one SKU (at a site or at all), the ERP's most frequent question.
Index("inv_stock_by_sku", inv_stock.c.sku, inv_stock.c.site)

inv_ledger = Table(
    "inv_ledger",
    metadata,
    _id(),
    _int("ts", nullable=False),
    _text("site", nullable=False),
    _text("location", nullable=False),
    _text("sku", nullable=False),
    _text("lot"),
    _real("qty", nullable=False),
    _text("kind", nullable=False),
    _text("source", nullable=False),
    _text("ref"),
    _int("created_at", nullable=False),
    _one_of("kind", "pick", "put", "receipt", "issue", "adjust"),
    _one_of("source", "sensor", "api", "seed"),
)
Index("inv_ledger_by_sku", inv_ledger.c.site, inv_ledger.c.sku, inv_ledger.c.ts)
Index("inv_ledger_by_time", inv_ledger.c.ts)
# Movements of one SKU across sites, without scanning every site's ledger.
Index("inv_ledger_by_sku_only", inv_ledger.c.sku, inv_ledger.c.ts)

inv_suggestions = Table(
    "inv_suggestions",
    metadata,
    _id(),
    _text("site", nullable=False),
    _text("sku", nullable=False),
    _real("qty", nullable=False),
    _text("state", nullable=False, default="suggested"),
    _text("reason", nullable=False),
    _real("projected", nullable=False),
    _real("trigger_level", nullable=False),
    _int("created_at", nullable=False),
    _int("updated_at", nullable=False),
    CheckConstraint("qty > 0"),
    _one_of("state", "suggested", "ordered", "received", "cancelled"),
)
Index(
    "inv_suggestions_open", inv_suggestions.c.site, inv_suggestions.c.sku, inv_suggestions.c.state
)

inv_demand = Table(
    "inv_demand",
    metadata,
    _id(),
    _text("site", nullable=False),
    _text("sku", nullable=False),
    _real("qty", nullable=False),
    _int("due_at", nullable=False),
    _text("kind", nullable=False, default="sales"),
    _text("status", nullable=False, default="confirmed"),
    _text("ref"),
    _int("created_at", nullable=False),
    _int("updated_at", nullable=False),
    CheckConstraint("qty > 0"),
    _one_of("kind", "sales", "production"),
    _one_of("status", "confirmed", "fulfilled", "cancelled"),
)
Index(
    "inv_demand_open",
    inv_demand.c.status,
    inv_demand.c.site,
    inv_demand.c.sku,
    inv_demand.c.due_at,
)

inv_inbound = Table(
    "inv_inbound",
    metadata,
    _id(),
    _text("site", nullable=False),
    _text("sku", nullable=False),
    _real("qty", nullable=False),
    _int("eta"),
    _text("status", nullable=False, default="open"),
    _text("ref"),
    Column("suggestion_id", BigInteger, ForeignKey("inv_suggestions.id")),
    _int("created_at", nullable=False),
    _int("updated_at", nullable=False),
    CheckConstraint("qty > 0"),
    _one_of("status", "open", "received", "cancelled"),
)
Index("inv_inbound_open", inv_inbound.c.status, inv_inbound.c.site, inv_inbound.c.sku)

inv_forecasts = Table(
    "inv_forecasts",
    metadata,
    _text("site", nullable=False),
    _text("sku", nullable=False),
    _text("model", nullable=False),
    _text("demand_class", nullable=False),
    _int("horizon_days", nullable=False),
    _real("forecast_per_day", nullable=False),
    _real("forecast_horizon", nullable=False),
    _real("sigma_per_day", nullable=False),
    _real("safety_stock", nullable=False),
    _real("reorder_point", nullable=False),
    _real("adi"),
    _real("cv2"),
    _real("mase"),
    _real("bias"),
    _real("pis"),
    _text("fell_back_to"),
    _text("reason", nullable=False),
    _int("history_end", nullable=False),
    _int("history_days", nullable=False),
    _real("lead_time_days", nullable=False),
    _real("lead_time_sigma_days", nullable=False),
    _real("review_days", nullable=False),
    _real("service_level", nullable=False),
    _int("computed_at", nullable=False),
    PrimaryKeyConstraint("site", "sku"),
    _one_of("model", "ets", "sba", "tsb", "seasonal_naive", "mean", "none"),
    _one_of("demand_class", "smooth", "erratic", "intermittent", "lumpy", "no_demand"),
    CheckConstraint("horizon_days >= 1"),
    CheckConstraint("forecast_per_day >= 0"),
    CheckConstraint("forecast_horizon >= 0"),
    CheckConstraint("sigma_per_day >= 0"),
    CheckConstraint("safety_stock >= 0"),
    CheckConstraint("reorder_point >= 0"),
    CheckConstraint("history_days >= 0"),
)

inv_picks = Table(
    "inv_picks",
    metadata,
    _id(),
    _text("site", nullable=False),
    Column("sku", Text, ForeignKey("inv_skus.sku"), nullable=False),
    _real("qty", nullable=False),
    _text("location"),
    _text("ref", nullable=False),
    _int("ts", nullable=False),
    _text("list_ref"),
    _text("status", nullable=False, default="pending"),
    _real("matched_qty", nullable=False, default=0.0),
    _int("ledger_id"),
    _text("recorded_by", nullable=False),
    _int("created_at", nullable=False),
    _int("updated_at", nullable=False),
    UniqueConstraint("site", "ref"),
    CheckConstraint("qty > 0"),
    CheckConstraint("matched_qty >= 0"),
    _one_of("status", "pending", "expected", "matched", "booked"),
)
Index("inv_picks_open", inv_picks.c.status, inv_picks.c.site, inv_picks.c.sku, inv_picks.c.ts)
Index("inv_picks_by_list", inv_picks.c.site, inv_picks.c.list_ref)

inv_pick_lists = Table(
    "inv_pick_lists",
    metadata,
    _text("site", nullable=False),
    _text("ref", nullable=False),
    _int("ts", nullable=False),
    _text("digest", nullable=False),
    _int("lines", nullable=False),
    _text("recorded_by", nullable=False),
    _int("created_at", nullable=False),
    PrimaryKeyConstraint("site", "ref"),
    CheckConstraint("lines >= 1"),
)

# --- people, sign-in and the audit log ------------------------------------------------------

auth_users = Table(
    "auth_users",
    metadata,
    _id(),
    Column("name", Text, nullable=False, unique=True),
    _text("role", nullable=False),
    _text("sites", nullable=False, default=""),
    _text("password_hash", nullable=False),
    _int("created_at", nullable=False),
    _one_of("role", "viewer", "operator", "buyer", "approver", "admin"),
)

auth_tokens = Table(
    "auth_tokens",
    metadata,
    _id(),
    Column("user_id", BigInteger, ForeignKey("auth_users.id", ondelete="CASCADE"), nullable=False),
    _text("prefix", nullable=False),
    _text("token_hash", nullable=False),
    _text("label", nullable=False, default=""),
    _int("created_at", nullable=False),
    _int("last_used_at"),
)
Index("auth_tokens_by_prefix", auth_tokens.c.prefix)

auth_sessions = Table(
    "auth_sessions",
    metadata,
    Column("id", Text, primary_key=True),
    Column("user_id", BigInteger, ForeignKey("auth_users.id", ondelete="CASCADE"), nullable=False),
    _text("csrf", nullable=False),
    _int("created_at", nullable=False),
    _int("expires_at", nullable=False),
)
Index("auth_sessions_by_expiry", auth_sessions.c.expires_at)

auth_login_failures = Table(
    "auth_login_failures",
    metadata,
    _id(),
    _text("key", nullable=False),
    _int("at", nullable=False),
)
Index("auth_login_failures_by_key", auth_login_failures.c.key, auth_login_failures.c.at)

audit_log = Table(
    "audit_log",
    metadata,
    _id(),
    _int("at", nullable=False),
    _text("actor", nullable=False),
    _text("role"),
    _text("via", nullable=False),
    _text("action", nullable=False),
    _text("target", nullable=False),
    _text("site"),
    _text("before"),
    _text("after"),
)
Index("audit_log_by_time", audit_log.c.at)
Index("audit_log_by_actor", audit_log.c.actor, audit_log.c.at)

# --- KPI snapshots --------------------------------------------------------------------------

kpi_snapshots = Table(
    "kpi_snapshots",
    metadata,
    _text("site", nullable=False),
    _text("period", nullable=False),
    _int("at", nullable=False),
    _text("body", nullable=False),
    PrimaryKeyConstraint("site", "period", "at"),
    _one_of("period", "rolling", "day"),
)

# --- purchase requisitions and the ERP push queue -------------------------------------------

req_requisitions = Table(
    "req_requisitions",
    metadata,
    _id(),
    _text("site", nullable=False),
    _text("sku", nullable=False),
    _real("qty", nullable=False),
    _text("supplier"),
    _real("unit_cost", nullable=False),
    _text("currency", nullable=False),
    _real("amount", nullable=False),
    _text("category"),
    _int("suggestion_id"),
    _text("state", nullable=False, default="draft"),
    _int("approvals_required", nullable=False, default=0),
    _text("requested_by", nullable=False),
    _int("required_by"),
    _text("note", nullable=False, default=""),
    _real("received_qty", nullable=False, default=0.0),
    _text("erp_target"),
    _text("erp_document"),
    _int("created_at", nullable=False),
    _int("updated_at", nullable=False),
    CheckConstraint("qty > 0"),
    CheckConstraint("unit_cost >= 0"),
    CheckConstraint("amount >= 0"),
    CheckConstraint("approvals_required >= 0"),
    CheckConstraint("received_qty >= 0"),
    _one_of(
        "state", "draft", "submitted", "approved", "rejected", "ordered", "received", "cancelled"
    ),
)
Index("req_requisitions_by_site", req_requisitions.c.site, req_requisitions.c.state)
Index("req_requisitions_by_suggestion", req_requisitions.c.suggestion_id)

req_approvals = Table(
    "req_approvals",
    metadata,
    _id(),
    Column("requisition_id", BigInteger, ForeignKey("req_requisitions.id"), nullable=False),
    _text("approver", nullable=False),
    _text("decision", nullable=False),
    _text("comment", nullable=False, default=""),
    _int("at", nullable=False),
    UniqueConstraint("requisition_id", "approver"),
    _one_of("decision", "approved", "rejected"),
)

req_erp_queue = Table(
    "req_erp_queue",
    metadata,
    _id(),
    Column(
        "requisition_id",
        BigInteger,
        ForeignKey("req_requisitions.id"),
        nullable=False,
        unique=True,
    ),
    _text("target", nullable=False),
    Column("idempotency_key", Text, nullable=False, unique=True),
    _text("status", nullable=False, default="pending"),
    _int("attempts", nullable=False, default=0),
    _int("next_attempt_at", nullable=False),
    _text("last_error"),
    _text("document"),
    _int("created_at", nullable=False),
    _int("updated_at", nullable=False),
    _text("claimed_by"),
    _one_of("status", "pending", "sending", "done", "dead", "cancelled"),
)
Index("req_erp_queue_due", req_erp_queue.c.status, req_erp_queue.c.next_attempt_at)

"""baseline: the schema of alerts, inventory, sign-in, KPIs and requisitions

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("severity", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("site", sa.Text(), nullable=False),
        sa.Column("zone", sa.Text(), nullable=True),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("value", sa.Double(), nullable=True),
        sa.Column("threshold", sa.Double(), nullable=True),
        sa.Column("details", sa.Text(), server_default=sa.text("'{}'"), nullable=False),
        sa.Column("raised_at", sa.BigInteger(), nullable=False),
        sa.Column("cleared_at", sa.BigInteger(), nullable=True),
        sa.Column("acked_by", sa.Text(), nullable=True),
        sa.Column("acked_at", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("flapping", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("pending_clear_at", sa.BigInteger(), nullable=True),
        sa.Column("escalated_at", sa.BigInteger(), nullable=True),
        sa.Column("silenced_by", sa.BigInteger(), nullable=True),
        sa.Column("occurrence", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("peak_value", sa.Double(), nullable=True),
        sa.Column("last_seen_at", sa.BigInteger(), nullable=True),
        sa.Column("owner", sa.Text(), nullable=True),
        sa.Column("ack_due_at", sa.BigInteger(), nullable=True),
        sa.Column("resolve_due_at", sa.BigInteger(), nullable=True),
        sa.Column("ack_overdue_at", sa.BigInteger(), nullable=True),
        sa.Column("resolve_overdue_at", sa.BigInteger(), nullable=True),
        sa.Column("reminded_at", sa.BigInteger(), nullable=True),
        sa.Column("reminders", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("resolved_by", sa.Text(), nullable=True),
        sa.Column("resolution_note", sa.Text(), nullable=True),
        sa.Column("cause", sa.Text(), nullable=True),
        sa.Column("time_to_ack_s", sa.Double(), nullable=True),
        sa.Column("time_to_resolve_s", sa.Double(), nullable=True),
        sa.CheckConstraint(
            "cause IN ('equipment', 'process', 'supplier', 'data', 'false_alarm', 'other')"
        ),
        sa.CheckConstraint("state IN ('active', 'cleared')"),
        sa.PrimaryKeyConstraint("id", name=op.f("alerts_pkey")),
    )
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.create_index("alerts_by_owner", ["owner", "state"], unique=False)
        batch_op.create_index("alerts_by_source", ["source", "type", "id"], unique=False)
        batch_op.create_index("alerts_by_state", ["state", "flapping"], unique=False)
        batch_op.create_index("alerts_by_time", ["raised_at"], unique=False)
        batch_op.create_index(
            "alerts_one_active",
            ["source", "type"],
            unique=True,
            sqlite_where=sa.text("state = 'active'"),
            postgresql_where=sa.text("state = 'active'"),
        )

    op.create_table(
        "audit_log",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=True),
        sa.Column("via", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("site", sa.Text(), nullable=True),
        sa.Column("before", sa.Text(), nullable=True),
        sa.Column("after", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("audit_log_pkey")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index("audit_log_by_actor", ["actor", "at"], unique=False)
        batch_op.create_index("audit_log_by_time", ["at"], unique=False)

    op.create_table(
        "auth_login_failures",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("auth_login_failures_pkey")),
    )
    with op.batch_alter_table("auth_login_failures", schema=None) as batch_op:
        batch_op.create_index("auth_login_failures_by_key", ["key", "at"], unique=False)

    op.create_table(
        "auth_users",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("sites", sa.Text(), server_default=sa.text("('')"), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("role IN ('viewer', 'operator', 'buyer', 'approver', 'admin')"),
        sa.PrimaryKeyConstraint("id", name=op.f("auth_users_pkey")),
        sa.UniqueConstraint("name", name=op.f("auth_users_name_key")),
    )
    op.create_table(
        "inv_demand",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("site", sa.Text(), nullable=False),
        sa.Column("sku", sa.Text(), nullable=False),
        sa.Column("qty", sa.Double(), nullable=False),
        sa.Column("due_at", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.Text(), server_default=sa.text("'sales'"), nullable=False),
        sa.Column("status", sa.Text(), server_default=sa.text("'confirmed'"), nullable=False),
        sa.Column("ref", sa.Text(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("kind IN ('sales', 'production')"),
        sa.CheckConstraint("status IN ('confirmed', 'fulfilled', 'cancelled')"),
        sa.CheckConstraint("qty > 0"),
        sa.PrimaryKeyConstraint("id", name=op.f("inv_demand_pkey")),
    )
    with op.batch_alter_table("inv_demand", schema=None) as batch_op:
        batch_op.create_index("inv_demand_open", ["status", "site", "sku", "due_at"], unique=False)

    op.create_table(
        "inv_forecasts",
        sa.Column("site", sa.Text(), nullable=False),
        sa.Column("sku", sa.Text(), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("demand_class", sa.Text(), nullable=False),
        sa.Column("horizon_days", sa.BigInteger(), nullable=False),
        sa.Column("forecast_per_day", sa.Double(), nullable=False),
        sa.Column("forecast_horizon", sa.Double(), nullable=False),
        sa.Column("sigma_per_day", sa.Double(), nullable=False),
        sa.Column("safety_stock", sa.Double(), nullable=False),
        sa.Column("reorder_point", sa.Double(), nullable=False),
        sa.Column("adi", sa.Double(), nullable=True),
        sa.Column("cv2", sa.Double(), nullable=True),
        sa.Column("mase", sa.Double(), nullable=True),
        sa.Column("bias", sa.Double(), nullable=True),
        sa.Column("pis", sa.Double(), nullable=True),
        sa.Column("fell_back_to", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("history_end", sa.BigInteger(), nullable=False),
        sa.Column("history_days", sa.BigInteger(), nullable=False),
        sa.Column("lead_time_days", sa.Double(), nullable=False),
        sa.Column("lead_time_sigma_days", sa.Double(), nullable=False),
        sa.Column("review_days", sa.Double(), nullable=False),
        sa.Column("service_level", sa.Double(), nullable=False),
        sa.Column("computed_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "demand_class IN ('smooth', 'erratic', 'intermittent', 'lumpy', 'no_demand')"
        ),
        sa.CheckConstraint("model IN ('ets', 'sba', 'tsb', 'seasonal_naive', 'mean', 'none')"),
        sa.CheckConstraint("forecast_horizon >= 0"),
        sa.CheckConstraint("forecast_per_day >= 0"),
        sa.CheckConstraint("history_days >= 0"),
        sa.CheckConstraint("horizon_days >= 1"),
        sa.CheckConstraint("reorder_point >= 0"),
        sa.CheckConstraint("safety_stock >= 0"),
        sa.CheckConstraint("sigma_per_day >= 0"),
        sa.PrimaryKeyConstraint("site", "sku", name=op.f("inv_forecasts_pkey")),
    )
    op.create_table(
        "inv_ledger",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("ts", sa.BigInteger(), nullable=False),
        sa.Column("site", sa.Text(), nullable=False),
        sa.Column("location", sa.Text(), nullable=False),
        sa.Column("sku", sa.Text(), nullable=False),
        sa.Column("lot", sa.Text(), nullable=True),
        sa.Column("qty", sa.Double(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("ref", sa.Text(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("kind IN ('pick', 'put', 'receipt', 'issue', 'adjust')"),
        sa.CheckConstraint("source IN ('sensor', 'api', 'seed')"),
        sa.PrimaryKeyConstraint("id", name=op.f("inv_ledger_pkey")),
    )
    with op.batch_alter_table("inv_ledger", schema=None) as batch_op:
        batch_op.create_index("inv_ledger_by_sku", ["site", "sku", "ts"], unique=False)
        batch_op.create_index("inv_ledger_by_time", ["ts"], unique=False)

    op.create_table(
        "inv_pick_lists",
        sa.Column("site", sa.Text(), nullable=False),
        sa.Column("ref", sa.Text(), nullable=False),
        sa.Column("ts", sa.BigInteger(), nullable=False),
        sa.Column("digest", sa.Text(), nullable=False),
        sa.Column("lines", sa.BigInteger(), nullable=False),
        sa.Column("recorded_by", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("lines >= 1"),
        sa.PrimaryKeyConstraint("site", "ref", name=op.f("inv_pick_lists_pkey")),
    )
    op.create_table(
        "inv_rfid_zones",
        sa.Column("site", sa.Text(), nullable=False),
        sa.Column("device", sa.Text(), nullable=False),
        sa.Column("antenna", sa.BigInteger(), nullable=False),
        sa.Column("zone", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), server_default=sa.text("'storage'"), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("role IN ('storage', 'receiving', 'shipping')"),
        sa.PrimaryKeyConstraint("site", "device", "antenna", name=op.f("inv_rfid_zones_pkey")),
    )
    op.create_table(
        "inv_skus",
        sa.Column("sku", sa.Text(), nullable=False),
        sa.Column("gtin", sa.Text(), nullable=True),
        sa.Column("name", sa.Text(), server_default=sa.text("('')"), nullable=False),
        sa.Column("unit_grams", sa.Double(), nullable=True),
        sa.Column("weight_tolerance", sa.Double(), server_default=sa.text("(0.2)"), nullable=False),
        sa.Column("unit_cost", sa.Double(), server_default=sa.text("(0.0)"), nullable=False),
        sa.Column("lead_time_days", sa.Double(), server_default=sa.text("(7.0)"), nullable=False),
        sa.Column(
            "lead_time_sigma_days", sa.Double(), server_default=sa.text("(0.0)"), nullable=False
        ),
        sa.Column("review_days", sa.Double(), server_default=sa.text("(0.0)"), nullable=False),
        sa.Column("service_level", sa.Double(), server_default=sa.text("(0.95)"), nullable=False),
        sa.Column("policy", sa.Text(), server_default=sa.text("'min_max'"), nullable=False),
        sa.Column("min_qty", sa.Double(), server_default=sa.text("(0.0)"), nullable=False),
        sa.Column("max_qty", sa.Double(), server_default=sa.text("(0.0)"), nullable=False),
        sa.Column("reorder_level", sa.Double(), nullable=True),
        sa.Column("reorder_qty", sa.Double(), nullable=True),
        sa.Column("pack_multiple", sa.Double(), server_default=sa.text("(1.0)"), nullable=False),
        sa.Column("supplier", sa.Text(), nullable=True),
        sa.Column("home_zone", sa.Text(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("policy IN ('min_max', 'dynamic', 'forecast')"),
        sa.CheckConstraint("lead_time_days >= 0"),
        sa.CheckConstraint("lead_time_sigma_days >= 0"),
        sa.CheckConstraint("review_days >= 0"),
        sa.CheckConstraint("service_level > 0 AND service_level < 1"),
        sa.CheckConstraint("unit_cost >= 0"),
        sa.CheckConstraint("unit_grams IS NULL OR unit_grams > 0"),
        sa.PrimaryKeyConstraint("sku", name=op.f("inv_skus_pkey")),
        sa.UniqueConstraint("gtin", name=op.f("inv_skus_gtin_key")),
    )
    op.create_table(
        "inv_stock",
        sa.Column("site", sa.Text(), nullable=False),
        sa.Column("location", sa.Text(), nullable=False),
        sa.Column("sku", sa.Text(), nullable=False),
        sa.Column("qty", sa.Double(), server_default=sa.text("(0.0)"), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("site", "location", "sku", name=op.f("inv_stock_pkey")),
    )
    op.create_table(
        "inv_suggestions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("site", sa.Text(), nullable=False),
        sa.Column("sku", sa.Text(), nullable=False),
        sa.Column("qty", sa.Double(), nullable=False),
        sa.Column("state", sa.Text(), server_default=sa.text("'suggested'"), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("projected", sa.Double(), nullable=False),
        sa.Column("trigger_level", sa.Double(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("state IN ('suggested', 'ordered', 'received', 'cancelled')"),
        sa.CheckConstraint("qty > 0"),
        sa.PrimaryKeyConstraint("id", name=op.f("inv_suggestions_pkey")),
    )
    with op.batch_alter_table("inv_suggestions", schema=None) as batch_op:
        batch_op.create_index("inv_suggestions_open", ["site", "sku", "state"], unique=False)

    op.create_table(
        "kpi_snapshots",
        sa.Column("site", sa.Text(), nullable=False),
        sa.Column("period", sa.Text(), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.CheckConstraint("period IN ('rolling', 'day')"),
        sa.PrimaryKeyConstraint("site", "period", "at", name=op.f("kpi_snapshots_pkey")),
    )
    op.create_table(
        "req_requisitions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("site", sa.Text(), nullable=False),
        sa.Column("sku", sa.Text(), nullable=False),
        sa.Column("qty", sa.Double(), nullable=False),
        sa.Column("supplier", sa.Text(), nullable=True),
        sa.Column("unit_cost", sa.Double(), nullable=False),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("amount", sa.Double(), nullable=False),
        sa.Column("category", sa.Text(), nullable=True),
        sa.Column("suggestion_id", sa.BigInteger(), nullable=True),
        sa.Column("state", sa.Text(), server_default=sa.text("'draft'"), nullable=False),
        sa.Column(
            "approvals_required", sa.BigInteger(), server_default=sa.text("0"), nullable=False
        ),
        sa.Column("requested_by", sa.Text(), nullable=False),
        sa.Column("required_by", sa.BigInteger(), nullable=True),
        sa.Column("note", sa.Text(), server_default=sa.text("('')"), nullable=False),
        sa.Column("received_qty", sa.Double(), server_default=sa.text("(0.0)"), nullable=False),
        sa.Column("erp_target", sa.Text(), nullable=True),
        sa.Column("erp_document", sa.Text(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "state IN ('draft', 'submitted', 'approved', 'rejected', 'ordered', 'received', 'cancelled')"
        ),
        sa.CheckConstraint("amount >= 0"),
        sa.CheckConstraint("approvals_required >= 0"),
        sa.CheckConstraint("qty > 0"),
        sa.CheckConstraint("received_qty >= 0"),
        sa.CheckConstraint("unit_cost >= 0"),
        sa.PrimaryKeyConstraint("id", name=op.f("req_requisitions_pkey")),
    )
    with op.batch_alter_table("req_requisitions", schema=None) as batch_op:
        batch_op.create_index("req_requisitions_by_site", ["site", "state"], unique=False)
        batch_op.create_index("req_requisitions_by_suggestion", ["suggestion_id"], unique=False)

    op.create_table(
        "robot_pauses",
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("paused_until", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("channel", name=op.f("robot_pauses_pkey")),
    )
    op.create_table(
        "robot_sends",
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("sent_at", sa.Double(), nullable=False),
    )
    with op.batch_alter_table("robot_sends", schema=None) as batch_op:
        batch_op.create_index("robot_sends_by_channel", ["channel", "sent_at"], unique=False)

    op.create_table(
        "silences",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("site", sa.Text(), nullable=True),
        sa.Column("zone", sa.Text(), nullable=True),
        sa.Column("type", sa.Text(), nullable=True),
        sa.Column("starts_at", sa.BigInteger(), nullable=False),
        sa.Column("ends_at", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("deleted_at", sa.BigInteger(), nullable=True),
        sa.Column("deleted_by", sa.Text(), nullable=True),
        sa.CheckConstraint("ends_at > starts_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("silences_pkey")),
    )
    with op.batch_alter_table("silences", schema=None) as batch_op:
        batch_op.create_index("silences_by_end", ["ends_at"], unique=False)

    op.create_table(
        "alert_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("alert_id", sa.BigInteger(), nullable=False),
        sa.Column("event", sa.Text(), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["alert_id"], ["alerts.id"], name=op.f("alert_events_alert_id_fkey")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("alert_events_pkey")),
    )
    with op.batch_alter_table("alert_events", schema=None) as batch_op:
        batch_op.create_index("alert_events_by_alert", ["alert_id", "at"], unique=False)

    op.create_table(
        "auth_sessions",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("csrf", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["auth_users.id"],
            name=op.f("auth_sessions_user_id_fkey"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("auth_sessions_pkey")),
    )
    with op.batch_alter_table("auth_sessions", schema=None) as batch_op:
        batch_op.create_index("auth_sessions_by_expiry", ["expires_at"], unique=False)

    op.create_table(
        "auth_tokens",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("prefix", sa.Text(), nullable=False),
        sa.Column("token_hash", sa.Text(), nullable=False),
        sa.Column("label", sa.Text(), server_default=sa.text("('')"), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("last_used_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["auth_users.id"],
            name=op.f("auth_tokens_user_id_fkey"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("auth_tokens_pkey")),
    )
    with op.batch_alter_table("auth_tokens", schema=None) as batch_op:
        batch_op.create_index("auth_tokens_by_prefix", ["prefix"], unique=False)

    op.create_table(
        "inv_inbound",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("site", sa.Text(), nullable=False),
        sa.Column("sku", sa.Text(), nullable=False),
        sa.Column("qty", sa.Double(), nullable=False),
        sa.Column("eta", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.Text(), server_default=sa.text("'open'"), nullable=False),
        sa.Column("ref", sa.Text(), nullable=True),
        sa.Column("suggestion_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("status IN ('open', 'received', 'cancelled')"),
        sa.CheckConstraint("qty > 0"),
        sa.ForeignKeyConstraint(
            ["suggestion_id"], ["inv_suggestions.id"], name=op.f("inv_inbound_suggestion_id_fkey")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("inv_inbound_pkey")),
    )
    with op.batch_alter_table("inv_inbound", schema=None) as batch_op:
        batch_op.create_index("inv_inbound_open", ["status", "site", "sku"], unique=False)

    op.create_table(
        "inv_lots",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("lot", sa.Text(), nullable=False),
        sa.Column("sku", sa.Text(), nullable=False),
        sa.Column("site", sa.Text(), nullable=False),
        sa.Column("location", sa.Text(), nullable=False),
        sa.Column("qty", sa.Double(), server_default=sa.text("(0.0)"), nullable=False),
        sa.Column("received_at", sa.BigInteger(), nullable=True),
        sa.Column("expiration_at", sa.BigInteger(), nullable=True),
        sa.Column("best_before_at", sa.BigInteger(), nullable=True),
        sa.Column("removal_at", sa.BigInteger(), nullable=True),
        sa.Column("alert_at", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("qty >= 0"),
        sa.ForeignKeyConstraint(["sku"], ["inv_skus.sku"], name=op.f("inv_lots_sku_fkey")),
        sa.PrimaryKeyConstraint("id", name=op.f("inv_lots_pkey")),
        sa.UniqueConstraint("site", "sku", "lot", name=op.f("inv_lots_site_sku_lot_key")),
    )
    op.create_table(
        "inv_picks",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("site", sa.Text(), nullable=False),
        sa.Column("sku", sa.Text(), nullable=False),
        sa.Column("qty", sa.Double(), nullable=False),
        sa.Column("location", sa.Text(), nullable=True),
        sa.Column("ref", sa.Text(), nullable=False),
        sa.Column("ts", sa.BigInteger(), nullable=False),
        sa.Column("list_ref", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), server_default=sa.text("'pending'"), nullable=False),
        sa.Column("matched_qty", sa.Double(), server_default=sa.text("(0.0)"), nullable=False),
        sa.Column("ledger_id", sa.BigInteger(), nullable=True),
        sa.Column("recorded_by", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("status IN ('pending', 'expected', 'matched', 'booked')"),
        sa.CheckConstraint("matched_qty >= 0"),
        sa.CheckConstraint("qty > 0"),
        sa.ForeignKeyConstraint(["sku"], ["inv_skus.sku"], name=op.f("inv_picks_sku_fkey")),
        sa.PrimaryKeyConstraint("id", name=op.f("inv_picks_pkey")),
        sa.UniqueConstraint("site", "ref", name=op.f("inv_picks_site_ref_key")),
    )
    with op.batch_alter_table("inv_picks", schema=None) as batch_op:
        batch_op.create_index("inv_picks_by_list", ["site", "list_ref"], unique=False)
        batch_op.create_index("inv_picks_open", ["status", "site", "sku", "ts"], unique=False)

    op.create_table(
        "inv_shelves",
        sa.Column("site", sa.Text(), nullable=False),
        sa.Column("device", sa.Text(), nullable=False),
        sa.Column("cell", sa.Text(), nullable=False),
        sa.Column("sku", sa.Text(), nullable=False),
        sa.Column("tare_grams", sa.Double(), server_default=sa.text("(0.0)"), nullable=False),
        sa.Column("location", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["sku"], ["inv_skus.sku"], name=op.f("inv_shelves_sku_fkey")),
        sa.PrimaryKeyConstraint("site", "device", "cell", name=op.f("inv_shelves_pkey")),
    )
    op.create_table(
        "outbox",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("alert_id", sa.BigInteger(), nullable=False),
        sa.Column("event", sa.Text(), nullable=False),
        sa.Column("occurrence", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("seq", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("status", sa.Text(), server_default=sa.text("'pending'"), nullable=False),
        sa.Column("attempts", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("next_attempt_at", sa.BigInteger(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("sent_at", sa.BigInteger(), nullable=True),
        sa.Column("claimed_by", sa.Text(), nullable=True),
        sa.Column("claimed_until", sa.BigInteger(), nullable=True),
        sa.CheckConstraint("status IN ('pending', 'sending', 'sent', 'dead')"),
        sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"], name=op.f("outbox_alert_id_fkey")),
        sa.PrimaryKeyConstraint("id", name=op.f("outbox_pkey")),
        sa.UniqueConstraint(
            "channel",
            "alert_id",
            "event",
            "occurrence",
            "seq",
            name=op.f("outbox_channel_alert_id_event_occurrence_seq_key"),
        ),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index("outbox_by_alert", ["alert_id"], unique=False)
        batch_op.create_index("outbox_due", ["status", "next_attempt_at"], unique=False)

    op.create_table(
        "req_approvals",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("requisition_id", sa.BigInteger(), nullable=False),
        sa.Column("approver", sa.Text(), nullable=False),
        sa.Column("decision", sa.Text(), nullable=False),
        sa.Column("comment", sa.Text(), server_default=sa.text("('')"), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("decision IN ('approved', 'rejected')"),
        sa.ForeignKeyConstraint(
            ["requisition_id"],
            ["req_requisitions.id"],
            name=op.f("req_approvals_requisition_id_fkey"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("req_approvals_pkey")),
        sa.UniqueConstraint(
            "requisition_id", "approver", name=op.f("req_approvals_requisition_id_approver_key")
        ),
    )
    op.create_table(
        "req_erp_queue",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("requisition_id", sa.BigInteger(), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("idempotency_key", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), server_default=sa.text("'pending'"), nullable=False),
        sa.Column("attempts", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("next_attempt_at", sa.BigInteger(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("document", sa.Text(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("claimed_by", sa.Text(), nullable=True),
        sa.CheckConstraint("status IN ('pending', 'sending', 'done', 'dead', 'cancelled')"),
        sa.ForeignKeyConstraint(
            ["requisition_id"],
            ["req_requisitions.id"],
            name=op.f("req_erp_queue_requisition_id_fkey"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("req_erp_queue_pkey")),
        sa.UniqueConstraint("idempotency_key", name=op.f("req_erp_queue_idempotency_key_key")),
        sa.UniqueConstraint("requisition_id", name=op.f("req_erp_queue_requisition_id_key")),
    )
    with op.batch_alter_table("req_erp_queue", schema=None) as batch_op:
        batch_op.create_index("req_erp_queue_due", ["status", "next_attempt_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("req_erp_queue", schema=None) as batch_op:
        batch_op.drop_index("req_erp_queue_due")

    op.drop_table("req_erp_queue")
    op.drop_table("req_approvals")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("outbox_due")
        batch_op.drop_index("outbox_by_alert")

    op.drop_table("outbox")
    op.drop_table("inv_shelves")
    with op.batch_alter_table("inv_picks", schema=None) as batch_op:
        batch_op.drop_index("inv_picks_open")
        batch_op.drop_index("inv_picks_by_list")

    op.drop_table("inv_picks")
    op.drop_table("inv_lots")
    with op.batch_alter_table("inv_inbound", schema=None) as batch_op:
        batch_op.drop_index("inv_inbound_open")

    op.drop_table("inv_inbound")
    with op.batch_alter_table("auth_tokens", schema=None) as batch_op:
        batch_op.drop_index("auth_tokens_by_prefix")

    op.drop_table("auth_tokens")
    with op.batch_alter_table("auth_sessions", schema=None) as batch_op:
        batch_op.drop_index("auth_sessions_by_expiry")

    op.drop_table("auth_sessions")
    with op.batch_alter_table("alert_events", schema=None) as batch_op:
        batch_op.drop_index("alert_events_by_alert")

    op.drop_table("alert_events")
    with op.batch_alter_table("silences", schema=None) as batch_op:
        batch_op.drop_index("silences_by_end")

    op.drop_table("silences")
    with op.batch_alter_table("robot_sends", schema=None) as batch_op:
        batch_op.drop_index("robot_sends_by_channel")

    op.drop_table("robot_sends")
    op.drop_table("robot_pauses")
    with op.batch_alter_table("req_requisitions", schema=None) as batch_op:
        batch_op.drop_index("req_requisitions_by_suggestion")
        batch_op.drop_index("req_requisitions_by_site")

    op.drop_table("req_requisitions")
    op.drop_table("kpi_snapshots")
    with op.batch_alter_table("inv_suggestions", schema=None) as batch_op:
        batch_op.drop_index("inv_suggestions_open")

    op.drop_table("inv_suggestions")
    op.drop_table("inv_stock")
    op.drop_table("inv_skus")
    op.drop_table("inv_rfid_zones")
    op.drop_table("inv_pick_lists")
    with op.batch_alter_table("inv_ledger", schema=None) as batch_op:
        batch_op.drop_index("inv_ledger_by_time")
        batch_op.drop_index("inv_ledger_by_sku")

    op.drop_table("inv_ledger")
    op.drop_table("inv_forecasts")
    with op.batch_alter_table("inv_demand", schema=None) as batch_op:
        batch_op.drop_index("inv_demand_open")

    op.drop_table("inv_demand")
    op.drop_table("auth_users")
    with op.batch_alter_table("auth_login_failures", schema=None) as batch_op:
        batch_op.drop_index("auth_login_failures_by_key")

    op.drop_table("auth_login_failures")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index("audit_log_by_time")
        batch_op.drop_index("audit_log_by_actor")

    op.drop_table("audit_log")
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_index(
            "alerts_one_active",
            sqlite_where=sa.text("state = 'active'"),
            postgresql_where=sa.text("state = 'active'"),
        )
        batch_op.drop_index("alerts_by_time")
        batch_op.drop_index("alerts_by_state")
        batch_op.drop_index("alerts_by_source")
        batch_op.drop_index("alerts_by_owner")

    op.drop_table("alerts")

"""indexes for the stock and movements of one SKU

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inv_ledger", schema=None) as batch_op:
        batch_op.create_index("inv_ledger_by_sku_only", ["sku", "ts"], unique=False)

    with op.batch_alter_table("inv_stock", schema=None) as batch_op:
        batch_op.create_index("inv_stock_by_sku", ["sku", "site"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("inv_stock", schema=None) as batch_op:
        batch_op.drop_index("inv_stock_by_sku")

    with op.batch_alter_table("inv_ledger", schema=None) as batch_op:
        batch_op.drop_index("inv_ledger_by_sku_only")

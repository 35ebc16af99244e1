"""The per-component SQLite scripts that built the schema before Alembic.

A database made then keeps its versions in ``schema_versions``; :func:`upgrade_legacy` runs
what it still lacks, after which it is the baseline revision's schema. Never extend these.
"""

from __future__ import annotations

import logging
import sqlite3

from core.migrations.legacy import alerts, auth, inventory, kpi, requisitions

logger = logging.getLogger(__name__)

COMPONENTS: dict[str, list[str]] = {
    "alerts": alerts.MIGRATIONS,
    "inventory": inventory.MIGRATIONS,
    "auth": auth.MIGRATIONS,
    "kpi": kpi.MIGRATIONS,
    "requisitions": requisitions.MIGRATIONS,
}


def upgrade_legacy(conn: sqlite3.Connection) -> None:
    """Run the legacy scripts a pre-Alembic database lacks (nothing on any other database)."""
    has_versions = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_versions'"
    ).fetchone()
    if has_versions is None:
        return
    rows = conn.execute("SELECT component, version FROM schema_versions").fetchall()
    current = {str(r[0]): int(r[1]) for r in rows}
    for component, migrations in COMPONENTS.items():
        done = current.get(component, 0)
        for version, script in enumerate(migrations[done:], start=done + 1):
            logger.info("applying legacy %s schema script %d", component, version)
            conn.executescript(
                f"BEGIN;\n{script}\n"
                "INSERT INTO schema_versions (component, version)"
                f" VALUES ('{component}', {version})"
                " ON CONFLICT (component) DO UPDATE SET version = excluded.version;\nCOMMIT;"
            )

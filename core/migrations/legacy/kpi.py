"""Schema of the KPI snapshots the rules compute and the API serves (component ``kpi``).

Kept to bring pre-Alembic databases up to the baseline; never edit.
"""

MIGRATIONS: list[str] = [
    # 1: one row per site, period and time: the figures as JSON (their model is core.kpi)
    """
    CREATE TABLE kpi_snapshots (
        site TEXT NOT NULL,
        period TEXT NOT NULL CHECK (period IN ('rolling', 'day')),
        at INTEGER NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (site, period, at)
    );
    """,
]

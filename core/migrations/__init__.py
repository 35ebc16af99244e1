"""Schema migrations of the relational store, by Alembic: revisions in ``versions/``, the
machinery in :mod:`core.migrations.run` (loaded only when a database is behind)."""

HEAD = "0002"
"""The newest revision (a unit test checks it against the scripts)."""

BASELINE = "0001"
"""The revision whose schema the last legacy scripts built."""

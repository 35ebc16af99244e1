"""The relational schema: one set of tables for SQLite and PostgreSQL."""

from core.schema.tables import metadata

__all__ = ["metadata"]

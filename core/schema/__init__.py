"""Relational schema, one ordered migration list per component."""

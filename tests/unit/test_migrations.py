"""The relational schema on both engines: Alembic's revisions build exactly the tables of
``core.schema``, a pre-Alembic SQLite file joins at the baseline, processes starting together
migrate once, and the one SQL the stores speak means the same on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from core import db
from core.migrations import BASELINE, HEAD
from core.migrations.legacy import COMPONENTS
from core.migrations.run import config
from core.schema import metadata


def _differences(target: db.Target) -> list[object]:
    engine = create_engine(target.sqlalchemy_url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def _default(text: str | None) -> object:
    if text is None:
        return None
    text = text.strip("()")
    try:
        return float(text)
    except ValueError:
        return text


def _shape(path: Path) -> dict[str, object]:
    """Tables, columns (with NOT NULL and default), keys and indexes, as SQLite keeps them;
    constraints by their columns, since SQLite names unnamed ones itself."""
    conn = sqlite3.connect(path)
    try:
        shape: dict[str, object] = {}
        tables = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        for (table,) in tables:
            columns = sorted(
                (name, bool(notnull or pk), _default(default))
                for _, name, _, notnull, default, pk in conn.execute(f"PRAGMA table_info({table})")
            )
            keys = sorted(
                (r[3], r[2], r[4], r[6]) for r in conn.execute(f"PRAGMA foreign_key_list({table})")
            )
            indexes = set()
            for _, name, unique, origin, partial in conn.execute(f"PRAGMA index_list({table})"):
                cols = tuple(r[2] for r in conn.execute(f"PRAGMA index_info({name})"))
                indexes.add((name if origin == "c" else origin, cols, unique, partial))
            shape[table] = (columns, keys, indexes)
        return shape
    finally:
        conn.close()


def test_head_names_the_newest_revision_and_the_baseline_starts_the_chain() -> None:
    scripts = ScriptDirectory.from_config(config())
    assert scripts.get_current_head() == HEAD
    assert scripts.get_revision(BASELINE).down_revision is None


def test_the_revisions_build_exactly_the_declared_schema(database: db.Target) -> None:
    conn = db.connect(database)
    try:
        assert db.schema_revision(conn) == HEAD
    finally:
        conn.close()
    assert _differences(database) == []


def test_connecting_again_leaves_a_current_database_as_it_is(database: db.Target) -> None:
    first = db.connect(database)
    first.execute("INSERT INTO robot_pauses (channel, paused_until) VALUES (?, ?)", ("robot", 12.5))
    first.close()
    again = db.connect(database)
    try:
        assert db.schema_revision(again) == HEAD
        rows = again.execute("SELECT channel, paused_until FROM robot_pauses").fetchall()
        assert [tuple(r) for r in rows] == [("robot", 12.5)]
    finally:
        again.close()


def test_processes_starting_together_migrate_a_new_database_once(tmp_path: Path) -> None:
    target = db.Target.parse(tmp_path / "new.db")
    revisions: list[str | None] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            conn = db.connect(target)
            revisions.append(db.schema_revision(conn))
            conn.close()
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert revisions == [HEAD] * 4
    assert _differences(target) == []


def _legacy_database(path: Path) -> None:
    """A SQLite file as the per-component scripts left it before Alembic."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE schema_versions (component TEXT PRIMARY KEY, version INTEGER)")
    for component, scripts in COMPONENTS.items():
        for version, script in enumerate(scripts, start=1):
            conn.executescript(f"BEGIN;\n{script}\nCOMMIT;")
            conn.execute(
                "INSERT INTO schema_versions VALUES (?, ?)"
                " ON CONFLICT (component) DO UPDATE SET version = excluded.version",
                (component, version),
            )
    conn.execute(
        "INSERT INTO inv_skus (sku, name, created_at, updated_at) VALUES ('TEA', 'tea', 1, 1)"
    )
    conn.close()


def test_a_pre_alembic_sqlite_file_joins_at_the_baseline_and_keeps_its_rows(
    tmp_path: Path,
) -> None:
    path = tmp_path / "legacy.db"
    _legacy_database(path)
    conn = db.connect(path)
    try:
        assert db.schema_revision(conn) == HEAD
        tables = {str(r[0]) for r in conn.execute("SELECT name FROM sqlite_master")}
        assert "schema_versions" not in tables
        assert set(metadata.tables) <= tables
        assert [tuple(r) for r in conn.execute("SELECT sku, name FROM inv_skus")] == [
            ("TEA", "tea")
        ]
    finally:
        conn.close()
    # The same tables, columns, keys and indexes as a new database: only the names SQLite
    # gives unnamed constraints and the legacy spelling of the types differ.
    fresh = tmp_path / "fresh.db"
    db.connect(fresh).close()
    assert _shape(path) == _shape(fresh)


def test_a_database_migrated_by_a_newer_version_is_refused_with_its_revision(
    database: db.Target,
) -> None:
    conn = db.connect(database)
    conn.execute("UPDATE alembic_version SET version_num = ?", ("9999",))
    conn.close()
    with pytest.raises(db.DatabaseError, match="schema revision 9999"):
        db.connect(database)


def test_placeholders_and_percent_signs_mean_the_same_on_both_engines(
    database: db.Target,
) -> None:
    conn = db.connect(database)
    try:
        row = conn.execute("SELECT '50%' || ?, '?', ? + 1", ("x", 41)).fetchone()
        assert (row[0], row[1], row[2]) == ("50%x", "?", 42)
        assert dict(conn.execute("SELECT 1 AS one, 'b' AS two").fetchone()) == {
            "one": 1,
            "two": "b",
        }
    finally:
        conn.close()


def test_greatest_and_least_skip_nulls_on_both_engines(database: db.Target) -> None:
    conn = db.connect(database)
    try:
        row = conn.execute(
            "SELECT GREATEST(1, NULL, 3), LEAST(NULL, 2.5, 7), GREATEST(CAST(NULL AS INTEGER))"
        ).fetchone()
        assert tuple(row) == (3, 2.5, None)
    finally:
        conn.close()


def test_sums_of_integers_are_floats_and_a_broken_constraint_is_an_integrity_error(
    database: db.Target,
) -> None:
    conn = db.connect(database)
    try:
        conn.executemany(
            "INSERT INTO robot_sends (channel, sent_at) VALUES (?, ?)",
            [("a", 1.0), ("a", 2.0)],
        )
        total = conn.execute("SELECT SUM(reminders) + 0.5 FROM alerts").fetchone()[0]
        assert total is None
        conn.execute("INSERT INTO inv_skus (sku, created_at, updated_at) VALUES ('TEA', 1, 1)")
        summed = conn.execute("SELECT SUM(created_at) FROM inv_skus").fetchone()[0]
        assert summed == 1
        assert isinstance(summed, int | float)
        with pytest.raises(db.IntegrityError):
            conn.execute("INSERT INTO inv_skus (sku, created_at, updated_at) VALUES ('TEA', 2, 2)")
    finally:
        conn.close()


def test_a_write_transaction_rolls_back_as_one(database: db.Target) -> None:
    conn = db.connect(database)
    try:
        insert = "INSERT INTO inv_skus (sku, created_at, updated_at) VALUES ('A', 1, 1)"
        with pytest.raises(db.IntegrityError), db.write_transaction(conn):  # noqa: PT012
            conn.execute(insert)
            conn.execute(insert)
        assert not conn.in_transaction
        assert conn.execute("SELECT COUNT(*) FROM inv_skus").fetchone()[0] == 0
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("where", "engine", "path", "shown"),
    [
        ("sqlite:////srv/ss/a.db", db.Engine.SQLITE, Path("/srv/ss/a.db"), "/srv/ss/a.db"),
        (Path("/srv/ss/b.db"), db.Engine.SQLITE, Path("/srv/ss/b.db"), "/srv/ss/b.db"),
        ("/srv/ss/c.db", db.Engine.SQLITE, Path("/srv/ss/c.db"), "/srv/ss/c.db"),
        (
            "postgresql://ss:s3cret@db.example:5433/stock",
            db.Engine.POSTGRESQL,
            None,
            "postgresql://ss:***@db.example:5433/stock",
        ),
        (
            "postgresql+psycopg://ss@db/stock",
            db.Engine.POSTGRESQL,
            None,
            "postgresql://ss@db/stock",
        ),
    ],
)
def test_a_target_is_named_by_url_or_path_and_shown_without_its_password(
    where: str | Path, engine: db.Engine, path: Path | None, shown: str
) -> None:
    target = db.Target.parse(where)
    assert (target.engine, target.path, str(target)) == (engine, path, shown)


def test_a_relative_sqlite_url_is_relative_to_the_working_directory() -> None:
    assert db.Target.parse("sqlite:///var/ss.db").path == Path.cwd() / "var" / "ss.db"


@pytest.mark.parametrize("where", ["mysql://root@localhost/ss", "sqlite://", "sqlite:/x.db"])
def test_an_unknown_database_url_is_refused(where: str) -> None:
    with pytest.raises(db.DatabaseError, match="sqlite:///"):
        db.Target.parse(where)


def test_a_pool_lends_connections_again_and_rolls_back_what_a_use_left_open(
    database: db.Target,
) -> None:
    pool = db.ConnectionPool(database, max_size=1)
    try:
        with pool.connection() as conn:
            conn.begin_write()
            conn.execute("INSERT INTO robot_pauses (channel, paused_until) VALUES ('r', 1)")
        with pool.connection() as conn:
            assert not conn.in_transaction
            assert conn.execute("SELECT COUNT(*) FROM robot_pauses").fetchone()[0] == 0
            assert db.schema_revision(conn) == HEAD
        if database.engine is db.Engine.POSTGRESQL:
            backends = set()
            for _ in range(3):
                with pool.connection() as conn:
                    backends.add(conn.execute("SELECT pg_backend_pid()").fetchone()[0])
            assert len(backends) == 1  # the one connection of the pool, lent three times
    finally:
        pool.close()


def test_a_connection_lent_on_use_is_taken_by_its_first_statement_and_given_back(
    database: db.Target,
) -> None:
    pool = db.ConnectionPool(database, max_size=1)
    try:
        lent = pool.lend_on_use()
        assert not lent.taken
        assert not lent.in_transaction
        lent.begin_write()
        lent.execute("INSERT INTO robot_pauses (channel, paused_until) VALUES ('r', 1)")
        assert lent.taken
        assert lent.in_transaction
        lent.release()  # rolls the open transaction back and gives the connection back
        assert not lent.taken
        assert not lent.in_transaction
        # The pool's only connection is free again, and the insert is gone.
        with pool.connection() as conn:
            assert conn.execute("SELECT COUNT(*) FROM robot_pauses").fetchone()[0] == 0
        # Used again after its release, it takes a connection again.
        assert lent.execute("SELECT COUNT(*) FROM robot_pauses").fetchone()[0] == 0
        lent.executemany(
            "INSERT INTO robot_pauses (channel, paused_until) VALUES (?, ?)", [("s", 2), ("t", 3)]
        )
        assert lent.execute("SELECT COUNT(*) FROM robot_pauses").fetchone()[0] == 2
        lent.close()
        assert not lent.taken
    finally:
        pool.close()


@pytest.mark.parametrize("check_idle_s", [0.0, 3600.0])
def test_a_pool_checks_a_connection_idle_past_the_bound_before_lending_it(
    database: db.Target, check_idle_s: float
) -> None:
    if database.engine is not db.Engine.POSTGRESQL:
        pytest.skip("a SQLite pool opens a connection per use")
    pool = db.ConnectionPool(database, max_size=1, check_idle_s=check_idle_s)
    try:
        with pool.connection() as conn:
            first = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        killer = db.connect(database)
        try:
            # It returns once the backend has exited.
            killer.execute("SELECT pg_terminate_backend(?, 10000)", (first,))
        finally:
            killer.close()
        if check_idle_s == 0.0:
            # Idle for at least the bound: checked, found dead and replaced before lending.
            with pool.connection() as conn:
                assert conn.execute("SELECT pg_backend_pid()").fetchone()[0] != first
        else:
            # Used moments ago: lent unchecked; its failure is the request's, and the pool
            # replaces the broken connection for the next one.
            with pytest.raises(db.DatabaseError), pool.connection() as conn:
                conn.execute("SELECT 1")
            with pool.connection() as conn:
                assert conn.execute("SELECT pg_backend_pid()").fetchone()[0] != first
    finally:
        pool.close()


def test_a_targets_repr_never_shows_its_password() -> None:
    target = db.Target.parse("postgresql://ss:s3cret@db.example/stock")
    assert "s3cret" not in repr(target)
    assert "s3cret" not in str(target)

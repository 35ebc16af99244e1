"""Relational store: SQLite (embedded, WAL) by default, or PostgreSQL; one schema for both.

``STOCKSENSE_DATABASE_URL`` names the database (``sqlite:///path`` or ``postgresql://...``);
without it the SQLite file in the data dir is used. The schema lives in ``core.schema`` and
is migrated by Alembic (``core/migrations``): the first connection of a process to a database
whose revision is behind brings it to the head, under a lock, so processes starting together
migrate it once.

Stores speak one SQL: ``?`` placeholders and the subset both engines share (``ON CONFLICT``,
``RETURNING``, ``COALESCE``, ``CASE``, and ``GREATEST``/``LEAST``, which SQLite connections
are given). :class:`Connection` runs it on either engine.
"""

from __future__ import annotations

import functools
import logging
import re
import sqlite3
import time
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast
from urllib.parse import urlsplit, urlunsplit

from core.errors import StoreError

if TYPE_CHECKING:
    import psycopg

logger = logging.getLogger(__name__)

Params = Sequence[object]

# Every write transaction on PostgreSQL takes this transaction-scoped advisory lock: one writer
# at a time, as SQLite's BEGIN IMMEDIATE gives, so each store's read-then-write stays correct
# on both engines. The key is an arbitrary constant of this project.
WRITE_LOCK_KEY = 0x53544B53  # "STKS"
MIGRATION_LOCK_KEY = WRITE_LOCK_KEY + 1


class DatabaseError(StoreError):
    """The relational store refused or failed a statement, or cannot be reached."""


class IntegrityError(DatabaseError):
    """A constraint (unique key, foreign key, check) refused a change."""


class Engine(StrEnum):
    """The database engines the relational store runs on."""

    SQLITE = "sqlite"
    POSTGRESQL = "postgresql"


@dataclass(frozen=True)
class Target:
    """Where the relational store lives: a SQLite file or a PostgreSQL database."""

    engine: Engine
    url: str = field(repr=False)  # may hold a password
    path: Path | None = None

    @classmethod
    def parse(cls, where: str | Path | Target) -> Target:
        """A target from a URL (``sqlite:///file``, ``postgresql://...``) or a SQLite path."""
        if isinstance(where, Target):
            return where
        if isinstance(where, Path):
            return cls._sqlite(where)
        scheme, _, rest = where.partition("://")
        if "://" not in where:
            if re.match(r"[A-Za-z][A-Za-z0-9+]*:", where):
                raise DatabaseError(
                    f"a database URL is scheme://..., not {redacted(where)!r}:"
                    " use sqlite:///path or postgresql://"
                )
            return cls._sqlite(Path(where))
        scheme = scheme.split("+", 1)[0].lower()
        if scheme == "sqlite":
            # SQLAlchemy's spelling: sqlite:///relative.db, sqlite:////absolute.db
            if not rest.startswith("/") or rest == "/":
                raise DatabaseError(f"a SQLite URL names a file: sqlite:///path, not {where!r}")
            return cls._sqlite(Path(rest[1:]))
        if scheme in ("postgresql", "postgres"):
            return cls(Engine.POSTGRESQL, "postgresql://" + rest)
        raise DatabaseError(
            f"unsupported database URL {redacted(where)!r}: use sqlite:///path or postgresql://"
        )

    @classmethod
    def _sqlite(cls, path: Path) -> Target:
        path = path.expanduser().absolute()
        return cls(Engine.SQLITE, f"sqlite:///{path}", path)

    @property
    def sqlalchemy_url(self) -> str:
        """The URL in SQLAlchemy's spelling (the psycopg 3 driver for PostgreSQL)."""
        if self.engine is Engine.POSTGRESQL:
            return "postgresql+psycopg://" + self.url.partition("://")[2]
        return self.url

    def __str__(self) -> str:
        return redacted(self.url) if self.path is None else str(self.path)


def redacted(url: str) -> str:
    """``url`` with its password masked, for logs and health reports."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


class Row(Protocol):
    """A result row: by position or by column name, and ``dict(row)``."""

    def __getitem__(self, key: int | str, /) -> Any: ...
    def keys(self) -> list[str]: ...
    def __iter__(self) -> Iterator[Any]: ...
    def __len__(self) -> int: ...


class Cursor(Protocol):
    """The result of one statement."""

    @property
    def rowcount(self) -> int: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def __iter__(self) -> Iterator[Any]: ...


class Connection(ABC):
    """One connection to the relational store, on either engine, in autocommit mode.

    Statements outside :func:`write_transaction` commit one by one.
    """

    def __init__(self, target: Target, *, readonly: bool = False) -> None:
        self.target = target
        self.engine = target.engine
        self.readonly = readonly

    @abstractmethod
    def execute(self, sql: str, params: Params = ()) -> Cursor:
        """Run one statement with ``?`` placeholders."""

    @abstractmethod
    def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        """Run one statement for each parameter row."""

    def insert(self, sql: str, params: Params = ()) -> int:
        """Run one ``INSERT`` into a table with an ``id`` key; returns the new row's id."""
        row = self.execute(f"{sql} RETURNING id", params).fetchone()
        return int(row[0])

    @property
    @abstractmethod
    def in_transaction(self) -> bool:
        """Whether an explicit transaction is open."""

    @abstractmethod
    def begin_write(self) -> None:
        """Open a write transaction that no other writer can interleave with."""

    @abstractmethod
    def close(self) -> None:
        """Close the connection."""

    def data_version(self) -> int | None:
        """A number that changes when another connection commits, or None if the engine has
        no cheap way to tell (then every look must read)."""
        return None


class SqliteConnection(Connection):
    """A SQLite connection (WAL, foreign keys on, 30 s busy timeout)."""

    def __init__(self, target: Target, *, readonly: bool = False) -> None:
        super().__init__(target, readonly=readonly)
        assert target.path is not None
        if readonly:
            raw = sqlite3.connect(
                f"{target.path.as_uri()}?mode=ro", uri=True, timeout=30, isolation_level=None
            )
        else:
            target.path.parent.mkdir(parents=True, exist_ok=True)
            raw = sqlite3.connect(
                target.path, isolation_level=None, check_same_thread=False, timeout=30
            )
        raw.row_factory = sqlite3.Row
        for name, pick in (("greatest", max), ("least", min)):
            function = functools.partial(_pick_non_null, pick)
            raw.create_function(name, -1, function, deterministic=True)
        if not readonly:
            raw.execute("PRAGMA journal_mode=WAL")
            raw.execute("PRAGMA synchronous=NORMAL")
        raw.execute("PRAGMA foreign_keys=ON")
        self.raw = raw

    def execute(self, sql: str, params: Params = ()) -> Cursor:
        try:
            return self.raw.execute(sql, params)
        except sqlite3.IntegrityError as exc:
            raise IntegrityError(str(exc)) from exc
        except sqlite3.Error as exc:
            raise DatabaseError(str(exc)) from exc

    def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        try:
            self.raw.executemany(sql, rows)
        except sqlite3.IntegrityError as exc:
            raise IntegrityError(str(exc)) from exc
        except sqlite3.Error as exc:
            raise DatabaseError(str(exc)) from exc

    @property
    def in_transaction(self) -> bool:
        return self.raw.in_transaction

    def begin_write(self) -> None:
        self.execute("BEGIN IMMEDIATE")

    def close(self) -> None:
        self.raw.close()

    def data_version(self) -> int | None:
        return int(self.raw.execute("PRAGMA data_version").fetchone()[0])


def _pick_non_null(pick: Callable[[list[Any]], Any], *values: Any) -> Any:
    """PostgreSQL's GREATEST and LEAST: NULLs are ignored, and only NULLs give NULL."""
    present = [v for v in values if v is not None]
    return pick(present) if present else None


class PgRow:
    """A PostgreSQL result row with the access of ``sqlite3.Row``."""

    __slots__ = ("_names", "_values")

    def __init__(self, names: dict[str, int], values: Sequence[Any]) -> None:
        self._names = names
        self._values = values

    def __getitem__(self, key: int | str, /) -> Any:
        if isinstance(key, str):
            return self._values[self._names[key]]
        return self._values[key]

    def keys(self) -> list[str]:
        return list(self._names)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"PgRow({dict(zip(self._names, self._values, strict=True))!r})"


class PgConnection(Connection):
    """A PostgreSQL connection (psycopg 3, autocommit, numeric read as float)."""

    def __init__(
        self,
        target: Target,
        *,
        readonly: bool = False,
        pooled: psycopg.Connection[PgRow] | None = None,
    ) -> None:
        """A new connection, or one lent by a :class:`ConnectionPool` (``pooled``), which
        goes back to the pool instead of being closed."""
        super().__init__(target, readonly=readonly)
        import psycopg  # noqa: PLC0415 - only deployments on PostgreSQL need the driver

        self._psycopg = psycopg
        self._owned = pooled is None
        if pooled is not None:
            self.raw: psycopg.Connection[PgRow] = pooled
            return
        try:
            raw = psycopg.connect(target.url, autocommit=True, row_factory=_pg_rows)
        except psycopg.Error as exc:
            raise DatabaseError(f"{target}: {exc}") from exc
        _configure_pg(raw)
        if readonly:
            raw.execute("SET default_transaction_read_only = on")
        self.raw = raw

    def execute(self, sql: str, params: Params = ()) -> Cursor:
        try:
            return cast(Cursor, self.raw.execute(_pyformat(sql), params))
        except self._psycopg.IntegrityError as exc:
            raise IntegrityError(str(exc)) from exc
        except self._psycopg.Error as exc:
            raise DatabaseError(str(exc)) from exc

    def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        try:
            with self.raw.cursor() as cur:
                cur.executemany(_pyformat(sql), rows)
        except self._psycopg.IntegrityError as exc:
            raise IntegrityError(str(exc)) from exc
        except self._psycopg.Error as exc:
            raise DatabaseError(str(exc)) from exc

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status != self._psycopg.pq.TransactionStatus.IDLE

    def begin_write(self) -> None:
        self.execute("BEGIN")
        self.execute("SELECT pg_advisory_xact_lock(?)", (WRITE_LOCK_KEY,))

    def close(self) -> None:
        if self._owned:
            self.raw.close()

    def __del__(self) -> None:
        # As a dropped sqlite3 connection does: close quietly (psycopg would warn).
        raw = getattr(self, "raw", None)
        if getattr(self, "_owned", False) and raw is not None and not raw.closed:
            raw.close()


def _configure_pg(raw: psycopg.Connection[Any]) -> None:
    from psycopg.types.numeric import FloatLoader  # noqa: PLC0415

    # SUM and AVG of integers are numeric: read them as the floats SQLite gives.
    raw.adapters.register_loader("numeric", FloatLoader)


def _pg_rows(cursor: psycopg.Cursor[Any]) -> Any:
    names = {col.name: i for i, col in enumerate(cursor.description or ())}
    return functools.partial(PgRow, names)


@functools.lru_cache(maxsize=2048)
def _pyformat(sql: str) -> str:
    """``sql`` with ``?`` placeholders in psycopg's ``%s`` style (``%`` doubled), string
    literals left as they are."""
    out: list[str] = []
    quoted = False
    for char in sql:
        if char == "'":
            quoted = not quoted
        out.append("%%" if char == "%" else "%s" if char == "?" and not quoted else char)
    return "".join(out)


def connect(where: str | Path | Target) -> Connection:
    """Open a connection to ``where``, bringing its schema to the current revision first."""
    target = Target.parse(where)
    conn = _open(target)
    try:
        _ensure_migrated(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def connect_readonly(where: str | Path | Target) -> Connection:
    """A read-only connection, for a worker thread of its own.

    It sees what other connections have committed and never takes the write lock, so a long
    read in a worker does not hold up the writers.
    """
    return _open(Target.parse(where), readonly=True)


def _open(target: Target, *, readonly: bool = False) -> Connection:
    if target.engine is Engine.POSTGRESQL:
        return PgConnection(target, readonly=readonly)
    try:
        return SqliteConnection(target, readonly=readonly)
    except sqlite3.Error as exc:
        raise DatabaseError(f"{target}: {exc}") from exc


def _ensure_migrated(conn: Connection) -> None:
    from core.migrations import HEAD  # noqa: PLC0415 - the revisions need this module

    if schema_revision(conn) == HEAD:
        return
    from core.migrations.run import upgrade  # noqa: PLC0415 - Alembic loads only when due

    upgrade(conn)


class ConnectionPool:
    """Connections to one database kept open and lent out, for a process serving many short
    requests (the API): a new PostgreSQL connection costs the server a process and several
    milliseconds. A SQLite connection costs next to nothing: one is opened per use.

    The database is migrated once, when the pool is made.
    """

    def __init__(
        self, where: str | Path | Target, *, max_size: int = 10, check_idle_s: float = 5.0
    ) -> None:
        self.target = Target.parse(where)
        connect(self.target).close()
        self._pool: Any = None
        self._check_idle_s = check_idle_s
        self._returned_at: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()
        if self.target.engine is Engine.POSTGRESQL:
            from psycopg_pool import ConnectionPool as PsycopgPool  # noqa: PLC0415

            self._pool = PsycopgPool(
                self.target.url,
                min_size=1,
                max_size=max_size,
                kwargs={"autocommit": True, "row_factory": _pg_rows},
                configure=_configure_pg,
                check=self._check,
                reset=self._returned,
                name="stocksense",
                open=True,
            )

    def _returned(self, raw: psycopg.Connection[Any]) -> None:
        self._returned_at[raw] = time.monotonic()

    def _check(self, raw: psycopg.Connection[Any]) -> None:
        """Test a connection idle for ``check_idle_s`` or more with one round trip before
        lending it, so one the server dropped meanwhile (a restart, a failover) is replaced
        instead of failing the request. One in use moments ago is lent as it is: a check on
        every lending would double the round trips of a one-query request."""
        from psycopg_pool import ConnectionPool as PsycopgPool  # noqa: PLC0415

        returned = self._returned_at.get(raw)
        if returned is None or time.monotonic() - returned >= self._check_idle_s:
            PsycopgPool.check_connection(raw)

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """A connection for one unit of work; an open transaction is rolled back after it."""
        if self._pool is None:
            conn = _open(self.target)
            try:
                yield conn
            finally:
                conn.close()
            return
        from psycopg_pool import PoolTimeout  # noqa: PLC0415

        try:
            with self._pool.connection() as raw:
                conn = PgConnection(self.target, pooled=raw)
                try:
                    yield conn
                finally:
                    # The pool would commit it; a SQLite connection closed with one open
                    # rolls it back. Both engines alike: back.
                    if not raw.closed and conn.in_transaction:
                        conn.execute("ROLLBACK")
        except PoolTimeout as exc:
            raise DatabaseError(f"{self.target}: no connection free within the timeout") from exc

    def lend_on_use(self) -> LentOnUse:
        """A connection taken from the pool on its first statement (see :class:`LentOnUse`)."""
        return LentOnUse(self)

    def close(self) -> None:
        """Close every connection of the pool."""
        if self._pool is not None:
            self._pool.close()


class LentOnUse(Connection):
    """A pool's connection taken on the first statement, in the thread that runs it, and given
    back by :meth:`release` (or ``close``).

    An API request runs its sign-in check and its route in two worker threads: this hands one
    connection from the first to the second without a hand-over of its own, and a request that
    never reaches the store takes none. Used by one thread at a time.
    """

    def __init__(self, pool: ConnectionPool) -> None:
        super().__init__(pool.target)
        self._pool = pool
        self._lease: ExitStack | None = None
        self._conn: Connection | None = None

    def _taken(self) -> Connection:
        if self._conn is None:
            lease = ExitStack()
            self._conn = lease.enter_context(self._pool.connection())
            self._lease = lease
        return self._conn

    def execute(self, sql: str, params: Params = ()) -> Cursor:
        return self._taken().execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        self._taken().executemany(sql, rows)

    def insert(self, sql: str, params: Params = ()) -> int:
        return self._taken().insert(sql, params)

    @property
    def in_transaction(self) -> bool:
        return self._conn is not None and self._conn.in_transaction

    def begin_write(self) -> None:
        self._taken().begin_write()

    def data_version(self) -> int | None:
        return self._taken().data_version()

    @property
    def taken(self) -> bool:
        """Whether a connection is held (then :meth:`release` gives it back)."""
        return self._conn is not None

    def release(self) -> None:
        """Give the connection back (rolling back a transaction left open); a later statement
        takes one again."""
        lease, self._lease, self._conn = self._lease, None, None
        if lease is not None:
            lease.close()

    def close(self) -> None:
        self.release()


def schema_revision(conn: Connection) -> str | None:
    """The Alembic revision the database is at (None before the first migration)."""
    try:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except DatabaseError:
        return None
    return None if row is None else str(row[0])


class SqlStore:
    """Base of the relational stores: one database connection and its write transaction.

    Stores built over the same connection share its transaction, so a change spanning them
    (a lot and its receipt, a received suggestion and its ledger row) commits as one.
    """

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    @property
    def conn(self) -> Connection:
        """The underlying connection."""
        return self._conn

    def transaction(self) -> AbstractContextManager[None]:
        """One write transaction; nested use joins the outer one."""
        return write_transaction(self._conn)


@contextmanager
def write_transaction(conn: Connection) -> Iterator[None]:
    """One write transaction on ``conn``; nested use joins the outer one."""
    if conn.in_transaction:
        yield
        return
    conn.begin_write()
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def worker_prefix(worker: str) -> str:
    """How the claims of every process of ``worker`` begin, in the queues several processes
    share (``claimed_by`` is ``worker#`` and something unique to the process)."""
    return f"{worker}#"


def claimed_by_worker(worker: str) -> tuple[str, tuple[int, str]]:
    """SQL condition and parameters: the row's ``claimed_by`` is a process of ``worker``."""
    prefix = worker_prefix(worker)
    return "substr(claimed_by, 1, ?) = ?", (len(prefix), prefix)

"""Users, roles, API tokens and console sessions, shared by the API and the ``users`` command.

Passwords and API tokens are stored only as argon2id hashes (argon2-cffi's PasswordHasher);
a token row also keeps the token's first characters in clear, so a request is checked against
one hash, not all of them. Session cookies and login failures live in the database too, so
every API process sees the same sessions and the same rate limits, across restarts.
"""

from __future__ import annotations

import builtins
import functools
import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import BaseModel

from core import db
from core.errors import AuthError

TOKEN_PREFIX_CHARS = 8
# A token's last use is recorded to the minute: an ERP polling every second would otherwise
# write (and on PostgreSQL wait for a durable commit) on every request.
TOKEN_USE_RESOLUTION_MS = 60_000

_hasher = PasswordHasher()
# An Argon2 hash or check takes 64 MiB and tens of milliseconds of a core: at most two at once
# per process, so a burst (many connections' first request with a new token, a flood of
# logins) queues for them instead of taking 64 MiB each at the same moment.
HASHING_AT_ONCE = 2
_hashing = threading.BoundedSemaphore(HASHING_AT_ONCE)


def _hash(secret: str) -> str:
    with _hashing:
        return _hasher.hash(secret)


def _matches(stored: str, secret: str) -> bool:
    """Whether ``secret`` is the one hashed in ``stored``."""
    with _hashing:
        try:
            return _hasher.verify(stored, secret)
        except (VerificationError, InvalidHashError):
            return False


@functools.cache
def _dummy_hash() -> str:
    """Compared against when the user does not exist, so an unknown name costs as much as a
    wrong password and response times do not tell which names exist. Made on first use, not at
    import: every ``stocksense`` command imports this module, and a hash costs 64 MiB."""
    return _hash(secrets.token_urlsafe(16))


def _new_token() -> str:
    """43 URL-safe characters (256 random bits) that never start with ``-``.

    A token's first characters are how ``stocksense users revoke PREFIX`` names it, and a prefix
    starting with ``-`` would be read as an option.
    """
    while True:
        token = secrets.token_urlsafe(32)
        if not token.startswith("-"):
            return token


class Role(StrEnum):
    """What a user may do; see ``PERMISSIONS`` and docs/access.md."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    BUYER = "buyer"
    APPROVER = "approver"
    ADMIN = "admin"


ALL_ROLES = frozenset(Role)

# Permission -> roles holding it. Roles are sets, not a ladder: a buyer may not ack alerts and
# an operator may not order stock; an approver (a shift or purchasing lead) may do both.
PERMISSIONS: dict[str, frozenset[Role]] = {
    "read": ALL_ROLES,
    "alerts.ack": frozenset({Role.OPERATOR, Role.APPROVER, Role.ADMIN}),
    "alerts.assign": frozenset({Role.OPERATOR, Role.APPROVER, Role.ADMIN}),
    "alerts.resolve": frozenset({Role.OPERATOR, Role.APPROVER, Role.ADMIN}),
    "silences.manage": frozenset({Role.OPERATOR, Role.APPROVER, Role.ADMIN}),
    "picks.record": frozenset({Role.OPERATOR, Role.APPROVER, Role.ADMIN}),
    "purchasing.manage": frozenset({Role.BUYER, Role.APPROVER, Role.ADMIN}),
    "requisitions.create": frozenset({Role.BUYER, Role.APPROVER, Role.ADMIN}),
    "requisitions.approve": frozenset({Role.APPROVER, Role.ADMIN}),
    "catalog.manage": frozenset({Role.ADMIN}),
    "lots.manage": frozenset({Role.ADMIN}),
    "audit.read": frozenset({Role.ADMIN}),
}


def now_ms() -> int:
    """Wall-clock time in epoch milliseconds."""
    return time.time_ns() // 1_000_000


def _digest(secret: str) -> str:
    # For session ids: 256 random bits need no slow hash, and every request looks one up.
    return hashlib.sha256(secret.encode()).hexdigest()


class User(BaseModel):
    """A login; ``sites`` empty means every site."""

    id: int
    name: str
    role: Role
    sites: tuple[str, ...]
    created_at: int


class TokenInfo(BaseModel):
    """An API token as listed (never the token itself)."""

    id: int
    user: str
    prefix: str
    label: str
    created_at: int
    last_used_at: int | None


class Principal(BaseModel):
    """Who makes a request: the user, how they proved it, and their session's CSRF token."""

    name: str
    role: Role
    sites: tuple[str, ...] = ()
    via: str  # "token", "session", or "open" when authentication is off
    csrf: str | None = None

    def may(self, permission: str) -> bool:
        """Whether the role holds ``permission``."""
        return self.role in PERMISSIONS[permission]

    @property
    def all_sites(self) -> bool:
        """Not limited to some sites."""
        return not self.sites

    def covers(self, site: str | None) -> bool:
        """Whether ``site`` is one of this user's (a record of no site only if all are)."""
        return self.all_sites or (site is not None and site in self.sites)


class TokenCache:
    """Tokens whose argon2 hash was verified in this process: token digest -> (row id, hash).

    A hit still reads the token row, so revocation and removal take effect at once; it only
    spares the slow hash on every request of a system that calls many times a minute.
    """

    def __init__(self, size: int = 1024) -> None:
        self._size = size
        self._seen: OrderedDict[str, tuple[int, str]] = OrderedDict()
        # A fixed set of locks, not one per token: keys come from callers, valid or not.
        self._stripes = [threading.Lock() for _ in range(16)]

    def verifying(self, key: str) -> threading.Lock:
        """The lock to hold while verifying the token of ``key`` (one token, one lock)."""
        return self._stripes[int(key[:8], 16) % len(self._stripes)]

    def get(self, key: str) -> tuple[int, str] | None:
        """The verified (row id, hash) for ``key``."""
        found = self._seen.get(key)
        if found is not None:
            self._seen.move_to_end(key)
        return found

    def put(self, key: str, value: tuple[int, str]) -> None:
        """Remember a verified token, forgetting the least recently used past the size."""
        self._seen[key] = value
        self._seen.move_to_end(key)
        while len(self._seen) > self._size:
            self._seen.popitem(last=False)


def _user(row: db.Row) -> User:
    sites = tuple(s for s in str(row["sites"]).split(",") if s)
    return User(
        id=row["id"], name=row["name"], role=row["role"], sites=sites, created_at=row["created_at"]
    )


class AuthStore:
    """Users, tokens, sessions and login failures over one connection."""

    def __init__(self, conn: db.Connection) -> None:
        self._conn = conn

    # -- users ------------------------------------------------------------------------------

    def add_user(
        self, name: str, role: Role, sites: Iterable[str] = (), *, password: str | None = None
    ) -> tuple[User, str]:
        """Create a user; returns it and its password (generated unless given)."""
        if self.user(name) is not None:
            raise AuthError(f"user {name!r} exists already")
        password = password or secrets.token_urlsafe(12)
        row_id = self._conn.insert(
            "INSERT INTO auth_users (name, role, sites, password_hash, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (name, role.value, ",".join(sorted(set(sites))), _hash(password), now_ms()),
        )
        user = self._user_by_id(row_id)
        assert user is not None
        return user, password

    def user(self, name: str) -> User | None:
        """One user by name."""
        row = self._conn.execute("SELECT * FROM auth_users WHERE name = ?", (name,)).fetchone()
        return None if row is None else _user(row)

    def _user_by_id(self, user_id: int) -> User | None:
        row = self._conn.execute("SELECT * FROM auth_users WHERE id = ?", (user_id,)).fetchone()
        return None if row is None else _user(row)

    def users(self) -> builtins.list[User]:
        """Every user, by name (in code point order: a PostgreSQL database's collation may
        order names otherwise than SQLite)."""
        rows = self._conn.execute("SELECT * FROM auth_users").fetchall()
        return sorted((_user(r) for r in rows), key=lambda user: user.name)

    def remove_user(self, name: str) -> User:
        """Delete a user with their tokens and sessions."""
        user = self.user(name)
        if user is None:
            raise AuthError(f"no user {name!r}")
        self._conn.execute("DELETE FROM auth_users WHERE id = ?", (user.id,))
        return user

    def check_password(self, name: str, password: str) -> User | None:
        """The user if ``password`` is theirs, else None (as slow for unknown names)."""
        row = self._conn.execute(
            "SELECT password_hash FROM auth_users WHERE name = ?", (name,)
        ).fetchone()
        stored = str(row["password_hash"]) if row is not None else _dummy_hash()
        if not _matches(stored, password):
            return None
        return self.user(name) if row is not None else None

    # -- API tokens -------------------------------------------------------------------------

    def create_token(self, name: str, label: str = "") -> tuple[TokenInfo, str]:
        """A new API token for user ``name``; the token text is returned only here."""
        user = self.user(name)
        if user is None:
            raise AuthError(f"no user {name!r}")
        token = _new_token()
        row_id = self._conn.insert(
            "INSERT INTO auth_tokens (user_id, prefix, token_hash, label, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (user.id, token[:TOKEN_PREFIX_CHARS], _hash(token), label, now_ms()),
        )
        info = next(t for t in self.tokens(name) if t.id == row_id)
        return info, token

    def tokens(self, name: str | None = None) -> builtins.list[TokenInfo]:
        """Tokens (of one user), oldest first."""
        sql = (
            "SELECT t.id, u.name AS user, t.prefix, t.label, t.created_at, t.last_used_at"
            " FROM auth_tokens t JOIN auth_users u ON u.id = t.user_id"
        )
        params: tuple[str, ...] = ()
        if name is not None:
            sql += " WHERE u.name = ?"
            params = (name,)
        rows = self._conn.execute(sql + " ORDER BY t.id", params).fetchall()
        return [TokenInfo.model_validate(dict(r)) for r in rows]

    def revoke_token(self, prefix: str) -> TokenInfo:
        """Delete the token starting with ``prefix``."""
        found = [t for t in self.tokens() if t.prefix == prefix[:TOKEN_PREFIX_CHARS]]
        if len(found) != 1:
            raise AuthError(f"no single token starts with {prefix!r}")
        self._conn.execute("DELETE FROM auth_tokens WHERE id = ?", (found[0].id,))
        return found[0]

    def principal_for_token(self, token: str, cache: TokenCache | None = None) -> Principal | None:
        """Who ``token`` belongs to, or None for an unknown or revoked token."""
        key = _digest(token)
        known = cache.get(key) if cache is not None else None
        # The token and its user in one round trip: this runs on every API request.
        rows = self._conn.execute(
            "SELECT t.id AS token_id, t.token_hash, t.last_used_at, u.*"
            " FROM auth_tokens t JOIN auth_users u ON u.id = t.user_id WHERE t.prefix = ?",
            (token[:TOKEN_PREFIX_CHARS],),
        ).fetchall()
        for row in rows:
            token_id, token_hash = int(row["token_id"]), str(row["token_hash"])
            if known is not None:
                if (token_id, token_hash) != known:
                    continue
            else:
                verified = (token_id, token_hash)
                if cache is None:
                    if not _matches(token_hash, token):
                        continue
                else:
                    # Concurrent first requests with one token: the first verifies it, the
                    # others wait for it and find it in the cache.
                    with cache.verifying(key):
                        if cache.get(key) != verified:
                            if not _matches(token_hash, token):
                                continue
                            cache.put(key, verified)
            at = now_ms()
            last_used = row["last_used_at"]
            if last_used is None or int(last_used) <= at - TOKEN_USE_RESOLUTION_MS:
                self._conn.execute(
                    "UPDATE auth_tokens SET last_used_at = ? WHERE id = ?"
                    " AND (last_used_at IS NULL OR last_used_at <= ?)",
                    (at, token_id, at - TOKEN_USE_RESOLUTION_MS),
                )
            user = _user(row)
            return Principal(name=user.name, role=user.role, sites=user.sites, via="token")
        return None

    # -- console sessions -------------------------------------------------------------------

    def open_session(self, user: User, ttl_s: float) -> tuple[str, str, int]:
        """A new session: (cookie value, CSRF token, expiry in epoch ms)."""
        at = now_ms()
        self._conn.execute("DELETE FROM auth_sessions WHERE expires_at <= ?", (at,))
        session, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        expires = at + int(ttl_s * 1000)
        self._conn.execute(
            "INSERT INTO auth_sessions (id, user_id, csrf, created_at, expires_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (_digest(session), user.id, csrf, at, expires),
        )
        return session, csrf, expires

    def principal_for_session(self, session: str) -> Principal | None:
        """Who holds the session cookie ``session``, or None when unknown or expired."""
        row = self._conn.execute(
            "SELECT user_id, csrf FROM auth_sessions WHERE id = ? AND expires_at > ?",
            (_digest(session), now_ms()),
        ).fetchone()
        if row is None:
            return None
        user = self._user_by_id(int(row["user_id"]))
        if user is None:
            return None
        return Principal(
            name=user.name, role=user.role, sites=user.sites, via="session", csrf=row["csrf"]
        )

    def close_session(self, session: str) -> None:
        """End a session (logout)."""
        self._conn.execute("DELETE FROM auth_sessions WHERE id = ?", (_digest(session),))

    # -- login rate limit -------------------------------------------------------------------

    def login_retry_after(self, keys: Iterable[str], *, limit: int, window_s: float) -> int:
        """Seconds until a login may be tried for ``keys`` (0: now)."""
        at = now_ms()
        since = at - int(window_s * 1000)
        wait_ms = 0
        for key in keys:
            rows = self._conn.execute(
                "SELECT at FROM auth_login_failures WHERE key = ? AND at > ? ORDER BY at DESC"
                " LIMIT ?",
                (key, since, limit),
            ).fetchall()
            if len(rows) >= limit:
                # Free again once the oldest of the last ``limit`` failures leaves the window.
                wait_ms = max(wait_ms, int(rows[-1]["at"]) + int(window_s * 1000) - at)
        return -(-wait_ms // 1000)

    def login_failed(self, keys: Iterable[str], *, window_s: float) -> None:
        """Count a failed login against each of ``keys``; forget failures past the window."""
        at = now_ms()
        self._conn.execute(
            "DELETE FROM auth_login_failures WHERE at <= ?", (at - int(window_s * 1000),)
        )
        self._conn.executemany(
            "INSERT INTO auth_login_failures (key, at) VALUES (?, ?)", [(k, at) for k in keys]
        )

    def login_succeeded(self, key: str) -> None:
        """Forget the failures of ``key`` (the user's name, not the address)."""
        self._conn.execute("DELETE FROM auth_login_failures WHERE key = ?", (key,))


def same_secret(given: str | None, expected: str | None) -> bool:
    """Constant-time comparison of two secrets; False when either is missing."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())

"""``stocksense users``: API and console logins, their roles, sites and API tokens.

Passwords and tokens are generated, printed once and stored only as argon2 hashes; every
change is written to the audit log as made by ``cli:<account>``.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import TYPE_CHECKING

from core.errors import AuthError
from core.identifiers import NAME_RE, USER_NAME_RE

if TYPE_CHECKING:
    from core.auth import AuthStore

# Every command builds this parser: the roles are named here, not imported with the password
# hashing and the database (what ``stocksense edge`` on a small gateway need not load).
ROLES = ("viewer", "operator", "buyer", "approver", "admin")


def _sites(text: str) -> list[str]:
    sites = [s.strip() for s in text.split(",") if s.strip()]
    for site in sites:
        if not NAME_RE.fullmatch(site):
            raise argparse.ArgumentTypeError(f"{site!r} is not a site id")
    return sites


def _name(text: str) -> str:
    if not USER_NAME_RE.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a user name (1-64 letters, digits, '_', '.', '@', '-')"
        )
    return text


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """The ``add``, ``token``, ``revoke``, ``list`` and ``remove`` actions."""
    actions = parser.add_subparsers(
        dest="action", required=True, metavar="action", help="what to do"
    )
    add = actions.add_parser("add", help="create a user; prints a generated password once")
    add.add_argument("name", type=_name, help="login name, e.g. li.wei or erp-sync")
    add.add_argument(
        "--role",
        required=True,
        choices=ROLES,
        help="what the user may do (docs/access.md)",
    )
    add.add_argument(
        "--sites",
        type=_sites,
        default=[],
        metavar="wh1,wh2",
        help="only these sites (default: all sites)",
    )
    token = actions.add_parser("token", help="make an API token for a user; prints it once")
    token.add_argument("name", type=_name)
    token.add_argument("--label", default="", help="what the token is for, e.g. the ERP host")
    revoke = actions.add_parser("revoke", help="delete one API token, by its prefix")
    revoke.add_argument("prefix", help="the first 8 characters of the token, as listed")
    actions.add_parser("list", help="users, roles, sites and token prefixes")
    remove = actions.add_parser("remove", help="delete a user with their tokens and sessions")
    remove.add_argument("name", type=_name)


def command(args: argparse.Namespace) -> int:
    """Run ``stocksense users ...``; a refused change prints one line and exits 1."""
    from core import db  # noqa: PLC0415
    from core.audit import AuditLog  # noqa: PLC0415
    from core.auth import AuthStore, Role  # noqa: PLC0415
    from core.settings import load_settings  # noqa: PLC0415

    settings = load_settings()
    conn = db.connect(settings.database)
    try:
        store, audit = AuthStore(conn), AuditLog(conn)
        actor = f"cli:{getpass.getuser()}"

        def record(action: str, target: str, before: object = None, after: object = None) -> None:
            audit.record(actor=actor, role=None, via="cli", action=action, target=target,
                         before=before, after=after)  # fmt: skip

        try:
            if args.action == "add":
                user, password = store.add_user(args.name, Role(args.role), args.sites)
                record("user.add", f"user {user.name}", after=user)
                sites = ",".join(user.sites) or "all sites"
                print(  # noqa: T201 - the password is shown once, on purpose
                    f"added {user.name} ({user.role}, {sites}); password (shown once): {password}"
                )
            elif args.action == "token":
                info, token = store.create_token(args.name, args.label)
                record("token.create", f"token {info.prefix}", after=info)
                print(f"API token of {info.user} (shown once): {token}")  # noqa: T201
            elif args.action == "revoke":
                info = store.revoke_token(args.prefix)
                record("token.revoke", f"token {info.prefix}", before=info)
                print(f"revoked token {info.prefix} of {info.user}")  # noqa: T201
            elif args.action == "remove":
                user = store.remove_user(args.name)
                record("user.remove", f"user {user.name}", before=user)
                print(f"removed {user.name} with their tokens and sessions")  # noqa: T201
            else:
                _list(store)
        except AuthError as exc:
            print(f"stocksense users {args.action}: {exc}", file=sys.stderr)  # noqa: T201
            return 1
    finally:
        conn.close()
    return 0


def _list(store: AuthStore) -> None:
    tokens = store.tokens()
    for user in store.users():
        prefixes = ", ".join(t.prefix for t in tokens if t.user == user.name) or "-"
        sites = ",".join(user.sites) or "all"
        print(f"{user.name}\t{user.role}\tsites {sites}\ttokens {prefixes}")  # noqa: T201

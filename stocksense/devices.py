"""``stocksense devices``: enrol and revoke devices on a Mosquitto broker.

Each device gets a generated password (hashed by ``mosquitto_passwd``, the broker's own tool)
and an ACL block of its own that lets it write its own topics and nothing else::

    # stocksense device wh1/temp/probe-3
    user wh1/temp/probe-3
    topic write stocksense/v1/wh1/temp/probe-3/+

Explicit blocks rather than a ``pattern`` ACL: a pattern substitutes ``%u`` as one topic level,
so ``pattern write stocksense/v1/+/+/%u/#`` would let a device publish under any site or kind
with its own name. Both files are replaced atomically (written beside the original, then
renamed) keeping their owner and mode; new files get 0600 (passwords) and 0640 (ACL). The
broker applies the change on SIGHUP.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import logging
import os
import pwd
import secrets
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from core import topics
from core.device_registry import enrolled_devices, topic_grant, username
from core.errors import StockSenseError, TopicError

logger = logging.getLogger(__name__)

DEFAULT_PASSWORD_FILE = Path("/etc/mosquitto/stocksense/passwd")
DEFAULT_ACL_FILE = Path("/etc/mosquitto/stocksense/acl")
PASSWORD_BYTES = 24  # 32 URL-safe characters, 192 bits
BROKER_USER = "mosquitto"  # the Debian package's service account
MARK = "# stocksense device "


class EnrolmentError(StockSenseError):
    """A device could not be enrolled or revoked; the message says which and why."""


@dataclass(frozen=True)
class Credentials:
    """What a newly enrolled device needs: shown once, stored only hashed."""

    username: str
    password: str
    topic: str


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Serialise enrolments that edit files in ``directory`` (flock on the directory)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _owner_for_new_file() -> tuple[int, int] | None:
    """Root creates files for the broker's account, which reads them after dropping root."""
    if os.geteuid() != 0:
        return None
    try:
        account = pwd.getpwnam(BROKER_USER)
    except KeyError:
        return None
    return account.pw_uid, account.pw_gid


def _write_atomic(path: Path, text: str, *, new_mode: int) -> None:
    """Replace ``path`` with ``text`` in one rename, keeping its mode and owner."""
    owner: tuple[int, int] | None
    try:
        old = path.stat()
        mode, owner = stat.S_IMODE(old.st_mode), (old.st_uid, old.st_gid)
    except FileNotFoundError:
        mode, owner = new_mode, _owner_for_new_file()
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    tmp = Path(name)
    try:
        os.fchmod(fd, mode)  # before any content is written
        if owner is not None and owner != (os.geteuid(), os.getegid()):
            os.fchown(fd, *owner)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a crash
    finally:
        os.close(dir_fd)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""


def _hash_password(user: str, password: str) -> str:
    """``user:<hash>`` from ``mosquitto_passwd -U`` run on a private one-line file.

    ``-U`` keeps the password off the command line (``-b`` would show it in ``ps``); it runs on
    a file of its own because it re-hashes every line it is given.
    """
    # Imported here: devservices brings httpx, which the parser every command builds need not.
    from stocksense.devservices import ServiceError, find_binary  # noqa: PLC0415

    try:
        tool = find_binary("mosquitto_passwd", install=False)
    except ServiceError:
        raise EnrolmentError(
            "mosquitto_passwd not found: install the Debian package 'mosquitto'"
        ) from None
    with tempfile.TemporaryDirectory(prefix="stocksense-passwd-") as private:
        plain = Path(private) / "passwd"
        fd = os.open(plain, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(f"{user}:{password}\n")
        done = subprocess.run(  # noqa: S603 - fixed argv, no shell
            [tool, "-U", str(plain)], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise EnrolmentError(f"mosquitto_passwd failed: {done.stderr.strip() or done.stdout}")
        line = plain.read_text(encoding="utf-8").strip()
    if not line.startswith(f"{user}:$"):
        raise EnrolmentError("mosquitto_passwd did not write a hashed entry")
    return line


def _without_user(passwd_text: str, user: str) -> tuple[list[str], bool]:
    lines = passwd_text.splitlines()
    kept = [line for line in lines if line.split(":", 1)[0] != user]
    return kept, len(kept) != len(lines)


def _acl_without_user(acl_text: str, user: str) -> tuple[list[str], bool]:
    """The ACL lines without ``user``'s block (its mark, user line and topic lines)."""
    out: list[str] = []
    removed = False
    skipping = False
    for line in acl_text.splitlines():
        stripped = line.strip()
        if skipping and stripped.startswith("topic "):
            continue
        skipping = False
        if stripped == f"user {user}":
            skipping = removed = True
            if out and out[-1].strip() == f"{MARK}{user}":
                out.pop()
            continue
        if stripped or (out and out[-1].strip()):  # no leading or doubled blank lines
            out.append(line)
    while out and not out[-1].strip():
        out.pop()
    return out, removed


def _check_dirs(*paths: Path) -> None:
    for path in paths:
        if not path.parent.is_dir():
            raise EnrolmentError(f"{path}: directory {path.parent} does not exist")


def add_device(
    site: str,
    kind: str,
    device: str,
    *,
    password_file: Path,
    acl_file: Path,
    rotate: bool = False,
) -> Credentials:
    """Enrol a device (or give it a new password with ``rotate``); returns its credentials."""
    try:
        user, grant = username(site, kind, device), topic_grant(site, kind, device)
    except TopicError as exc:
        raise EnrolmentError(f"cannot enrol {site}/{kind}/{device}: {exc}") from None
    _check_dirs(password_file, acl_file)
    with _locked(acl_file.parent):
        passwd_lines, known = _without_user(_read(password_file), user)
        acl_lines, in_acl = _acl_without_user(_read(acl_file), user)
        if (known or in_acl) and not rotate:
            raise EnrolmentError(
                f"device {user} is already enrolled: 'devices remove' it first, or pass --rotate"
                " for a new password"
            )
        password = secrets.token_urlsafe(PASSWORD_BYTES)
        passwd_lines.append(_hash_password(user, password))
        if acl_lines:
            acl_lines.append("")
        acl_lines += [f"{MARK}{user}", f"user {user}", f"topic write {grant}"]
        # Password last: a device can log in only once its ACL is in place.
        _write_atomic(acl_file, "\n".join(acl_lines) + "\n", new_mode=0o640)
        _write_atomic(password_file, "\n".join(passwd_lines) + "\n", new_mode=0o600)
    logger.info("enrolled %s", user)
    return Credentials(username=user, password=password, topic=grant)


def remove_device(site: str, kind: str, device: str, *, password_file: Path, acl_file: Path) -> str:
    """Revoke a device from both files; returns its username."""
    try:
        user = username(site, kind, device)
    except TopicError as exc:
        raise EnrolmentError(f"cannot revoke {site}/{kind}/{device}: {exc}") from None
    _check_dirs(password_file, acl_file)
    with _locked(acl_file.parent):
        passwd_lines, known = _without_user(_read(password_file), user)
        acl_lines, in_acl = _acl_without_user(_read(acl_file), user)
        if not (known or in_acl):
            raise EnrolmentError(f"device {user} is not enrolled in {password_file} or {acl_file}")
        # Password first: a half-done revocation leaves a device that cannot log in.
        if known:
            _write_atomic(password_file, "\n".join(passwd_lines) + "\n", new_mode=0o600)
        if in_acl:
            _write_atomic(acl_file, "\n".join(acl_lines) + "\n", new_mode=0o640)
    logger.info("revoked %s", user)
    return user


RELOAD_HINT = (
    "Reload the broker to apply it: systemctl reload mosquitto (or kill -HUP <mosquitto pid>)."
)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """The ``devices`` subcommands: add, remove, list."""
    actions = parser.add_subparsers(dest="action", required=True, help="what to do")
    for name, text in (
        ("add", "enrol a device: generated password, ACL for its own topics only"),
        ("remove", "revoke a device: remove it from the password file and the ACL"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument("site")
        action.add_argument("kind", choices=topics.KINDS)
        action.add_argument("device")
        action.add_argument("--password-file", type=Path, default=DEFAULT_PASSWORD_FILE)
        action.add_argument("--acl-file", type=Path, default=DEFAULT_ACL_FILE)
        if name == "add":
            action.add_argument(
                "--rotate", action="store_true", help="give an enrolled device a new password"
            )
    listing = actions.add_parser("list", help="list the devices enrolled in the ACL")
    listing.add_argument("--acl-file", type=Path, default=DEFAULT_ACL_FILE)


def command(args: argparse.Namespace) -> int:
    """Run ``stocksense devices ...``; errors print one line and exit 1."""
    try:
        if args.action == "list":
            for key in sorted(enrolled_devices(_read(args.acl_file))):
                print(key)  # noqa: T201 - command output
            return 0
        if args.action == "add":
            creds = add_device(
                args.site,
                args.kind,
                args.device,
                password_file=args.password_file,
                acl_file=args.acl_file,
                rotate=args.rotate,
            )
            print(  # noqa: T201 - the credentials are shown once, on purpose
                f"enrolled {creds.username}\n"
                f"  username: {creds.username}\n"
                f"  password: {creds.password}\n"
                f"  publishes: {creds.topic}\n"
                "The password is shown only this once and stored hashed: set it on the device"
                f" now.\n{RELOAD_HINT}"
            )
            return 0
        user = remove_device(
            args.site,
            args.kind,
            args.device,
            password_file=args.password_file,
            acl_file=args.acl_file,
        )
        print(f"revoked {user}\n{RELOAD_HINT}")  # noqa: T201 - command output
    except (EnrolmentError, OSError) as exc:
        print(f"stocksense devices {args.action}: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    return 0

"""``stocksense users`` as a subprocess, and the logins it makes against ``stocksense api``
served by another subprocess: a token for a system, a password for the console."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from core import db
from core.auth import AuthStore, Role
from stocksense.devservices import free_port

ROOT = Path(__file__).resolve().parents[2]


def _env(tmp_path: Path, database: db.Target | None) -> dict[str, str]:
    """The environment of a command over ``database`` (the SQLite file in its data dir, or
    a PostgreSQL database named by URL)."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("STOCKSENSE_")}
    env["STOCKSENSE_DATA_DIR"] = str(tmp_path / "data")
    if database is not None and database.engine is db.Engine.POSTGRESQL:
        env["STOCKSENSE_DATABASE_URL"] = database.url
    env["PYTHONPATH"] = str(ROOT)
    return env


def run_users(
    tmp_path: Path, *args: str, database: db.Target | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``stocksense users ARGS`` in ``tmp_path`` over ``database``."""
    return subprocess.run(
        [sys.executable, "-m", "stocksense.cli", "users", *args],
        cwd=tmp_path,
        env=_env(tmp_path, database),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def api(tmp_path: Path, database: db.Target) -> Iterator[str]:
    """``stocksense api`` on a free port over the test's database; its base URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "stocksense.cli", "api", "--port", str(port)],
        cwd=tmp_path,
        env=_env(tmp_path, database),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/health", timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None, "stocksense api stopped"
                assert time.monotonic() < deadline, "stocksense api did not start"
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        assert process.wait(timeout=30) == 0


def test_users_add_token_list_revoke_remove(tmp_path: Path, database: db.Target, api: str) -> None:
    def users(*args: str) -> subprocess.CompletedProcess[str]:
        return run_users(tmp_path, *args, database=database)

    added = users("add", "li.wei", "--role", "operator", "--sites", "wh1,wh2")
    assert added.returncode == 0, added.stderr
    found = re.fullmatch(
        r"added li\.wei \(operator, wh1,wh2\); password \(shown once\): (\S{16})\n", added.stdout
    )
    assert found is not None, added.stdout
    password = found.group(1)
    made = users("token", "li.wei", "--label", "erp")
    assert made.returncode == 0, made.stderr
    token = made.stdout.rsplit(" ", 1)[1].strip()
    assert made.stdout == f"API token of li.wei (shown once): {token}\n"
    assert len(token) == 43
    listed = users("list")
    assert listed.stdout == f"li.wei\toperator\tsites wh1,wh2\ttokens {token[:8]}\n"
    conn = db.connect(database)  # the commands wrote to the test's database
    try:
        user = AuthStore(conn).user("li.wei")
    finally:
        conn.close()
    assert user is not None
    assert (user.role, user.sites) == (Role.OPERATOR, ("wh1", "wh2"))

    # The token works against the API process, and so does the password for the console.
    me = httpx.get(f"{api}/auth/me", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert me.status_code == 200
    assert (me.json()["name"], me.json()["sites"], me.json()["via"]) == (
        "li.wei", ["wh1", "wh2"], "token",
    )  # fmt: skip
    with httpx.Client(base_url=api, timeout=10) as console:
        login = console.post("/auth/login", json={"username": "li.wei", "password": password})
        assert login.status_code == 200
        assert console.get("/alerts").status_code == 200
        silence = {"site": "wh1", "duration_s": 60, "reason": "defrost"}
        csrf = {"X-CSRF-Token": login.json()["csrf_token"]}
        assert console.post("/alerts/silences", json=silence).status_code == 403
        assert console.post("/alerts/silences", json=silence, headers=csrf).status_code == 201

    again = users("add", "li.wei", "--role", "viewer")
    assert (again.returncode, again.stderr) == (
        1,
        "stocksense users add: user 'li.wei' exists already\n",
    )
    revoked = users("revoke", token[:8])
    assert revoked.stdout == f"revoked token {token[:8]} of li.wei\n"
    gone = httpx.get(f"{api}/alerts", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert gone.status_code == 401
    removed = users("remove", "li.wei")
    assert removed.stdout == "removed li.wei with their tokens and sessions\n"
    assert users("list").stdout == ""
    missing = users("remove", "li.wei")
    assert (missing.returncode, missing.stderr) == (
        1,
        "stocksense users remove: no user 'li.wei'\n",
    )

    # Every change of users and tokens is in the audit log, read by an admin.
    users("add", "wang", "--role", "admin")
    admin = users("token", "wang").stdout.rsplit(" ", 1)[1].strip()
    log = httpx.get(f"{api}/audit", headers={"Authorization": f"Bearer {admin}"}, timeout=10)
    actions = [(e["action"], e["target"]) for e in log.json()]
    assert actions == [
        ("user.add", "user li.wei"), ("token.create", f"token {token[:8]}"),
        ("session.login", "user li.wei"), ("silence.create", "silence 1"),
        ("token.revoke", f"token {token[:8]}"), ("user.remove", "user li.wei"),
        ("user.add", "user wang"), ("token.create", f"token {admin[:8]}"),
    ]  # fmt: skip
    assert all(password not in str(e) and token not in str(e) for e in log.json())
    assert log.json()[0]["actor"].startswith("cli:")


def test_a_bad_role_or_site_is_refused_in_one_line(tmp_path: Path) -> None:
    role = run_users(tmp_path, "add", "li.wei", "--role", "boss")
    assert role.returncode == 2
    assert role.stderr.startswith("stocksense users add: argument --role: invalid choice: 'boss'")
    site = run_users(tmp_path, "add", "li.wei", "--role", "viewer", "--sites", "wh 1")
    assert site.returncode == 2
    assert "'wh 1' is not a site id" in site.stderr

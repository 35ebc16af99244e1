"""``stocksense api --workers N``: processes sharing one port, restarted when one dies, stopped
together; run as users run it, over the test's database."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx
import psutil  # type: ignore[import-untyped]
import pytest

from core import db
from core.migrations import HEAD
from stocksense.devservices import free_port
from tests.conftest import wait_for
from tests.integration.test_cli import Cli, clean_env

pytestmark = pytest.mark.integration


def _workers(cli: Cli) -> list[psutil.Process]:
    """The worker processes (uvicorn spawns them with multiprocessing)."""
    return [p for p in cli.descendants() if "spawn_main" in " ".join(p.cmdline())]


def _listens_on(process: psutil.Process, port: int) -> bool:
    return any(
        c.status == psutil.CONN_LISTEN and c.laddr.port == port
        for c in process.net_connections(kind="tcp")
    )


def _health(base: str) -> dict[str, object]:
    answer = httpx.get(f"{base}/health", timeout=10)
    assert answer.status_code == 200, answer.text
    body: dict[str, object] = answer.json()
    return body


def test_workers_share_the_port_one_killed_is_replaced_and_sigterm_stops_all(
    tmp_path: Path, database: db.Target
) -> None:
    env = clean_env(STOCKSENSE_DATA_DIR=str(tmp_path / "data"))
    if database.engine is db.Engine.POSTGRESQL:
        env["STOCKSENSE_DATABASE_URL"] = database.url
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cli = Cli("api", "--workers", "2", "--port", str(port), env=env, cwd=tmp_path)
    try:
        cli.wait_stdout(r"^stocksense api: running;")
        assert any(f"{base} from 2 processes" in line for line in cli.stdout), cli
        wait_for(lambda: len(_workers(cli)) == 2, timeout=30, what="two workers")
        first = _workers(cli)
        assert all(_listens_on(w, port) for w in first)
        # The command migrated the new SQLite file once, before the workers (a PostgreSQL
        # test database is cloned from a migrated template).
        migrations = sum("migrating" in line for line in cli.stderr)
        assert migrations == (1 if database.engine is db.Engine.SQLITE else 0), cli

        # Each worker serves alone: with one killed the other answers, and the replacement
        # answers once the survivor is killed in turn.
        for victim in first:
            victim.send_signal(signal.SIGKILL)
            victim.wait(timeout=10)
            assert _health(base)["schema_revision"] == HEAD

            def replaced(gone: int = victim.pid) -> bool:
                now = _workers(cli)
                return len(now) == 2 and gone not in {w.pid for w in now}

            wait_for(replaced, timeout=30, what=f"a worker in place of {victim.pid}")
        assert not {w.pid for w in first} & {w.pid for w in _workers(cli)}
        assert _health(base)["status"] == "ok"
    finally:
        code = cli.stop()
    assert code == 0, cli
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in first)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base}/health", timeout=5)


@pytest.mark.parametrize("workers", ["0", "65", "two"])
def test_a_worker_count_out_of_range_is_a_usage_error(tmp_path: Path, workers: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "stocksense.cli", "api", "--workers", workers],
        env=clean_env(STOCKSENSE_DATA_DIR=str(tmp_path / "data")),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert f"{workers!r} is not a number of processes (1-64)" in done.stderr
    assert not (tmp_path / "data").exists()

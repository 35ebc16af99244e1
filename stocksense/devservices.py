"""Start real Mosquitto, InfluxDB 1.x and PostgreSQL on free loopback ports, with temp config
and data dirs.

Used by the demo, the test fixtures and the benchmarks. Each :class:`ManagedProcess` stops only
the process it started. When a binary is missing and we run as root, the Debian package is
installed with apt-get; otherwise the error says exactly what to install.
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import httpx

from core.errors import StockSenseError

logger = logging.getLogger(__name__)

DEBIAN_PACKAGES = {
    "mosquitto": "mosquitto",
    "influxd": "influxdb",
    "mosquitto_pub": "mosquitto-clients",
    "initdb": "postgresql",
    "postgres": "postgresql",
}
SBIN_DIRS = ("/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin")
# Debian keeps the server binaries of each PostgreSQL major version off the PATH.
POSTGRES_BIN_GLOB = "/usr/lib/postgresql/*/bin"
POSTGRES_USER = "stocksense"


class ServiceError(StockSenseError):
    """A local service could not be installed, started or reached."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def find_binary(name: str, *, install: bool = True) -> str:
    """Path of ``name``; installs its Debian package when missing and running as root."""
    postgres_bins = sorted(Path("/").glob(POSTGRES_BIN_GLOB.lstrip("/")), reverse=True)
    dirs = [*(Path(d) for d in SBIN_DIRS), *postgres_bins]
    found = shutil.which(name) or next((str(d / name) for d in dirs if (d / name).exists()), None)
    if found:
        return found
    package = DEBIAN_PACKAGES.get(name, name)
    if install and hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        logger.info("installing Debian package %s for %s", package, name)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=False, env=env)  # noqa: S607
        subprocess.run(  # noqa: S603
            ["apt-get", "install", "-y", "-qq", package],  # noqa: S607
            check=True,
            env=env,
        )
        return find_binary(name, install=False)
    raise ServiceError(
        f"{name} not found: install the Debian package '{package}' (sudo apt-get install {package})"
    )


def wait_until(predicate: Callable[[], bool], *, timeout: float, what: str) -> None:
    """Poll ``predicate`` until it is true; raise :class:`ServiceError` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)
    raise ServiceError(f"timed out after {timeout:.0f}s waiting for {what}")


def port_open(port: int) -> bool:
    """True when something accepts TCP connections on 127.0.0.1:``port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class ManagedProcess:
    """A service process this module started, with its port and private directory."""

    name: str
    port: int
    workdir: Path
    argv: list[str]
    ready: Callable[[ManagedProcess], bool]
    process: subprocess.Popen[bytes] | None = None
    extra_ports: dict[str, int] = field(default_factory=dict)
    user: str | None = None
    stop_signal: int = signal.SIGTERM

    @property
    def log_path(self) -> Path:
        """Where the service's stdout and stderr go."""
        return self.workdir / f"{self.name}.log"

    def start(self, *, timeout: float = 30.0) -> ManagedProcess:
        """Start the process and wait until it answers."""
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(  # noqa: S603
            self.argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            start_new_session=True,
            user=self.user,
        )
        log.close()
        # A detached `stocksense services` is stopped later by another process: leave the pid.
        self.pid_path.write_text(f"{self.process.pid}\n")
        try:
            wait_until(self._alive_and_ready, timeout=timeout, what=f"{self.name}")
        except ServiceError as exc:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
            self.stop()
            last = f": {lines[-1].strip()}" if lines else ""
            raise ServiceError(
                f"{self.name} did not become ready on 127.0.0.1:{self.port} ({exc}){last}"
                f" (full log: {self.log_path})"
            ) from None
        logger.info("%s ready on 127.0.0.1:%d (pid %d)", self.name, self.port, self.process.pid)
        return self

    @property
    def pid_path(self) -> Path:
        """Where the pid of the running service is kept."""
        return self.workdir / f"{self.name}.pid"

    def _alive_and_ready(self) -> bool:
        if self.process is None or self.process.poll() is not None:
            code = None if self.process is None else self.process.returncode
            raise ServiceError(f"{self.name} exited with code {code}: see {self.log_path}")
        return self.ready(self)

    def stop(self, *, timeout: float = 15.0) -> None:
        """Stop the process we started (SIGTERM, then SIGKILL); no-op when not running."""
        if self.process is None or self.process.poll() is not None:
            self.pid_path.unlink(missing_ok=True)
            return
        self.process.send_signal(self.stop_signal)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=timeout)
        self.pid_path.unlink(missing_ok=True)

    def kill(self) -> None:
        """SIGKILL, for outage tests."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.pid_path.unlink(missing_ok=True)

    def restart(self, *, timeout: float = 30.0) -> ManagedProcess:
        """Stop and start again on the same port and data directory."""
        self.stop()
        wait_until(lambda: not port_open(self.port), timeout=timeout, what=f"{self.name} to exit")
        return self.start(timeout=timeout)


def mosquitto(workdir: Path, *, port: int | None = None) -> ManagedProcess:
    """A Mosquitto broker on 127.0.0.1 with persistence in ``workdir`` (not started yet)."""
    port = port or free_port()
    # Services run with their own work dir as cwd: every path handed to them must be absolute.
    workdir = workdir.resolve()
    conf = "\n".join(
        [
            f"listener {port} 127.0.0.1",
            "allow_anonymous true",
            # Started as root, Mosquitto would switch to the 'mosquitto' user and could no
            # longer write its persistence file into our temp dir: stay who we are.
            f"user {getpass.getuser()}",
            "persistence true",
            f"persistence_location {workdir}/",
            # Saves every 2 s (interval + 1), as the shipped production broker: see
            # docs/broker-durability.md for what a SIGKILL loses with each setting.
            "autosave_interval 1",
            "autosave_on_changes false",
            # Ingest acknowledges QoS 1 only once readings are durable, so allow a deep
            # window and queue instead of dropping while a consumer catches up.
            "max_inflight_messages 0",
            "max_queued_messages 2000000",
            "max_queued_bytes 0",
            "message_size_limit 0",
            "log_dest stdout",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "",
        ]
    )
    return mosquitto_with_conf(workdir, conf, port)


def mosquitto_with_conf(
    workdir: Path,
    conf_text: str,
    port: int,
    *,
    name: str = "mosquitto",
    also_listening: tuple[int, ...] = (),
) -> ManagedProcess:
    """A Mosquitto (not started) running ``conf_text`` from ``workdir``.

    ``port`` and ``also_listening`` are the ports the config listens on: it is ready once they
    all accept connections.
    """
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "mosquitto.conf"
    conf.write_text(conf_text)
    return ManagedProcess(
        name=name,
        port=port,
        workdir=workdir,
        argv=[find_binary("mosquitto"), "-c", str(conf)],
        ready=lambda p: all(port_open(q) for q in (p.port, *also_listening)),
    )


def influxdb(workdir: Path, *, port: int | None = None) -> ManagedProcess:
    """An InfluxDB 1.x server on 127.0.0.1 with data, WAL and meta in ``workdir``."""
    port = port or free_port()
    rpc_port = free_port()
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "influxdb.conf"
    conf.write_text(
        f"""reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"

[meta]
  dir = "{workdir}/meta"

[data]
  dir = "{workdir}/data"
  wal-dir = "{workdir}/wal"
  query-log-enabled = false
  wal-fsync-delay = "0s"

[monitor]
  store-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:{port}"
  log-enabled = false
  max-body-size = 0

[logging]
  level = "warn"

[continuous_queries]
  enabled = false
"""
    )

    def ready(p: ManagedProcess) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{p.port}/ping", timeout=0.5).status_code == 204
        except httpx.HTTPError:
            return False

    return ManagedProcess(
        name="influxdb",
        port=port,
        workdir=workdir,
        argv=[find_binary("influxd"), "-config", str(conf)],
        ready=ready,
        extra_ports={"rpc": rpc_port},
    )


def postgresql(workdir: Path, *, port: int | None = None, fsync: bool = True) -> ManagedProcess:
    """A PostgreSQL server on 127.0.0.1, its cluster initialised in ``workdir/data`` (not
    started yet). It trusts local connections of the user ``stocksense``; its database
    ``postgres`` is there to create others from.

    PostgreSQL refuses to run as root: then the cluster belongs to the Debian package's
    ``postgres`` user, in a directory of its own under the system temp dir (``workdir`` keeps
    the log and the pid, and ``workdir/data`` links to the cluster).
    """
    port = port or free_port()
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    initdb, server = find_binary("initdb"), find_binary("postgres")
    user = "postgres" if hasattr(os, "geteuid") and os.geteuid() == 0 else None
    data = workdir / "data"
    if user is not None:
        private = Path(tempfile.mkdtemp(prefix="stocksense-pg-"))
        shutil.chown(private, user)
        data.symlink_to(private)
    subprocess.run(  # noqa: S603
        [
            initdb,
            "--pgdata",
            str(data.resolve()),
            "--username",
            POSTGRES_USER,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
            "--no-sync",
        ],
        check=True,
        user=user,
        capture_output=True,
    )
    settings = {
        "listen_addresses": "127.0.0.1",
        "port": str(port),
        "unix_socket_directories": str(data.resolve()),
        "max_connections": "200",
        "fsync": "on" if fsync else "off",
        "synchronous_commit": "on" if fsync else "off",
        "full_page_writes": "on" if fsync else "off",
    }
    argv = [server, "-D", str(data.resolve())]
    for name, value in settings.items():
        argv += ["-c", f"{name}={value}"]

    def ready(p: ManagedProcess) -> bool:
        import psycopg  # noqa: PLC0415 - only a PostgreSQL start needs the driver

        try:
            psycopg.connect(postgres_url(p), connect_timeout=1).close()
        except psycopg.OperationalError:
            return False
        return True

    return ManagedProcess(
        name="postgresql",
        port=port,
        workdir=workdir,
        argv=argv,
        ready=ready,
        user=user,
        # SIGTERM would wait for every client to leave; SIGINT ends their sessions first.
        stop_signal=signal.SIGINT,
    )


def postgres_url(server: ManagedProcess, database: str = "postgres") -> str:
    """The URL of ``database`` on a server :func:`postgresql` started."""
    return f"postgresql://{POSTGRES_USER}@127.0.0.1:{server.port}/{database}"


def remove_postgresql(server: ManagedProcess) -> None:
    """Delete the cluster of a stopped server (and its private directory, under root)."""
    data = server.workdir / "data"
    if data.is_symlink():
        shutil.rmtree(data.resolve(), ignore_errors=True)
        data.unlink()
    else:
        shutil.rmtree(data, ignore_errors=True)


@dataclass
class LocalStack:
    """A running Mosquitto and InfluxDB pair."""

    broker: ManagedProcess
    influx: ManagedProcess
    root: Path

    @property
    def mqtt_port(self) -> int:
        """Broker port."""
        return self.broker.port

    @property
    def influx_url(self) -> str:
        """InfluxDB base URL."""
        return f"http://127.0.0.1:{self.influx.port}"

    def stop(self) -> None:
        """Stop both services."""
        self.broker.stop()
        self.influx.stop()


def start_stack(root: Path) -> LocalStack:
    """Start Mosquitto and InfluxDB under ``root`` and leave them running.

    On a failure the one already started is stopped again. :func:`stop_stack` stops a stack
    started this way by another process (a detached ``stocksense services``).
    """
    root = root.resolve()
    broker = mosquitto(root / "mosquitto")
    influx = influxdb(root / "influxdb")
    try:
        broker.start()
        influx.start()
    except BaseException:
        broker.stop()
        influx.stop()
        raise
    return LocalStack(broker=broker, influx=influx, root=root)


def _running_under(pid: int, root: Path) -> bool:
    """True when ``pid`` is alive and was started with a config file under ``root``."""
    proc = Path("/proc") / str(pid)
    try:
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        argv = (proc / "cmdline").read_bytes().split(b"\0")
    except (OSError, IndexError):
        return False
    # A zombie has exited already; a pid taken over by another program is not ours.
    return state != "Z" and any(str(root).encode() in arg for arg in argv)


def _gone(pid: int, root: Path) -> bool:
    return not _running_under(pid, root)


def stop_stack(root: Path, *, timeout: float = 15.0) -> list[str]:
    """Stop the services a detached stack runs under ``root``; returns the names stopped."""
    root = root.resolve()
    stopped: list[str] = []
    for pid_path in sorted(root.glob("*/*.pid")):
        try:
            pid = int(pid_path.read_text().strip())
        except (OSError, ValueError):
            continue
        if _running_under(pid, root):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            try:
                wait_until(partial(_gone, pid, root), timeout=timeout, what=pid_path.stem)
            except ServiceError:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            stopped.append(pid_path.stem)
        pid_path.unlink(missing_ok=True)
    return stopped


@contextlib.contextmanager
def local_stack(root: Path | None = None, *, keep: bool = False) -> Iterator[LocalStack]:
    """Start Mosquitto and InfluxDB under ``root`` (a temp dir by default); stop them after."""
    tmp = None
    if root is None:
        tmp = tempfile.mkdtemp(prefix="stocksense-")
        root = Path(tmp)
    try:
        stack = start_stack(root)
        try:
            yield stack
        finally:
            stack.stop()
    finally:
        if tmp is not None and not keep:
            shutil.rmtree(tmp, ignore_errors=True)

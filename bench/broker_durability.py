"""Broker durability benchmark: what a SIGKILL of Mosquitto loses, per persistence setting.

    .venv/bin/python -m bench.broker_durability [--seconds 6] [--trials 3] [--quick]

For every setting a fresh Mosquitto is started with its own config and persistence directory
(absolute paths, as in ``stocksense.devservices``).

Kills: an offline persistent subscriber (clean session false, QoS 1: a stopped ingest worker)
is created and saved (SIGUSR1), then one publisher streams QoS 1 messages as fast as the broker
acknowledges them (100 in flight), so every PUBACKed message sits in the subscriber's queue.
While the publisher is still streaming, the broker is killed with SIGKILL, restarted on the same
directory, and the subscriber reads its queue up to a sentinel published after the restart. The
stream runs ``--seconds`` plus a random fraction of the setting's save period, so the trials
land at different points of the autosave cycle. Per trial:

- ``acked``: messages the broker PUBACKed before it died (it is all that is queued);
- ``lost``: acked messages the subscriber never got after the restart, also as seconds of
  traffic at the stream's rate;
- ``published within``: how long before the kill the oldest lost message was published (an
  upper bound of how long before the kill it was acknowledged).

Rates: ``mosquitto_pub -l -q 1 -M 1000`` sends ``--messages`` messages and exits on the last
PUBACK: with the subscriber's queue filling from empty, with ``--prefill`` messages already
queued (skipped for one save per change or per 10 changes: hours), and with the subscriber
online (``mosquitto_sub``, ingest up).

Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import getpass
import os
import random
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from stocksense.devservices import (
    ManagedProcess,
    ServiceError,
    find_binary,
    free_port,
    mosquitto_with_conf,
    wait_until,
)

TOPIC_ROOT = "bench/durability"
SUBSCRIBER_ID = "durability-subscriber"
SENTINEL = b"sentinel"
IN_FLIGHT = 1000  # C publisher (throughput)
STREAM_IN_FLIGHT = 100  # Python publisher (kills): smaller bursts, a steadier stream
# mosquitto_pub -l -q 1 (2.0.11) stops early after 65,535 lines: its message id wraps.
MAX_PUB_LINES = 50_000


@dataclass(frozen=True)
class Persistence:
    """One Mosquitto persistence setting."""

    autosave_interval: int
    autosave_on_changes: bool = False

    @property
    def label(self) -> str:
        """How the setting reads in mosquitto.conf."""
        if self.autosave_on_changes:
            return f"autosave_on_changes true, autosave_interval {self.autosave_interval}"
        return f"autosave_interval {self.autosave_interval}"

    @property
    def period_s(self) -> float:
        """Seconds between saves in time mode (Mosquitto saves once the interval has *passed*
        in whole seconds, so ``autosave_interval 5`` saves about every 6 s); 1 in change mode."""
        return float(self.autosave_interval + 1) if not self.autosave_on_changes else 1.0

    def conf_lines(self, location: Path) -> list[str]:
        """The persistence lines of mosquitto.conf."""
        lines = [
            "persistence true",
            f"persistence_location {location}/",
            f"autosave_interval {self.autosave_interval}",
        ]
        if self.autosave_on_changes:
            lines.append("autosave_on_changes true")
        return lines


SETTINGS: tuple[Persistence, ...] = (
    Persistence(5),
    Persistence(1),
    Persistence(1000, autosave_on_changes=True),
    Persistence(100, autosave_on_changes=True),
    Persistence(1, autosave_on_changes=True),
)


def broker(workdir: Path, persistence: Persistence, *, port: int | None = None) -> ManagedProcess:
    """A loopback Mosquitto with ``persistence`` and queues deep enough never to drop."""
    port = port or free_port()
    workdir = workdir.resolve()
    lines = [
        f"listener {port} 127.0.0.1",
        "allow_anonymous true",
        # Started as root, Mosquitto would switch to the 'mosquitto' user and could not write
        # its persistence file into our temp dir.
        f"user {getpass.getuser()}",
        *persistence.conf_lines(workdir),
        "max_inflight_messages 0",
        "max_queued_messages 0",
        "max_queued_bytes 0",
        "log_dest stdout",
        "log_type error",
        "log_type warning",
        "",
    ]
    return mosquitto_with_conf(workdir, "\n".join(lines), port)


def _db_identity(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    # The replaced file's inode number is often reused at once: the times tell saves apart.
    return stat.st_ino, stat.st_mtime_ns, stat.st_ctime_ns


def save_now(server: ManagedProcess, *, timeout: float = 30.0) -> None:
    """Have Mosquitto write its database now (SIGUSR1) and wait until the new file is in place.

    Every save writes ``mosquitto.db.new`` and renames it over ``mosquitto.db``, so a file that
    changed since the signal means a save that started after it has completed. Mosquitto 2.0.11
    acts on only about every other SIGUSR1 of an idle broker, so the signal is repeated each
    second until a save shows; an extra save is harmless.
    """
    if server.process is None:
        raise RuntimeError("the broker is not running")
    path = server.workdir / "mosquitto.db"
    before = _db_identity(path)
    deadline = time.monotonic() + timeout
    while True:
        os.kill(server.process.pid, signal.SIGUSR1)
        try:
            wait_until(lambda: _db_identity(path) not in (None, before), timeout=1.0, what="")
        except ServiceError:
            if time.monotonic() >= deadline:
                raise ServiceError(f"no save within {timeout:.0f}s of SIGUSR1") from None
            continue
        return


@dataclass(frozen=True)
class Endpoint:
    """Where and as whom a client connects: a loopback port, an account, TLS trusting a CA."""

    port: int
    username: str | None = None
    password: str | None = None
    ca_file: Path | None = None


def _client(endpoint: Endpoint, client_id: str, *, clean_session: bool) -> mqtt.Client:
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean_session
    )
    client.max_inflight_messages_set(IN_FLIGHT)
    client.max_queued_messages_set(0)
    if endpoint.username is not None:
        client.username_pw_set(endpoint.username, endpoint.password)
    if endpoint.ca_file is not None:
        client.tls_set(ca_certs=str(endpoint.ca_file))
    return client


def _connect(client: mqtt.Client, endpoint: Endpoint, *, timeout: float = 30.0) -> None:
    """Connect and wait for a successful CONNACK (refused credentials raise)."""
    result: list[object] = []
    ready = threading.Event()

    def on_connect(_c: object, _u: object, _f: object, reason: object, _p: object) -> None:
        result.append(reason)
        ready.set()

    client.on_connect = on_connect
    client.connect("127.0.0.1", endpoint.port)
    client.loop_start()
    if not ready.wait(timeout) or getattr(result[0], "is_failure", False):
        client.loop_stop()
        raise ConnectionError(f"broker on port {endpoint.port} refused the connection: {result}")


class Subscriber:
    """A persistent QoS 1 session (clean session false): the stand-in for an ingest worker."""

    def __init__(
        self, endpoint: Endpoint, *, client_id: str = SUBSCRIBER_ID, topic: str = TOPIC_ROOT
    ) -> None:
        self.endpoint, self.client_id, self.topic = endpoint, client_id, topic
        self.received: set[int] = set()
        self.messages = 0
        self.sentinel = threading.Event()
        self._subscribed = threading.Event()
        self._client = _client(endpoint, client_id, clean_session=False)
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe

    def _on_subscribe(self, *args: object) -> None:
        self._subscribed.set()

    def _on_message(self, client: object, userdata: object, msg: mqtt.MQTTMessage) -> None:
        if msg.payload == SENTINEL:
            self.sentinel.set()
            return
        self.messages += 1
        self.received.add(int(msg.payload))

    def connect(self, *, subscribe: bool, timeout: float = 30.0) -> Subscriber:
        """Connect (resuming the session); with ``subscribe`` also subscribe to ``topic/#`` and
        wait for the SUBACK, so the broker queues for us from then on."""
        _connect(self._client, self.endpoint, timeout=timeout)
        if subscribe:
            self._client.subscribe(f"{self.topic}/#", qos=1)
            if not self._subscribed.wait(timeout):
                raise TimeoutError("no SUBACK from the broker")
        return self

    def disconnect(self) -> None:
        """Leave the session at the broker (it keeps queueing QoS 1 messages for us)."""
        self._client.disconnect()
        self._client.loop_stop()

    def drain(
        self, publisher: Endpoint | None = None, topic: str | None = None, *, timeout: float = 60.0
    ) -> None:
        """Publish a sentinel behind everything queued for us (as ``publisher``, on ``topic``
        under our filter) and wait for it: once it arrives, the queue the broker restored has
        been delivered in full."""
        endpoint = publisher or self.endpoint
        pub = _client(endpoint, f"sentinel-{uuid.uuid4().hex[:8]}", clean_session=True)
        _connect(pub, endpoint, timeout=timeout)
        try:
            sentinel = topic or f"{self.topic}/sentinel"
            pub.publish(sentinel, SENTINEL, qos=1).wait_for_publish(timeout)
            if not self.sentinel.wait(timeout):
                raise TimeoutError("the sentinel did not arrive")
        finally:
            pub.disconnect()
            pub.loop_stop()


class Stream:
    """One QoS 1 publisher sending numbered messages (as fast as PUBACKs come back, or at
    ``rate`` per second), ``total`` of them or until stopped.

    :meth:`acked` maps each PUBACKed sequence number to the monotonic time it was *published*:
    the client's PUBACK handling lags the broker under load, while the publish time is a firm
    lower bound of the acknowledgement. The client never reconnects: what it counts is exactly
    what the broker it talked to accepted.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        topic: str = f"{TOPIC_ROOT}/data",
        total: int | None = None,
        rate: float | None = None,
    ) -> None:
        self.endpoint, self.topic, self.total, self.rate_limit = endpoint, topic, total, rate
        self.started = 0.0
        # Append-only and paired afterwards: paho calls on_publish under its own lock, so a
        # lock of ours around publish() could deadlock against it.
        self._published: list[tuple[int, int, float]] = []  # (mid, seq, time) in publish order
        self._pubacks: list[tuple[int, float]] = []  # (mid, time) in arrival order
        self._stop = threading.Event()
        self.disconnected = threading.Event()
        self.done = threading.Event()
        self._client = _client(endpoint, f"stream-{uuid.uuid4().hex[:8]}", clean_session=True)
        self._client.reconnect_delay_set(min_delay=3600, max_delay=3600)
        self._client.on_publish = self._on_publish
        self._thread = threading.Thread(target=self._run, daemon=True, name="stream")

    def _on_publish(self, client: object, userdata: object, mid: int, *args: object) -> None:
        self._pubacks.append((mid, time.monotonic()))
        if self.total is not None and len(self._pubacks) >= self.total:
            self.done.set()

    def _on_disconnect(self, *args: object) -> None:
        self.disconnected.set()
        self._stop.set()

    def start(self) -> Stream:
        """Connect and stream from a thread until :meth:`stop`, ``total`` or a disconnect."""
        _connect(self._client, self.endpoint)
        self._client.on_disconnect = self._on_disconnect
        self.started = time.monotonic()
        self._thread.start()
        return self

    def _run(self) -> None:
        seq = 0
        while not self._stop.is_set() and (self.total is None or seq < self.total):
            ahead = (
                self.started + seq / self.rate_limit - time.monotonic() if self.rate_limit else 0
            )
            if ahead > 0 or len(self._published) - len(self._pubacks) >= STREAM_IN_FLIGHT:
                # Pacing, or back-pressure while PUBACKs are due: not a synchronisation.
                time.sleep(min(max(ahead, 0.0005), 0.01))
                continue
            at = time.monotonic()
            info = self._client.publish(self.topic, str(seq).encode(), qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                break
            self._published.append((info.mid, seq, at))
            seq += 1

    def stop(self, *, timeout: float = 10.0) -> None:
        """Stop publishing and the network loop (after the broker is gone, or when done)."""
        self._stop.set()
        self._thread.join(timeout)
        self._client.disconnect()
        self._client.loop_stop()

    def acked(self) -> dict[int, float]:
        """Sequence number -> publish time, for every message the broker acknowledged.

        Message ids wrap at 65,535 but are never reused while in flight, so the k-th PUBACK of
        a mid belongs to its k-th publish.
        """
        by_mid: dict[int, list[tuple[int, float]]] = {}
        for mid, seq, at in self._published:
            by_mid.setdefault(mid, []).append((seq, at))
        taken: dict[int, int] = {}
        out: dict[int, float] = {}
        for mid, _ in self._pubacks:
            index = taken.get(mid, 0)
            taken[mid] = index + 1
            sent = by_mid.get(mid, [])
            if index < len(sent):
                seq, at = sent[index]
                out[seq] = at
        return out

    def rate(self) -> float:
        """PUBACKs per second from the first publish to the last PUBACK."""
        if not self._pubacks:
            return 0.0
        return len(self._pubacks) / max(1e-9, self._pubacks[-1][1] - self.started)


@dataclass
class Trial:
    """One kill: what was acknowledged, what survived."""

    acked: int
    lost: int
    extra: int
    msgs_per_s: float
    lost_window_s: float | None
    kill_after_s: float


@dataclass
class Row:
    """The figures of one setting."""

    persistence: Persistence
    trials: list[Trial] = field(default_factory=list)
    fill_rate: float | None = None
    deep_rate: float | None = None
    online_rate: float | None = None


def kill_trial(root: Path, persistence: Persistence, *, seconds: float) -> Trial:
    """Stream for ``seconds`` into an offline subscriber's queue, SIGKILL the broker mid-stream,
    restart it and count what the subscriber gets back."""
    workdir = Path(tempfile.mkdtemp(prefix="trial-", dir=root))
    server = broker(workdir, persistence).start()
    endpoint = Endpoint(server.port)
    try:
        Subscriber(endpoint).connect(subscribe=True).disconnect()
        # The session itself must be on disk, or a kill before the first save loses it too.
        save_now(server)
        stream = Stream(endpoint).start()
        time.sleep(seconds)  # the stream runs for this long: a duration, not a synchronisation
        killed_at = time.monotonic()
        server.kill()
        # Whatever the broker wrote before it died is still read from the socket.
        stream.disconnected.wait(10)
        stream.stop()
        acked = stream.acked()
        rate = stream.rate()
        server.start()
        subscriber = Subscriber(endpoint).connect(subscribe=False)
        try:
            subscriber.drain()
        finally:
            subscriber.disconnect()
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    lost = [seq for seq in acked if seq not in subscriber.received]
    window = killed_at - min(acked[s] for s in lost) if lost else None
    return Trial(
        acked=len(acked),
        lost=len(lost),
        extra=len(subscriber.received - acked.keys()),
        msgs_per_s=rate,
        lost_window_s=window,
        kill_after_s=seconds,
    )


def _flood(port: int, messages: int, *, timeout: float = 900.0) -> float:
    """Publish ``messages`` QoS 1 messages with ``mosquitto_pub -l`` (1,000 in flight) and
    return PUBACKed messages per second (it exits once the last one is acknowledged)."""
    if messages > MAX_PUB_LINES:
        raise ValueError(f"mosquitto_pub -l -q 1 stops early beyond {MAX_PUB_LINES:,} lines")
    lines = "".join(f"{i}\n" for i in range(messages)).encode()
    argv = [find_binary("mosquitto_pub"), "-p", str(port), "-q", "1", "-M", str(IN_FLIGHT)]
    started = time.monotonic()
    subprocess.run(
        [*argv, "-t", f"{TOPIC_ROOT}/data", "-l"], input=lines, check=True, timeout=timeout
    )
    return messages / (time.monotonic() - started)


def throughput(
    root: Path, persistence: Persistence, *, messages: int, online: bool, prefill: int = 0
) -> float:
    """PUBACKs per second from a C publisher sending ``messages``: the subscriber offline (its
    queue filling, after ``prefill`` messages were queued first) or online and acknowledging."""
    workdir = Path(tempfile.mkdtemp(prefix="rate-", dir=root))
    server = broker(workdir, persistence).start()
    consumer = None
    try:
        Subscriber(Endpoint(server.port)).connect(subscribe=True).disconnect()
        for start in range(0, prefill, MAX_PUB_LINES):
            _flood(server.port, min(MAX_PUB_LINES, prefill - start))
        if online:
            # Resumes the session created above, so nothing published before it connects is
            # missed; it exits after the last message.
            consumer = subprocess.Popen(
                [find_binary("mosquitto_sub"), "-p", str(server.port), "-q", "1", "-c",
                 "-i", SUBSCRIBER_ID, "-t", f"{TOPIC_ROOT}/#", "-C", str(messages)],
                stdout=subprocess.DEVNULL,
            )  # fmt: skip
        rate = _flood(server.port, messages)
        if consumer is not None:
            consumer.wait(timeout=300)
    finally:
        if consumer is not None and consumer.poll() is None:
            consumer.kill()
            consumer.wait()
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return rate


@dataclass(frozen=True)
class Plan:
    """How much to measure."""

    seconds: float = 6.0
    trials: int = 3
    messages: int = 10_000
    prefill: int = 150_000
    # Deep-queue rates are skipped where one save per change makes them take hours.
    deep_min_interval: int = 100


def run(settings: Sequence[Persistence], plan: Plan) -> list[Row]:
    """Every setting: kills with the subscriber offline and online, then the publish rates."""
    rows = []
    rng = random.Random(20_261_122)
    with tempfile.TemporaryDirectory(prefix="stocksense-durability-") as tmp:
        root = Path(tmp)
        for persistence in settings:
            row = Row(persistence)
            for _ in range(plan.trials):
                at = plan.seconds + rng.uniform(0.0, persistence.period_s)
                row.trials.append(kill_trial(root, persistence, seconds=at))
                _progress(persistence, row.trials[-1])
            row.fill_rate = throughput(root, persistence, messages=plan.messages, online=False)
            row.online_rate = throughput(root, persistence, messages=plan.messages, online=True)
            deep = not persistence.autosave_on_changes or (
                persistence.autosave_interval >= plan.deep_min_interval
            )
            if deep and plan.prefill:
                row.deep_rate = throughput(
                    root, persistence, messages=plan.messages, online=False, prefill=plan.prefill
                )
            print(
                f"  {persistence.label}: {row.fill_rate:,.0f} msg/s filling, "
                f"{row.deep_rate or 0:,.0f} with {plan.prefill:,} queued, "
                f"{row.online_rate:,.0f} with the subscriber online",
                flush=True,
            )
            rows.append(row)
    return rows


def _progress(persistence: Persistence, trial: Trial) -> None:
    window = "-" if trial.lost_window_s is None else f"{trial.lost_window_s * 1000:.0f} ms"
    print(
        f"  {persistence.label}: killed after {trial.kill_after_s:.2f}s, "
        f"acked {trial.acked:,}, lost {trial.lost:,} "
        f"(the oldest published {window} before the kill), "
        f"{trial.msgs_per_s:,.0f} msg/s",
        flush=True,
    )


def _span(values: Iterable[float], fmt: str) -> str:
    ordered = sorted(values)
    if not ordered:
        return "-"
    if ordered[0] == ordered[-1]:
        return format(ordered[0], fmt)
    return f"{format(ordered[0], fmt)}–{format(ordered[-1], fmt)}"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def table(rows: Sequence[Row], plan: Plan) -> str:
    """The results as a Markdown table."""
    header = (
        "| setting | lost at SIGKILL (of acked) | ≈ seconds of traffic | lost were published "
        f"within | msg/s, queue filling | msg/s, {plan.prefill:,} queued | msg/s, subscriber "
        "online |"
    )
    out = [header, "|---|---|---|---|---|---|---|"]
    for row in rows:
        windows = [t.lost_window_s for t in row.trials if t.lost_window_s is not None]
        lost = ", ".join(f"{t.lost:,} of {t.acked:,}" for t in row.trials)
        seconds = ", ".join(f"{t.lost / t.msgs_per_s:.2f}" for t in row.trials if t.msgs_per_s)
        within = f"{max(windows):.2f} s" if windows else "-"
        out.append(
            f"| `{row.persistence.label}` | {lost} | {seconds} | {within} "
            f"| {_rate(row.fill_rate)} | {_rate(row.deep_rate)} | {_rate(row.online_rate)} |"
        )
    return "\n".join(out)


def main() -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="stream before the kill")
    parser.add_argument("--trials", type=int, default=3, help="kills per setting")
    parser.add_argument("--messages", type=int, default=10_000, help="messages per rate")
    parser.add_argument("--prefill", type=int, default=150_000, help="queued before deep rate")
    parser.add_argument("--quick", action="store_true", help="one short trial, no deep rate")
    args = parser.parse_args()
    plan = Plan(args.seconds, args.trials, args.messages, args.prefill)
    if args.quick:
        plan = Plan(seconds=2.0, trials=1, messages=2_000, prefill=0)
    print(f"{find_binary('mosquitto')}: SIGKILL mid-stream, QoS 1, persistent subscriber")
    rows = run(SETTINGS, plan)
    print()
    print(table(rows, plan))


if __name__ == "__main__":
    main()

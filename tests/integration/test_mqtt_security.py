"""MQTT a warehouse network can trust, on a real Mosquitto running the shipped configuration.

The broker runs ``deploy/mosquitto/mosquitto.conf`` and ``deploy/mosquitto/acl`` with only the
paths and ports made local: a TLS listener with certificates generated here, no anonymous
clients, the password file and ACL that ``stocksense devices`` writes. Beside it, for the
refusal cases only, a listener with an expired certificate, a plain one, and one requiring a
client certificate. Ingest and simulate run as the ``stocksense`` command, configured by
environment variables, as in production.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from core import topics
from core.device_registry import UNKNOWN_DEVICE
from core.influx import query_sync, rows
from core.mqtt_settings import MqttSettings, MqttTlsSettings
from core.mqtt_tls import BrokerConnectError, connect_paho
from core.settings import InfluxSettings
from stocksense.devservices import (
    LocalStack,
    ManagedProcess,
    find_binary,
    free_port,
    mosquitto_with_conf,
    wait_until,
)
from tests.conftest import RECENT_T0, wait_for
from tests.tlsutil import CertAuthority, Issued

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "deploy" / "mosquitto"
STOCKSENSE = [sys.executable, "-m", "stocksense.cli"]
SITE = "wh-sec"
SERVER_NAME = "broker.stocksense.test"
INGEST_USER = "stocksense-ingest"
NOT_AUTHORIZED = 0x87  # MQTT 5 reason code
# PUBACK reasons that accept a message: success, and success with nobody subscribed (when the
# test runs without the ingest fixture).
ACCEPTED = (0x00, 0x10)


@dataclass
class Account:
    """MQTT credentials."""

    username: str
    password: str


@dataclass
class SecureBroker:
    """The shipped Mosquitto configuration running on local ports and files."""

    process: ManagedProcess
    root: Path
    ca: CertAuthority
    rogue_ca: Path
    client_cert: Issued
    tls_port: int
    expired_port: int
    plain_port: int
    mtls_port: int
    password_file: Path
    acl_file: Path
    ingest: Account

    def reload(self) -> None:
        """SIGHUP: Mosquitto 2.0 re-reads the password file and the ACL."""
        assert self.process.process is not None
        self.process.process.send_signal(signal.SIGHUP)

    def settings(self, account: Account | None = None, **tls: Any) -> MqttSettings:
        """Client settings for the TLS listener (overrides in ``tls``)."""
        port = tls.pop("port", self.tls_port)
        options: dict[str, Any] = {
            "enabled": True,
            "ca_file": self.ca.cert_path,
            "server_name": SERVER_NAME,
        }
        options.update(tls)
        return MqttSettings(
            host="127.0.0.1",
            port=port,
            client_id=f"test-{uuid.uuid4().hex[:8]}",
            username=account.username if account else None,
            password=account.password if account else None,
            tls=MqttTlsSettings(**options),
        )


def _render(conf: str, values: dict[str, str], listener_ports: dict[str, int]) -> str:
    """The shipped configuration with local paths and ports, directive by directive."""
    out: list[str] = []
    for line in conf.splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            out.append(line)
            continue
        key = words[0]
        if key == "listener":
            port = listener_ports[words[1]]
            out.append(f"listener {port} 127.0.0.1")
        elif key in {"pid_file", "include_dir"} or (key == "log_dest" and words[1] == "file"):
            out.append(f"# (test) {line}")
        elif key in values:
            out.append(f"{key} {values[key]}")
        else:
            out.append(line)
    return "\n".join(out) + "\n"


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> Any:
    """Run the ``stocksense`` command; returns the completed process."""
    return subprocess.run(  # noqa: PLW1510 - callers check the code
        [*STOCKSENSE, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**_base_env(), **(env or {})},
        cwd=cwd or REPO,
    )


def _base_env() -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env["PYTHONPATH"] = str(REPO)
    return env


def devices_cli(broker: SecureBroker, action: str, site: str, kind: str, device: str) -> Any:
    """``stocksense devices add|remove`` on the broker's files."""
    files = ("--password-file", str(broker.password_file), "--acl-file", str(broker.acl_file))
    return run_cli("devices", action, site, kind, device, *files)


def enrol(broker: SecureBroker, kind: str, device: str, site: str = SITE) -> Account:
    """``stocksense devices add``, then reload; returns the printed credentials."""
    done = devices_cli(broker, "add", site, kind, device)
    assert done.returncode == 0, done.stderr
    username = re.search(r"^  username: (\S+)$", done.stdout, re.MULTILINE)
    password = re.search(r"^  password: (\S+)$", done.stdout, re.MULTILINE)
    assert username is not None, done.stdout
    assert password is not None, done.stdout
    assert username.group(1) == f"{site}/{kind}/{device}"
    assert "SIGHUP" in done.stdout or "reload" in done.stdout
    broker.reload()
    account = Account(username.group(1), password.group(1))
    wait_until(lambda: _can_connect(broker, account), timeout=20, what=f"{device} enrolled")
    return account


def _can_connect(broker: SecureBroker, account: Account) -> bool:
    try:
        client = Device(broker, account)
    except BrokerConnectError:
        return False
    client.close()
    return True


class Device:
    """A paho MQTT 5 client over TLS that records PUBACK and SUBACK reason codes."""

    def __init__(self, broker: SecureBroker, account: Account, **tls: Any) -> None:
        self.settings = broker.settings(account, **tls)
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.settings.client_id,
            protocol=mqtt.MQTTv5,
        )
        self.acks: dict[int, ReasonCode] = {}
        self.subacks: dict[int, list[ReasonCode]] = {}
        self.messages: list[mqtt.MQTTMessage] = []
        self._event = threading.Condition()
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        connect_paho(self.client, self.settings)

    def _on_publish(self, _c: Any, _u: Any, mid: int, reason: ReasonCode, _p: Any) -> None:
        with self._event:
            self.acks[mid] = reason
            self._event.notify_all()

    def _on_subscribe(
        self, _c: Any, _u: Any, mid: int, reasons: list[ReasonCode], _p: Properties | None
    ) -> None:
        with self._event:
            self.subacks[mid] = list(reasons)
            self._event.notify_all()

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        with self._event:
            self.messages.append(message)
            self._event.notify_all()

    def _wait(self, ready: Any, what: str) -> None:
        with self._event:
            assert self._event.wait_for(ready, timeout=20), f"timed out waiting for {what}"

    def publish(self, topic: str, payload: dict[str, Any], *, retain: bool = False) -> int:
        """Publish at QoS 1 and return the broker's PUBACK reason code."""
        info = self.client.publish(topic, json.dumps(payload), qos=1, retain=retain)
        self._wait(lambda: info.mid in self.acks, f"PUBACK of {topic}")
        return int(self.acks[info.mid].value)

    def subscribe(self, topic_filter: str) -> list[int]:
        """Subscribe at QoS 1 and return the SUBACK reason codes."""
        _, mid = self.client.subscribe(topic_filter, qos=1)
        assert mid is not None
        self._wait(lambda: mid in self.subacks, f"SUBACK of {topic_filter}")
        return [int(code.value) for code in self.subacks[mid]]

    def wait_message(self, topic: str) -> mqtt.MQTTMessage:
        """The first message received on ``topic``."""
        self._wait(lambda: any(m.topic == topic for m in self.messages), f"a message on {topic}")
        return next(m for m in self.messages if m.topic == topic)

    def close(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    """Mosquitto with the shipped configuration, certificates made here, on free ports."""
    root = tmp_path_factory.mktemp("secure-broker").resolve()
    certs = root / "certs"
    ca = CertAuthority.create(certs)
    server = ca.issue("server", dns=(SERVER_NAME,))
    expired = ca.issue("expired", dns=(SERVER_NAME,), expired=True)
    client_cert = ca.issue("ingest-client", client=True)
    rogue = CertAuthority.create(certs, "Rogue CA")
    etc = root / "etc"
    etc.mkdir()
    password_file, acl_file = etc / "passwd", etc / "acl"
    acl_file.write_text((SHIPPED / "acl").read_text())
    acl_file.chmod(0o640)
    ingest = Account(INGEST_USER, uuid.uuid4().hex)
    # The service account is made by hand with the broker's tool, as the deployment guide says.
    subprocess.run(
        [find_binary("mosquitto_passwd"), "-c", "-b", str(password_file), *vars(ingest).values()],
        check=True,
        capture_output=True,
    )
    password_file.chmod(0o600)
    tls_port, expired_port, plain_port, mtls_port = (free_port() for _ in range(4))
    shipped = (SHIPPED / "mosquitto.conf").read_text()
    shipped_listeners = re.findall(r"^listener (\d+)", shipped, re.MULTILINE)
    assert shipped_listeners, "the shipped configuration has no listener"
    ports = {p: (tls_port if i == 0 else free_port()) for i, p in enumerate(shipped_listeners)}
    values = {
        "cafile": str(ca.cert_path),
        "certfile": str(server.cert),
        "keyfile": str(server.key),
        "password_file": str(password_file),
        "acl_file": str(acl_file),
        "persistence_location": f"{root}/",
        # As root Mosquitto would switch to the 'mosquitto' user and lose our temp files.
        "user": getpass.getuser(),
    }
    conf = _render(shipped, values, ports)
    if not re.search(r"^user ", conf, re.MULTILINE):
        conf += f"user {getpass.getuser()}\n"
    conf += f"""
# (test) refusal cases only
listener {expired_port} 127.0.0.1
cafile {ca.cert_path}
certfile {expired.cert}
keyfile {expired.key}
listener {plain_port} 127.0.0.1
listener {mtls_port} 127.0.0.1
cafile {ca.cert_path}
certfile {server.cert}
keyfile {server.key}
require_certificate true
log_dest stdout
"""
    process = mosquitto_with_conf(
        root, conf, tls_port, name="mosquitto-secure", also_listening=(mtls_port,)
    )
    process.start()
    try:
        yield SecureBroker(
            process=process,
            root=root,
            ca=ca,
            rogue_ca=rogue.cert_path,
            client_cert=client_cert,
            tls_port=tls_port,
            expired_port=expired_port,
            plain_port=plain_port,
            mtls_port=mtls_port,
            password_file=password_file,
            acl_file=acl_file,
            ingest=ingest,
        )
    finally:
        process.stop()


def ingest_env(
    broker: SecureBroker, stack: LocalStack, data_dir: Path, database: str, **overrides: str
) -> dict[str, str]:
    """``stocksense ingest`` configured as in production, every value a string."""
    env = {
        "STOCKSENSE_ENVIRONMENT": "production",
        "STOCKSENSE_DATA_DIR": str(data_dir),
        "STOCKSENSE_MQTT__HOST": "127.0.0.1",
        "STOCKSENSE_MQTT__PORT": str(broker.tls_port),
        "STOCKSENSE_MQTT__CLIENT_ID": f"ingest-{uuid.uuid4().hex[:8]}",
        "STOCKSENSE_MQTT__USERNAME": broker.ingest.username,
        "STOCKSENSE_MQTT__PASSWORD": broker.ingest.password,
        "STOCKSENSE_MQTT__TLS__ENABLED": "true",
        "STOCKSENSE_MQTT__TLS__CA_FILE": str(broker.ca.cert_path),
        "STOCKSENSE_MQTT__TLS__SERVER_NAME": SERVER_NAME,
        "STOCKSENSE_INFLUX__URL": stack.influx_url,
        "STOCKSENSE_INFLUX__DATABASE": database,
        "STOCKSENSE_INFLUX__FLUSH_INTERVAL_S": "0.1",
        "STOCKSENSE_INGEST__KNOWN_DEVICES_ONLY": "true",
        "STOCKSENSE_INGEST__DEVICE_ACL_FILE": str(broker.acl_file),
    }
    env.update(overrides)
    return env


@dataclass
class RunningIngest:
    """A ``stocksense ingest`` process and where its readings go."""

    process: subprocess.Popen[bytes]
    influx: InfluxSettings
    log: Path

    def points(self, influxql: str) -> list[dict[str, Any]]:
        """Rows of an InfluxQL query on the ingest's database."""
        return rows(query_sync(self.influx, influxql))


@pytest.fixture(scope="module")
def ingest(
    broker: SecureBroker, stack: LocalStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningIngest]:
    """``stocksense ingest`` over TLS with known_devices_only, as a subprocess."""
    work = tmp_path_factory.mktemp("ingest-tls")
    database = f"test_tls_{uuid.uuid4().hex[:8]}"
    log = work / "ingest.log"
    env = {**_base_env(), **ingest_env(broker, stack, work / "data", database)}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*STOCKSENSE, "ingest"], stdout=out, stderr=subprocess.STDOUT, env=env, cwd=work
        )

    def running() -> bool:
        assert process.poll() is None, log.read_text()
        return "running" in log.read_text()

    try:
        wait_until(running, timeout=60, what="stocksense ingest over TLS")
        yield RunningIngest(process, InfluxSettings(url=stack.influx_url, database=database), log)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def _temp_message(i: int) -> dict[str, Any]:
    return {
        "ts": RECENT_T0 + i * 1000,
        "seq": i,
        "readings": [{"sensor": "t1", "celsius": 4.0 + i / 10}],
    }


def test_enrolled_device_readings_land_over_tls(
    broker: SecureBroker, ingest: RunningIngest
) -> None:
    account = enrol(broker, "temp", "probe-a")
    device = Device(broker, account)
    try:
        topic = topics.build(SITE, "temp", "probe-a")
        codes = [device.publish(topic, _temp_message(i)) for i in range(20)]
    finally:
        device.close()
    assert codes == [0] * 20
    query = f"SELECT celsius, seq FROM temperature WHERE site = '{SITE}' AND device = 'probe-a'"
    wait_for(lambda: len(ingest.points(query)) == 20, what="20 readings in InfluxDB")
    got = ingest.points(query)
    assert [(r["time"], r["celsius"], r["seq"]) for r in got] == [
        ((RECENT_T0 + i * 1000) * 1_000_000, 4.0 + i / 10, i) for i in range(20)
    ]


def test_device_cannot_publish_as_another_device(
    broker: SecureBroker, ingest: RunningIngest
) -> None:
    a = enrol(broker, "temp", "probe-c")
    enrol(broker, "temp", "probe-d")  # enrolled, so only the broker stands in the way
    auditor = Device(broker, broker.ingest)
    device = Device(broker, a)
    try:
        assert auditor.subscribe(f"{topics.ROOT}/{SITE}/#") == [1]
        forged = device.publish(topics.build(SITE, "temp", "probe-d"), _temp_message(0))
        forged_kind = device.publish(topics.build(SITE, "weight", "probe-c"), {"ts": RECENT_T0})
        forged_site = device.publish(topics.build("wh-other", "temp", "probe-c"), _temp_message(0))
        # The broker handles one connection's messages in order: once this one has been
        # delivered, a forged message that got through would have been delivered before it.
        own = topics.build(SITE, "temp", "probe-c")
        assert device.publish(own, _temp_message(1)) == 0
        auditor.wait_message(own)
    finally:
        device.close()
        auditor.close()
    assert (forged, forged_kind, forged_site) == (NOT_AUTHORIZED,) * 3
    assert [m.topic for m in auditor.messages] == [own]
    probe_c = "SELECT seq FROM temperature WHERE device = 'probe-c'"
    wait_for(lambda: len(ingest.points(probe_c)) == 1, what="probe-c's own reading")
    assert ingest.points("SELECT seq FROM temperature WHERE device = 'probe-d'") == []


def test_wrong_password_is_refused(broker: SecureBroker, stack: LocalStack, tmp_path: Path) -> None:
    account = enrol(broker, "rfid", "dock-a")
    with pytest.raises(BrokerConnectError) as refused:
        Device(broker, Account(account.username, account.password + "x"))
    assert str(refused.value) == (
        f"MQTT broker 127.0.0.1:{broker.tls_port}: refused the credentials (CONNACK 0x87):"
        " check STOCKSENSE_MQTT__USERNAME and STOCKSENSE_MQTT__PASSWORD"
    )
    # Ingest at QoS 0 speaks MQTT 3.1.1, whose CONNACK has codes of its own.
    wrong = {"STOCKSENSE_MQTT__PASSWORD": "not-the-password", "STOCKSENSE_MQTT__QOS": "0"}
    env = ingest_env(broker, stack, tmp_path / "data", "test_tls_refused", **wrong)
    done = run_cli("ingest", env=env, cwd=tmp_path)
    assert done.returncode != 0
    assert (
        f"MQTT broker 127.0.0.1:{broker.tls_port}: refused the credentials (CONNACK 0x05)"
        in done.stderr
    ), done.stderr


def test_device_reads_nothing_even_subscribed_to_everything(broker: SecureBroker) -> None:
    """Mosquitto 2.0's acl_file does not judge SUBSCRIBE (its SUBACK grants any filter; see
    docs/mqtt-security.md): the refusal is on delivery, where every message needs read
    access, and a device has none."""
    reader = Device(broker, enrol(broker, "weight", "shelf-a"))
    writer = Device(broker, enrol(broker, "weight", "shelf-b"))
    auditor = Device(broker, broker.ingest)
    weighed = {"ts": RECENT_T0, "seq": 0, "readings": [{"cell": "c1", "grams": 5.0}]}
    try:
        granted = [reader.subscribe(f) for f in ("#", f"{topics.ROOT}/#")]
        watched = topics.build(SITE, "weight", "shelf-b")
        assert auditor.subscribe(watched) == [1]
        assert writer.publish(watched, weighed) == 0
        auditor.wait_message(watched)
        # The broker queued any copy for the reader before it read the reader's next packet,
        # so once that packet is acknowledged a delivered copy would have arrived first.
        assert reader.publish(topics.build(SITE, "weight", "shelf-a"), weighed) in ACCEPTED
    finally:
        for client in (reader, writer, auditor):
            client.close()
    assert granted == [[1], [1]]
    assert reader.messages == []


def test_removed_device_is_refused_after_reload(broker: SecureBroker) -> None:
    account = enrol(broker, "weight", "shelf-gone")
    connected = Device(broker, account)
    done = devices_cli(broker, "remove", SITE, "weight", "shelf-gone")
    assert done.returncode == 0, done.stderr
    assert f"revoked {SITE}/weight/shelf-gone" in done.stdout
    assert account.username not in broker.password_file.read_text()
    assert account.username not in broker.acl_file.read_text()
    broker.reload()
    # On reload Mosquitto also drops connected clients whose password is gone.
    wait_for(lambda: not connected.client.is_connected(), what="the revoked session to end")
    connected.close()
    wait_until(lambda: not _can_connect(broker, account), timeout=20, what="revocation")
    with pytest.raises(BrokerConnectError, match="refused the credentials"):
        Device(broker, account)
    again = devices_cli(broker, "remove", SITE, "weight", "shelf-gone")
    assert again.returncode == 1
    assert "is not enrolled" in again.stderr


def site_gateway(broker: SecureBroker, username: str, site: str) -> Account:
    """A hand-written account that may write every device of ``site`` (a gateway's)."""
    gateway = Account(username, uuid.uuid4().hex)
    with broker.acl_file.open("a") as acl:
        acl.write(f"\nuser {gateway.username}\ntopic write {topics.ROOT}/{site}/#\n")
    subprocess.run(
        [find_binary("mosquitto_passwd"), "-b", str(broker.password_file), *vars(gateway).values()],
        check=True,
        capture_output=True,
    )
    broker.reload()
    wait_until(lambda: _can_connect(broker, gateway), timeout=20, what=f"{username} account")
    return gateway


def test_unknown_device_is_dead_lettered(broker: SecureBroker, ingest: RunningIngest) -> None:
    """A gateway may write a whole site, so the broker lets any device name through; ingest
    accepts only enrolled devices."""
    enrol(broker, "temp", "probe-g")
    gateway = site_gateway(broker, "gateway-test", SITE)
    auditor = Device(broker, broker.ingest)
    device = Device(broker, gateway)
    try:
        assert auditor.subscribe(topics.DEADLETTER_TOPIC) == [1]
        ghost = topics.build(SITE, "temp", "ghost-9")
        assert device.publish(ghost, _temp_message(0)) == 0  # the broker let it through
        assert device.publish(topics.build(SITE, "temp", "probe-g"), _temp_message(0)) == 0
        envelope = json.loads(auditor.wait_message(topics.DEADLETTER_TOPIC).payload)
    finally:
        device.close()
        auditor.close()
    assert envelope["reason"] == UNKNOWN_DEVICE
    assert envelope["topic"] == ghost
    assert envelope["detail"] == f"device {SITE}/temp/ghost-9 is not enrolled in {broker.acl_file}"
    probe_g = "SELECT seq FROM temperature WHERE device = 'probe-g'"
    wait_for(lambda: len(ingest.points(probe_g)) == 1, what="the enrolled device's reading")
    assert ingest.points("SELECT seq FROM temperature WHERE device = 'ghost-9'") == []


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("untrusted", "its certificate is not signed by a CA we trust"),
        ("expired", "its certificate (or its CA) has expired"),
        ("hostname", "its certificate does not name '127.0.0.1'"),
        ("plain-to-tls", "it speaks TLS and we sent plain MQTT"),
        ("tls-to-plain", "the TLS handshake was cut off: the port speaks plain MQTT, not TLS"),
        ("missing-ca", "STOCKSENSE_MQTT__TLS__CA_FILE="),
    ],
)
def test_ingest_refuses_an_untrustworthy_broker_and_says_why(
    broker: SecureBroker, stack: LocalStack, tmp_path: Path, case: str, expected: str
) -> None:
    overrides = {
        "untrusted": {"STOCKSENSE_MQTT__TLS__CA_FILE": str(broker.rogue_ca)},
        "expired": {"STOCKSENSE_MQTT__PORT": str(broker.expired_port)},
        "hostname": {},
        "plain-to-tls": {"STOCKSENSE_MQTT__TLS__ENABLED": "false"},
        "tls-to-plain": {"STOCKSENSE_MQTT__PORT": str(broker.plain_port)},
        "missing-ca": {"STOCKSENSE_MQTT__TLS__CA_FILE": str(tmp_path / "nope.pem")},
    }[case]
    env = ingest_env(broker, stack, tmp_path / "data", "test_tls_refused", **overrides)
    if case == "hostname":  # dial the address; the certificate names only SERVER_NAME
        del env["STOCKSENSE_MQTT__TLS__SERVER_NAME"]
    done = run_cli("ingest", env=env, cwd=tmp_path)
    assert done.returncode != 0
    port = {"expired": broker.expired_port, "tls-to-plain": broker.plain_port}.get(
        case, broker.tls_port
    )
    if case == "missing-ca":
        assert f"STOCKSENSE_MQTT__TLS__CA_FILE={tmp_path / 'nope.pem'}: file not found" in (
            done.stderr
        )
    else:
        assert f"MQTT broker 127.0.0.1:{port}: {expected}" in done.stderr, done.stderr


def test_client_certificate_is_presented_when_the_broker_requires_one(
    broker: SecureBroker,
) -> None:
    account = enrol(broker, "temp", "probe-m")
    cert = {"cert_file": broker.client_cert.cert, "key_file": broker.client_cert.key}
    device = Device(broker, account, port=broker.mtls_port, **cert)
    try:
        assert device.publish(topics.build(SITE, "temp", "probe-m"), _temp_message(0)) in ACCEPTED
    finally:
        device.close()
    with pytest.raises(BrokerConnectError) as refused:
        Device(broker, account, port=broker.mtls_port)
    assert str(refused.value).startswith(
        f"MQTT broker 127.0.0.1:{broker.mtls_port}: it requires a client certificate"
    )


def test_simulate_publishes_over_tls(broker: SecureBroker, tmp_path: Path) -> None:
    gateway = site_gateway(broker, "simulator-test", "wh-sim")
    settings = broker.settings(gateway)
    env = {
        "STOCKSENSE_MQTT__PORT": str(settings.port),
        "STOCKSENSE_MQTT__USERNAME": gateway.username,
        "STOCKSENSE_MQTT__PASSWORD": gateway.password,
        "STOCKSENSE_MQTT__TLS__ENABLED": "true",
        "STOCKSENSE_MQTT__TLS__CA_FILE": str(broker.ca.cert_path),
        "STOCKSENSE_MQTT__TLS__SERVER_NAME": SERVER_NAME,
    }
    args = ("simulate", "--site", "wh-sim", "--speed", "20", "--duration", "1")
    done = run_cli(*args, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    published = re.search(r"published (\d+) messages", done.stdout)
    assert published is not None, done.stdout
    assert int(published.group(1)) > 6, done.stdout
    untrusted = run_cli(
        *args, env={**env, "STOCKSENSE_MQTT__TLS__CA_FILE": str(broker.rogue_ca)}, cwd=tmp_path
    )
    assert untrusted.returncode != 0
    assert (
        f"MQTT broker 127.0.0.1:{broker.tls_port}: its certificate is not signed by a CA we trust"
        in untrusted.stderr
    )


def test_verify_hostname_off_still_checks_the_chain(broker: SecureBroker) -> None:
    account = enrol(broker, "temp", "probe-v")
    device = Device(broker, account, server_name=None, verify_hostname=False)
    try:
        assert device.publish(topics.build(SITE, "temp", "probe-v"), _temp_message(0)) in ACCEPTED
    finally:
        device.close()
    with pytest.raises(BrokerConnectError, match="its certificate is not signed by a CA we trust"):
        Device(broker, account, server_name=None, verify_hostname=False, ca_file=broker.rogue_ca)

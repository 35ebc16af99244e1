"""TLS and connection errors for every MQTT client StockSense runs (gmqtt and paho).

:func:`client_context` turns ``STOCKSENSE_MQTT__TLS__*`` into one ``ssl.SSLContext``, used by
ingest and ``run`` (gmqtt) and by ``simulate`` (paho). :func:`connect_gmqtt` and
:func:`connect_paho` connect and wait for the CONNACK; when that fails,
:func:`describe_failure` says in one line which broker refused and why (untrusted or expired
certificate, wrong name, TLS spoken to a plain port or the reverse, bad credentials), naming
the setting to change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import threading
from pathlib import Path
from typing import Any

from core.errors import ConfigError, StockSenseError
from core.mqtt_settings import MqttSettings

logger = logging.getLogger(__name__)

ENV = "STOCKSENSE_MQTT__TLS__"
CONNECT_TIMEOUT_S = 15.0
PROBE_TIMEOUT_S = 3.0

# OpenSSL X509_V_ERR_* codes (ssl.SSLCertVerificationError.verify_code).
_UNTRUSTED = frozenset(
    {
        2,  # unable to get issuer certificate
        18,  # self-signed certificate
        19,  # self-signed certificate in certificate chain
        20,  # unable to get local issuer certificate
        21,  # unable to verify the first certificate
    }
)
_EXPIRED = 10
_NOT_YET_VALID = 9
_NAME_MISMATCH = frozenset({62, 64})  # hostname mismatch, IP address mismatch
# TLS alerts the broker sends about our client certificate (ssl.SSLError.reason).
_CERT_REQUIRED = frozenset(
    {
        "TLSV13_ALERT_CERTIFICATE_REQUIRED",
        "SSLV3_ALERT_HANDSHAKE_FAILURE",
        "PEER_DID_NOT_RETURN_A_CERTIFICATE",
    }
)
_CLIENT_CERT_REFUSED = frozenset(
    {
        "TLSV1_ALERT_UNKNOWN_CA",
        "SSLV3_ALERT_BAD_CERTIFICATE",
        "SSLV3_ALERT_CERTIFICATE_UNKNOWN",
        "SSLV3_ALERT_CERTIFICATE_EXPIRED",
        "TLSV1_ALERT_DECRYPT_ERROR",
    }
)
_NOT_TLS = frozenset({"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG"})
# CONNACK codes that mean the credentials: 4/5 in MQTT 3.1.1, 0x86/0x87 in MQTT 5.
_AUTH_REFUSED = frozenset({4, 5, 0x86, 0x87})


class BrokerConnectError(StockSenseError):
    """The MQTT broker could not be reached or refused us; the message names it and says why."""


class _ClosingSSLSocket(ssl.SSLSocket):
    """Closes itself when its handshake fails: paho leaves such a socket open."""

    def do_handshake(self, block: bool = False) -> None:
        try:
            super().do_handshake(block)
        except BaseException:
            self.close()
            raise


class _NamedContext(ssl.SSLContext):
    """Checks the broker's certificate against ``server_name`` instead of the host dialled.

    Neither gmqtt nor paho lets the caller choose the name passed to ``wrap_*``, so the
    context substitutes it; SNI carries the same name.
    """

    server_name: str | None = None

    def wrap_socket(  # noqa: PLR0917 - the signature of ssl.SSLContext.wrap_socket
        self,
        sock: socket.socket,
        server_side: bool = False,
        do_handshake_on_connect: bool = True,
        suppress_ragged_eofs: bool = True,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLSocket:
        return super().wrap_socket(
            sock,
            server_side=server_side,
            do_handshake_on_connect=do_handshake_on_connect,
            suppress_ragged_eofs=suppress_ragged_eofs,
            server_hostname=self.server_name or server_hostname,
            session=session,
        )

    def wrap_bio(
        self,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        server_side: bool = False,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLObject:
        return super().wrap_bio(
            incoming,
            outgoing,
            server_side=server_side,
            server_hostname=self.server_name or server_hostname,
            session=session,
        )


def _readable(path: Path, setting: str) -> str:
    """``path`` as a string once it is known to be a readable file, else a ConfigError."""
    where = f"{ENV}{setting}={path}"
    if not path.exists():
        raise ConfigError(f"{where}: file not found")
    if not path.is_file():
        raise ConfigError(f"{where}: not a file")
    try:
        with path.open("rb") as handle:
            handle.read(1)
    except PermissionError:
        raise ConfigError(f"{where}: not readable by this user (permission denied)") from None
    except OSError as exc:
        raise ConfigError(f"{where}: cannot be read ({exc.strerror})") from None
    return str(path)


def client_context(mqtt: MqttSettings) -> ssl.SSLContext | None:
    """The TLS context for the broker, or None when TLS is off; bad files raise ConfigError."""
    tls = mqtt.tls
    if not tls.enabled:
        return None
    ctx = _NamedContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the chain and the name by default
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.server_name = tls.server_name
    ctx.sslsocket_class = _ClosingSSLSocket
    if tls.ca_file is None:
        ctx.load_default_certs()
    else:
        ca = _readable(tls.ca_file, "CA_FILE")
        try:
            ctx.load_verify_locations(cafile=ca)
        except ssl.SSLError as exc:
            raise ConfigError(
                f"{ENV}CA_FILE={ca}: not a PEM CA certificate ({exc.reason or exc})"
            ) from None
    if (tls.cert_file is None) != (tls.key_file is None):
        raise ConfigError(
            f"{ENV}CERT_FILE and {ENV}KEY_FILE go together (mutual TLS): set both or neither"
        )
    if tls.cert_file is not None and tls.key_file is not None:
        cert = _readable(tls.cert_file, "CERT_FILE")
        key = _readable(tls.key_file, "KEY_FILE")
        try:
            ctx.load_cert_chain(cert, key)
        except ssl.SSLError as exc:
            why = (
                "the key does not belong to the certificate"
                if exc.reason == "KEY_VALUES_MISMATCH"
                else f"not a PEM certificate and key ({exc.reason or exc})"
            )
            raise ConfigError(f"{ENV}CERT_FILE={cert} / {ENV}KEY_FILE={key}: {why}") from None
    if not tls.verify_hostname:
        ctx.check_hostname = False  # the chain is still verified against the CA
    return ctx


def expected_name(mqtt: MqttSettings) -> str:
    """The name the broker's certificate must carry."""
    return mqtt.tls.server_name or mqtt.host


def describe_failure(exc: BaseException, mqtt: MqttSettings, *, probe: bool = True) -> str:
    """One line saying which broker failed and why, naming the setting that fixes it.

    Resets and timeouts are ambiguous, so with ``probe`` the port is asked whether it speaks
    TLS (one short handshake, on this error path only). Blocking: call it from a thread in
    async code.
    """
    broker = f"MQTT broker {mqtt.host}:{mqtt.port}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"{broker}: {_verify_failure(exc, mqtt)}"
    if isinstance(exc, ssl.SSLError):
        return f"{broker}: {_handshake_failure(exc)}"
    code = _connack_code(exc)
    if code is not None:
        if code in _AUTH_REFUSED:
            return (
                f"{broker}: refused the credentials (CONNACK {code:#04x}): check"
                " STOCKSENSE_MQTT__USERNAME and STOCKSENSE_MQTT__PASSWORD"
            )
        return f"{broker}: refused the connection (CONNACK {code:#04x}: {exc})"
    return f"{broker}: {_socket_failure(exc, mqtt, probe=probe)}"


def _verify_failure(exc: ssl.SSLCertVerificationError, mqtt: MqttSettings) -> str:
    code, message = exc.verify_code, exc.verify_message
    if code in _UNTRUSTED:
        ca = f"{ENV}CA_FILE={mqtt.tls.ca_file}" if mqtt.tls.ca_file else "the system's CA store"
        return f"its certificate is not signed by a CA we trust ({ca}): {message}"
    if code == _EXPIRED:
        return "its certificate (or its CA) has expired: renew it on the broker"
    if code == _NOT_YET_VALID:
        return "its certificate is not valid yet: check the clocks of both hosts"
    if code in _NAME_MISMATCH:
        return (
            f"its certificate does not name {expected_name(mqtt)!r}: connect by a name the"
            f" certificate carries or set {ENV}SERVER_NAME to it ({message})"
        )
    return f"its certificate was refused: {message} (OpenSSL code {code})"


def _handshake_failure(exc: ssl.SSLError) -> str:
    reason = exc.reason or ""
    if reason in _NOT_TLS or isinstance(exc, ssl.SSLEOFError):
        return _NOT_TLS_TEXT
    if reason in _CERT_REQUIRED:
        return f"it requires a client certificate: set {ENV}CERT_FILE and {ENV}KEY_FILE ({reason})"
    if reason in _CLIENT_CERT_REFUSED:
        return f"it refused our client certificate {ENV}CERT_FILE ({reason})"
    return f"TLS handshake failed: {reason or exc}"


def _socket_failure(exc: BaseException, mqtt: MqttSettings, *, probe: bool) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "nothing listens there (connection refused)"
    if isinstance(exc, ConnectionResetError | BrokenPipeError | EOFError | TimeoutError):
        if mqtt.tls.enabled:
            return _probe_own_tls(mqtt) if probe else _NOT_TLS_TEXT
        if probe and speaks_tls(mqtt.host, mqtt.port):
            return f"it speaks TLS and we sent plain MQTT: set {ENV}ENABLED=true and {ENV}CA_FILE"
        what = "no CONNACK in time" if isinstance(exc, TimeoutError) else "connection closed"
        return f"{what} before the broker answered CONNECT"
    if isinstance(exc, OSError):
        return f"cannot connect: {exc.strerror or exc}"
    return f"cannot connect: {exc}"


def _probe_own_tls(mqtt: MqttSettings) -> str:
    """Why a TLS connection dropped before its CONNACK, asked again with our own context.

    With TLS 1.3 the broker judges our client certificate after the handshake has completed
    on our side, so its refusal only shows as an alert on the first read.
    """
    ctx = client_context(mqtt)
    if ctx is None:  # TLS is off: nothing to ask
        return _NOT_TLS_TEXT
    closed = "it accepted TLS but closed the connection before CONNACK (see the broker's log)"
    try:
        with socket.create_connection((mqtt.host, mqtt.port), timeout=PROBE_TIMEOUT_S) as raw:
            try:
                tls = ctx.wrap_socket(raw, server_hostname=mqtt.host)
            except OSError as exc:  # ssl.SSLError included
                return _handshake_text(exc, mqtt)
            with tls:
                tls.settimeout(1.0)
                tls.recv(1)  # nothing is due before CONNECT: only an alert can arrive
    except TimeoutError:
        return closed
    except ssl.SSLError as exc:
        return _handshake_failure(exc)
    except OSError as exc:
        return f"cannot connect: {exc.strerror or exc}"
    return closed


def _handshake_text(exc: OSError, mqtt: MqttSettings) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return _verify_failure(exc, mqtt)
    if isinstance(exc, ssl.SSLError):
        return _handshake_failure(exc)
    return _NOT_TLS_TEXT


_NOT_TLS_TEXT = (
    "the TLS handshake was cut off: the port speaks plain MQTT, not TLS"
    f" (use the broker's TLS port, or {ENV}ENABLED=false on a trusted loopback)"
)


def _connack_code(exc: BaseException) -> int | None:
    """The CONNACK refusal code of a gmqtt or paho connect error, if it is one."""
    from gmqtt.mqtt.handler import MQTTConnectError  # noqa: PLC0415 - paho users skip gmqtt

    if isinstance(exc, MQTTConnectError):
        code: int = exc._code  # gmqtt keeps the CONNACK code only there
        return code
    if isinstance(exc, _ConnackRefusedError):
        return exc.code
    return None


class _ConnackRefusedError(Exception):
    """paho reported a refused CONNACK (carried to :func:`describe_failure`)."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code


def speaks_tls(host: str, port: int, *, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """True when ``host:port`` answers a TLS ClientHello (whatever its certificate)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # only asks whether TLS is spoken; nothing is sent after
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            ctx.wrap_socket(raw, server_hostname=host),
        ):
            return True
    except ssl.SSLError as exc:
        # An alert (e.g. certificate required) is still TLS talking.
        return "ALERT" in (exc.reason or "")
    except OSError:
        return False


async def connect_gmqtt(
    client: Any, mqtt: MqttSettings, *, version: int, timeout_s: float = CONNECT_TIMEOUT_S
) -> None:
    """Connect a gmqtt client (TLS as configured) and wait for its CONNACK.

    gmqtt retries forever when the broker drops the connection before a CONNACK (as a TLS
    port does with plain MQTT), so a drop or ``timeout_s`` ends the attempt here; every
    failure raises :class:`BrokerConnectError` saying why.
    """
    ctx = client_context(mqtt)
    dropped = asyncio.Event()
    original = client.on_disconnect

    def on_disconnect(*args: Any, **kwargs: Any) -> Any:
        dropped.set()
        return original(*args, **kwargs)

    client.on_disconnect = on_disconnect
    connect = asyncio.ensure_future(
        client.connect(
            mqtt.host,
            mqtt.port,
            ssl=ctx if ctx is not None else False,
            keepalive=mqtt.keepalive_s,
            version=version,
        )
    )
    lost = asyncio.ensure_future(dropped.wait())
    error: BaseException
    try:
        done, _ = await asyncio.wait(
            {connect, lost}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
        if connect in done and connect.exception() is None:
            return
        if connect in done:
            error = connect.exception() or ConnectionResetError()
        elif lost in done:
            error = ConnectionResetError("closed before CONNACK")
        else:
            error = TimeoutError()
    finally:
        client.on_disconnect = original
        for task in (connect, lost):
            if not task.done():
                task.cancel()
    client.stop_reconnect()
    with contextlib.suppress(OSError, RuntimeError):
        await client.disconnect()
    message = await asyncio.to_thread(describe_failure, error, mqtt)
    raise BrokerConnectError(message) from None


def connect_paho(client: Any, mqtt: MqttSettings, *, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Set TLS and credentials on a paho client, connect, start its loop, wait for CONNACK.

    Raises :class:`BrokerConnectError` saying why when the broker cannot be used.
    """
    ctx = client_context(mqtt)
    if ctx is not None:
        client.tls_set_context(ctx)
    if mqtt.username:
        password = mqtt.password.get_secret_value() if mqtt.password else None
        client.username_pw_set(mqtt.username, password)
    answered = threading.Event()
    outcome: list[BaseException | None] = []
    on_connect, on_disconnect = client.on_connect, client.on_disconnect

    def connected(c: Any, userdata: Any, flags: Any, reason: Any, props: Any = None) -> None:
        if not answered.is_set():
            failed = getattr(reason, "is_failure", False)
            outcome.append(_ConnackRefusedError(int(reason.value), str(reason)) if failed else None)
            answered.set()
        if on_connect is not None:
            on_connect(c, userdata, flags, reason, props)

    def disconnected(c: Any, userdata: Any, *args: Any) -> None:
        if not answered.is_set():
            outcome.append(ConnectionResetError("closed before CONNACK"))
            answered.set()
        if on_disconnect is not None:
            on_disconnect(c, userdata, *args)

    client.on_connect, client.on_disconnect = connected, disconnected
    try:
        try:
            client.connect(mqtt.host, mqtt.port, keepalive=mqtt.keepalive_s)
        except (OSError, ValueError) as exc:
            raise BrokerConnectError(describe_failure(exc, mqtt)) from None
        client.loop_start()
        error = outcome[0] if answered.wait(timeout_s) else TimeoutError()
    finally:
        client.on_connect, client.on_disconnect = on_connect, on_disconnect
    if error is not None:
        client.loop_stop()
        with contextlib.suppress(OSError):
            client.disconnect()
        raise BrokerConnectError(describe_failure(error, mqtt))

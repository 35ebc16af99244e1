"""The broker connection's settings, apart from the rest so the edge agent loads only these.

:class:`core.settings.Settings` nests them as ``mqtt`` (``STOCKSENSE_MQTT__*``); the edge agent
reads the same model from its YAML file. Without pydantic-settings and the services' settings
tree, a gateway's agent stays within its memory budget.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, Field, SecretStr, field_validator


def _int_choice(value: object) -> object:
    # Environment values are strings: "0" must select the 0 of a Literal[0, 1].
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        return int(value)
    return value


QoS = Annotated[Literal[0, 1], BeforeValidator(_int_choice)]


class MqttTlsSettings(BaseModel):
    """TLS to the broker: its certificate checked against a CA, optionally a client certificate.

    Built into an ``ssl.SSLContext`` by :func:`core.mqtt_tls.client_context`.
    """

    enabled: bool = False
    ca_file: Path | None = Field(
        default=None, description="PEM CA that signed the broker's certificate; unset: system CAs."
    )
    cert_file: Path | None = Field(default=None, description="Client certificate (mutual TLS).")
    key_file: Path | None = Field(default=None, description="Private key of cert_file.")
    verify_hostname: bool = Field(
        default=True, description="Check that the broker's certificate names the host."
    )
    server_name: str | None = Field(
        default=None, description="Name to expect in the broker's certificate instead of host."
    )


class MqttSettings(BaseModel):
    """Broker connection shared by ingest, rules (standalone) and the simulators."""

    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    client_id: str = "stocksense-ingest"
    qos: QoS = 1
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    share_group: str | None = Field(
        default=None, description="Join $share/<group>/... so several workers split the load."
    )
    sites: tuple[str, ...] = Field(default=(), description="Only these sites; empty means all.")
    tls: MqttTlsSettings = Field(default_factory=MqttTlsSettings)

    @field_validator("share_group")
    @classmethod
    def _one_topic_level(cls, value: str | None) -> str | None:
        # MQTT 5 (4.8.2): a share name is one topic level, without wildcards; a broker refuses
        # the subscription otherwise, which would only show as nothing arriving.
        if value is not None and (not value or any(c in value for c in "/+#")):
            raise ValueError(
                f"a share group is one topic level without '/', '+' or '#', not {value!r}"
            )
        return value

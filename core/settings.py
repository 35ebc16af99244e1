"""Typed settings for every StockSense service (pydantic-settings: env vars and ``.env``).

Environment variables use the prefix ``STOCKSENSE_`` and ``__`` for nesting, for example
``STOCKSENSE_INFLUX__URL=http://influx:8086`` or ``STOCKSENSE_MQTT__PORT=8883``. Nothing
else in the code base reads ``os.environ``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "secret", "placeholder", "xxx"})


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
    qos: Literal[0, 1] = 1
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    share_group: str | None = Field(
        default=None, description="Join $share/<group>/... so several workers split the load."
    )
    sites: tuple[str, ...] = Field(default=(), description="Only these sites; empty means all.")
    tls: MqttTlsSettings = Field(default_factory=MqttTlsSettings)


class InfluxSettings(BaseModel):
    """InfluxDB through the v1 HTTP API (/write, /query): 1.x, 2.x and 3.x all serve it."""

    url: str = "http://127.0.0.1:8086"
    database: str = "stocksense"
    retention_policy: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = Field(
        default=None, description="InfluxDB 2.x/3.x token, sent as 'Authorization: Token ...'."
    )
    batch_lines: int = Field(default=5000, ge=1, le=100_000)
    flush_interval_s: float = Field(
        default=0.25, gt=0, le=60, description="Write a partial batch after this long."
    )
    gzip: bool = True
    timeout_s: float = Field(default=10.0, gt=0)
    create_database: bool = Field(
        default=True, description="Issue CREATE DATABASE at start (1.x); harmless when it exists."
    )


class IngestSettings(BaseModel):
    """Ingest worker: clock sanity bounds and buffering."""

    max_future_skew_s: float = Field(
        default=300.0, gt=0, description="Device time further ahead than this is replaced."
    )
    max_past_age_s: float = Field(
        default=30 * 86_400.0,
        gt=0,
        description="Device time older than this is replaced (store-and-forward is allowed).",
    )
    adapters: list[dict[str, Any]] = Field(
        default_factory=list,
        description=(
            "Vendor routes, first match wins, validated at start as ingest.adapters.AdapterRoute:"
            ' e.g. {"pattern": "tele/+/SENSOR", "adapter": "tasmota", "site": "wh1",'
            ' "timezone": "Asia/Shanghai"}. Canonical stocksense/v1 topics need no route.'
        ),
    )
    rules_queue_size: int = Field(default=100_000, ge=100)
    metrics_port: int | None = Field(default=None, description="Serve /metrics on this port.")
    known_devices_only: bool = Field(
        default=False,
        description="Dead-letter (unknown_device) readings of devices not enrolled in "
        "device_acl_file; true in production.",
    )
    device_acl_file: Path | None = Field(
        default=None, description="The broker ACL file kept by 'stocksense devices'."
    )


class ChannelSettings(BaseModel):
    """One notification channel: a DingTalk robot, a WeCom robot or a plain JSON webhook."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")
    kind: Literal["dingtalk", "wecom", "webhook"]
    url: SecretStr
    secret: SecretStr | None = Field(default=None, description="DingTalk signing secret (SEC...).")
    language: Literal["zh", "en"] = "zh"
    at_mobiles: tuple[str, ...] = ()
    at_user_ids: tuple[str, ...] = ()


class RulesSettings(BaseModel):
    """Rules engine: where the site/zone seed lives."""

    seed_file: Path | None = Field(default=None, description="YAML with sites, zones and bands.")


class NotifierSettings(BaseModel):
    """Delivery of alerts to the configured channels."""

    channels: list[ChannelSettings] = Field(default_factory=list)
    poll_interval_s: float = Field(default=0.2, gt=0, le=60)
    max_attempts: int = Field(default=8, ge=1, le=100)
    console_url: str = "http://127.0.0.1:8000/console"


AlertSeverity = Literal["critical", "major", "minor", "warning", "info"]


class TypePolicy(BaseModel):
    """Per alert type: debounce and an optional severity override.

    A condition is raised once it has held ``debounce_s`` seconds *and* been seen
    ``debounce_count`` times; the defaults (0 s, once) raise at the first sighting.
    """

    debounce_s: float = Field(default=0.0, ge=0, le=86_400)
    debounce_count: int = Field(default=1, ge=1, le=10_000)
    severity: AlertSeverity | None = None


class RouteSettings(BaseModel):
    """Which channels get an alert; empty match lists match anything.

    ``escalate_after_s`` and ``escalate_to``: an alert of this route still active and unacked
    that long after it was raised is also sent to ``escalate_to``.
    """

    name: str = "route"
    sites: tuple[str, ...] = ()
    zones: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    severities: tuple[AlertSeverity, ...] = ()
    channels: tuple[str, ...] = ()
    escalate_after_s: float | None = Field(default=None, gt=0)
    escalate_to: tuple[str, ...] = ()


class ColdChainPolicy(BaseModel):
    """Mean Kinetic Temperature and cumulative out-of-band limits of a cold zone.

    ``mkt_threshold_c`` defaults to the top of the zone's band.
    """

    mkt_window_s: float = Field(default=86_400.0, gt=0)
    mkt_threshold_c: float | None = None
    mkt_min_samples: int = Field(default=10, ge=1)
    mkt_min_coverage: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="Judge MKT only once the readings span this fraction of the window: a "
        "24-hour MKT from a few minutes of data would page on any short excursion.",
    )
    mkt_clear_margin_c: float = Field(default=0.2, ge=0)
    daily_out_limit_s: float | None = Field(default=3600.0, gt=0)
    max_gap_s: float = Field(
        default=900.0, gt=0, description="Longer gaps between readings do not count as out."
    )


class OfflinePolicy(BaseModel):
    """Heartbeat timeout: ``timeout_factor`` x the device's reporting interval."""

    timeout_factor: float = Field(default=3.0, ge=1.0)
    default_interval_s: float = Field(default=60.0, gt=0)
    min_timeout_s: float = Field(default=0.0, ge=0)
    learn_kinds: tuple[str, ...] = Field(
        default=("temp", "weight"),
        description="Kinds whose interval is learned from data spacing (RFID reports on reads).",
    )
    severity: AlertSeverity = "major"


class SensorHealthPolicy(BaseModel):
    """Drift (EWMA of the residual against the zone's other probes) and flat-line limits."""

    drift_threshold_c: float = Field(default=1.5, gt=0)
    drift_clear_c: float = Field(default=0.75, ge=0)
    drift_alpha: float = Field(default=0.1, gt=0, le=1)
    drift_warmup_samples: int = Field(default=20, ge=1)
    drift_min_peers: int = Field(default=2, ge=1)
    peer_max_age_s: float = Field(default=300.0, gt=0)
    stuck_samples: int = Field(default=30, ge=2)
    stuck_s: float = Field(default=600.0, ge=0)
    stuck_epsilon: float = Field(default=1e-9, ge=0)


class AlertingSettings(BaseModel):
    """Alert lifecycle, routing and the anomaly detectors' limits."""

    types: dict[str, TypePolicy] = Field(default_factory=dict)
    routes: list[RouteSettings] = Field(
        default_factory=list, description="Empty: every alert to every channel."
    )
    default_channels: tuple[str, ...] | None = Field(
        default=None, description="When routes exist and none matches; None means every channel."
    )
    reopen_window_s: float = Field(
        default=60.0,
        ge=0,
        description="A condition back this soon after its clear reopens the same alert.",
    )
    flap_window_s: float = Field(default=600.0, gt=0)
    flap_max_transitions: int = Field(default=4, ge=1)
    flap_stable_s: float | None = Field(
        default=None, gt=0, description="Quiet time that ends flapping; default flap_window_s."
    )
    cold_chain: ColdChainPolicy = Field(default_factory=ColdChainPolicy)
    cold_chain_zones: dict[str, ColdChainPolicy] = Field(
        default_factory=dict, description='Overrides keyed "site/zone".'
    )
    offline: OfflinePolicy = Field(default_factory=OfflinePolicy)
    sensor_health: SensorHealthPolicy = Field(default_factory=SensorHealthPolicy)

    def policy(self, type_: str) -> TypePolicy:
        """The debounce/severity policy of an alert type."""
        return self.types.get(type_) or TypePolicy()

    def cold_chain_for(self, site: str, zone: str) -> ColdChainPolicy:
        """The cold-chain policy of one zone."""
        return self.cold_chain_zones.get(f"{site}/{zone}") or self.cold_chain


class InventorySettings(BaseModel):
    """Tuning of live inventory: evaluation cadence, windows and thresholds."""

    evaluate_interval_s: float = Field(
        default=60.0, gt=0, description="Date, dead-stock, imbalance and reorder sweep period."
    )
    dead_after_days: float = Field(default=90.0, gt=0, description="No outflow for this long.")
    report_period_days: int = Field(default=30, ge=1, le=3650)
    demand_history_days: int = Field(
        default=56, ge=2, le=3650, description="Daily outflows feeding dynamic SS/ROP."
    )
    imbalance_horizon_days: float = Field(default=7.0, gt=0)
    loss_window_s: float = Field(
        default=120.0, gt=0, description="An RFID exit or recorded pick this close explains a drop."
    )
    misplaced_after_s: float = Field(
        default=10.0, ge=0, description="A tag must stay this long in a wrong zone."
    )
    rfid_dedup_window_s: float = Field(default=2.0, ge=0)
    rfid_exit_after_s: float = Field(default=30.0, gt=0)
    settle_readings: int = Field(default=5, ge=2, le=100)
    influx_batch_lines: int = Field(default=5000, ge=1)
    influx_max_buffer_lines: int = Field(
        default=200_000, ge=100, description="Lines held in memory before spilling to disk."
    )


class Settings(BaseSettings):
    """Root settings of a StockSense process."""

    model_config = SettingsConfigDict(
        env_prefix="STOCKSENSE_", env_nested_delimiter="__", env_file=".env", extra="ignore"
    )

    environment: Literal["local", "production"] = "local"
    data_dir: Path = Path("var")
    database_path: Path | None = Field(default=None, description="SQLite file; default in data_dir")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    influx: InfluxSettings = Field(default_factory=InfluxSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    inventory: InventorySettings = Field(default_factory=InventorySettings)
    rules: RulesSettings = Field(default_factory=RulesSettings)
    notifier: NotifierSettings = Field(default_factory=NotifierSettings)
    alerting: AlertingSettings = Field(default_factory=AlertingSettings)

    @property
    def sqlite_path(self) -> Path:
        """The SQLite file holding alerts and the notification outbox."""
        return self.database_path or self.data_dir / "stocksense.db"

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> Settings:
        if self.environment != "production":
            return self
        for channel in self.notifier.channels:
            for label, secret in (("url", channel.url), ("secret", channel.secret)):
                if secret is not None and secret.get_secret_value().strip().lower() in (
                    PLACEHOLDER_SECRETS
                ):
                    raise ValueError(f"channel {channel.name}: {label} is a placeholder")
        return self

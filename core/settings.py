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
    flush_interval_s: float = Field(default=1.0, gt=0, le=60)
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
    rules: RulesSettings = Field(default_factory=RulesSettings)
    notifier: NotifierSettings = Field(default_factory=NotifierSettings)

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

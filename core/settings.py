"""Typed settings for every StockSense service (pydantic-settings: env vars and ``.env``).

Environment variables use the prefix ``STOCKSENSE_`` and ``__`` for nesting, for example
``STOCKSENSE_INFLUX__URL=http://influx:8086`` or ``STOCKSENSE_MQTT__PORT=8883``. Nothing
else in the code base reads ``os.environ``.
"""

from __future__ import annotations

import json
import os
import re
import types
import typing
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from core import topics
from core.db import DatabaseError, Target
from core.errors import ConfigError
from core.identifiers import Segment
from core.mqtt_settings import MqttSettings

ENV_PREFIX = "STOCKSENSE_"
ENV_FILE = ".env"


def _upper(value: object) -> object:
    return value.strip().upper() if isinstance(value, str) else value


def _lower(value: object) -> object:
    return value.strip().lower() if isinstance(value, str) else value


def _expand(path: Path) -> Path:
    # A shell expands ~ only when unquoted; systemd units, docker and .env files never do.
    return path.expanduser()


EnvPath = Annotated[Path, AfterValidator(_expand)]
LogLevel = Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR"], BeforeValidator(_upper)]
Environment = Annotated[Literal["local", "production"], BeforeValidator(_lower)]


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


AdapterName = Literal["canonical", "impinj", "zebra", "tasmota", "shelly"]
WeightUnit = Literal["kg", "g"]


class AdapterRoute(BaseModel):
    """One ingest route: topics matching ``pattern`` are decoded by ``adapter``.

    ``site`` is required for vendor adapters (their topics do not name the site); for
    ``canonical`` None means the site segment of the topic, and a value pins it.
    ``timezone`` is the zone of device-local clocks (Tasmota ``Time``). ``device_segment``
    is the index of the topic level holding the device id (negative counts from the end);
    when unset the adapter's default applies. ``kind`` is the canonical kind of the device
    for status messages, ``weight_unit`` the unit of Tasmota HX711 ``Weight``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    pattern: str
    adapter: AdapterName
    site: Segment | None = None
    timezone: str = "UTC"
    device_segment: int | None = None
    kind: topics.Kind | None = None
    weight_unit: WeightUnit = "kg"

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, value: str) -> str:
        if value.startswith("$share/"):
            raise ValueError("route patterns match received topics: drop the $share/<group>/")
        return topics.validate_filter(value)  # its TopicError is a ValueError

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @model_validator(mode="after")
    def _site_for_vendor(self) -> AdapterRoute:
        if self.adapter != "canonical" and self.site is None:
            raise ValueError(f"a {self.adapter} route needs a site: vendor topics do not carry one")
        return self


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
    adapters: list[AdapterRoute] = Field(
        default_factory=list,
        description=(
            'Vendor routes, first match wins: e.g. {"pattern": "tele/+/SENSOR", "adapter":'
            ' "tasmota", "site": "wh1", "timezone": "Asia/Shanghai"}. Canonical stocksense/v1'
            " topics need no route."
        ),
    )
    rules_queue_size: int = Field(default=100_000, ge=100)
    metrics_port: int | None = Field(default=None, description="Serve /metrics on this port.")
    max_tracked_devices: int = Field(
        default=50_000, ge=1, description="Devices whose last seq is kept (least recent go)."
    )
    max_devices_per_site: int = Field(
        default=10_000,
        ge=0,
        description="Device names accepted per site; more are dead-lettered. 0: no limit.",
    )
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

    name: Segment
    kind: Literal["dingtalk", "wecom", "webhook"]
    url: SecretStr
    secret: SecretStr | None = Field(default=None, description="DingTalk signing secret (SEC...).")
    allow_unsigned: bool = Field(
        default=False,
        description="A DingTalk robot protected by keywords or IP ranges instead of signing: "
        "production accepts it without a secret.",
    )
    language: Literal["zh", "en"] = "zh"
    at_mobiles: tuple[str, ...] = ()
    at_user_ids: tuple[str, ...] = ()


class RulesSettings(BaseModel):
    """Rules engine: where the site/zone seed lives."""

    seed_file: EnvPath | None = Field(default=None, description="YAML with sites, zones and bands.")


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
    remind_every_s: float | None = Field(
        default=None,
        gt=0,
        le=7 * 86_400,
        description="Remind the channels told of an active, unacked alert this often.",
    )


class RouteSettings(BaseModel):
    """Which channels get an alert; empty match lists match anything.

    ``escalate_after_s`` and ``escalate_to``: an alert of this route still active and unacked
    that long after it was raised is also sent to ``escalate_to``, and so is one past its
    acknowledge or resolve deadline (``AlertingSettings.due``). ``owner`` owns the route's new
    alerts (the first matching route naming one wins over ``AlertingSettings.oncall``);
    ``remind_every_s`` reminds while an alert stays active and unacked.
    """

    name: str = "route"
    sites: tuple[str, ...] = ()
    zones: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    severities: tuple[AlertSeverity, ...] = ()
    channels: tuple[str, ...] = ()
    escalate_after_s: float | None = Field(default=None, gt=0)
    escalate_to: tuple[str, ...] = ()
    owner: str | None = Field(default=None, min_length=1, max_length=128)
    remind_every_s: float | None = Field(default=None, gt=0, le=7 * 86_400)


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class OnCallSettings(BaseModel):
    """An on-call rotation: who owns a new alert of ``sites`` (empty: any site) that no route
    gives an owner, by the day of the week in ``timezone``; ``default`` on days not listed."""

    sites: tuple[str, ...] = ()
    timezone: str = "UTC"
    days: dict[Weekday, Annotated[str, Field(min_length=1, max_length=128)]] = Field(
        default_factory=dict
    )
    default: str | None = Field(default=None, min_length=1, max_length=128)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {value!r}") from None
        return value


class DuePolicy(BaseModel):
    """Deadlines of an alert from when it is raised: to acknowledge it and to resolve it."""

    ack_s: float | None = Field(default=None, gt=0, le=30 * 86_400)
    resolve_s: float | None = Field(default=None, gt=0, le=365 * 86_400)


def _default_due() -> dict[AlertSeverity, DuePolicy]:
    return {
        "critical": DuePolicy(ack_s=900, resolve_s=4 * 3600),
        "major": DuePolicy(ack_s=3600, resolve_s=24 * 3600),
    }


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
    due: dict[AlertSeverity, DuePolicy] = Field(
        default_factory=_default_due,
        description="Acknowledge and resolve deadlines by severity; severities not listed have "
        "none.",
    )
    oncall: list[OnCallSettings] = Field(
        default_factory=list, description="Owners of alerts whose route names none; first match."
    )
    update_interval_s: float = Field(
        default=5.0,
        ge=0,
        le=3600,
        description="An active alert's latest value is written at most this often (a new peak "
        "at once).",
    )

    def policy(self, type_: str) -> TypePolicy:
        """The debounce/severity policy of an alert type."""
        return self.types.get(type_) or TypePolicy()

    def due_for(self, severity: str) -> DuePolicy:
        """The deadlines of an alert of ``severity`` (none when not configured)."""
        return next((p for level, p in self.due.items() if level == severity), DuePolicy())

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
    settle_s: float = Field(
        default=120.0,
        ge=0,
        le=86_400,
        description="After start, stock of a SKU with no reporting shelf cell counts as known.",
    )


class KpiSettings(BaseModel):
    """Inventory-health and alert-response KPIs: schedule, period and classes (docs/kpis.md)."""

    enabled: bool = True
    interval_s: float = Field(
        default=300.0, gt=0, le=86_400, description="Rolling snapshot period per site."
    )
    period_days: int = Field(default=30, ge=1, le=3650, description="Rolling snapshot window.")
    slow_after_days: float = Field(
        default=30.0, gt=0, description="Slow-moving stock after this long without outflow."
    )
    age_buckets: tuple[int, ...] = Field(
        default=(30, 60, 90), min_length=1, max_length=12, description="Upper bounds (days)."
    )
    lot_horizons_days: tuple[int, ...] = Field(
        default=(7, 30), min_length=1, max_length=6, description="Lots due within these days."
    )

    @model_validator(mode="after")
    def _increasing(self) -> KpiSettings:
        for name in ("age_buckets", "lot_horizons_days"):
            bounds: tuple[int, ...] = getattr(self, name)
            if any(b <= 0 for b in bounds) or list(bounds) != sorted(set(bounds)):
                raise ValueError(f"{name} must be positive whole days in increasing order")
        return self


class StartupSettings(BaseModel):
    """How long a service waits for the broker and InfluxDB at start before giving up."""

    attempts: int = Field(default=5, ge=1, le=100, description="Tries per service.")
    backoff_s: float = Field(
        default=1.0, gt=0, le=60, description="Wait after the first failed try; doubles up to 10 s."
    )


class ApiSettings(BaseModel):
    """Who may use the HTTP API and console, and from where."""

    auth: bool = Field(
        default=True, description="Require sign-in (a token or a console session) for the API."
    )
    cors_origins: tuple[str, ...] = Field(
        default=(), description="Origins allowed to call the API from a browser; empty: none."
    )
    session_ttl_s: float = Field(
        default=28_800.0, gt=0, le=30 * 86_400, description="Console session lifetime."
    )
    cookie_secure: bool = Field(
        default=False, description="Mark the session cookie Secure (the console is on HTTPS)."
    )
    login_max_failures: int = Field(
        default=5, ge=1, le=1000, description="Failed logins per name or address in the window."
    )
    login_window_s: float = Field(default=300.0, gt=0, le=86_400)


class ApprovalRule(BaseModel):
    """How many distinct approvers a requisition needs; the first rule that matches decides.

    A rule matches a requisition of one of ``sites`` and ``categories`` (empty: any) whose
    amount is ``< below`` or ``<= up_to`` (neither: any amount).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    below: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    up_to: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    approvals: int = Field(ge=0, le=5)
    sites: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _one_bound(self) -> ApprovalRule:
        if self.below is not None and self.up_to is not None:
            raise ValueError("give a rule either below or up_to, not both")
        return self

    def matches(self, amount: float, site: str, category: str | None) -> bool:
        """Whether the rule applies to a requisition of ``amount`` at ``site``."""
        if self.sites and site not in self.sites:
            return False
        if self.categories and category not in self.categories:
            return False
        if self.below is not None:
            return amount < self.below
        return self.up_to is None or amount <= self.up_to


def _default_rules() -> list[ApprovalRule]:
    # Auto-approve below 5,000, one approver up to 50,000, two above.
    return [
        ApprovalRule(below=5_000, approvals=0),
        ApprovalRule(up_to=50_000, approvals=1),
        ApprovalRule(approvals=2),
    ]


class ErpSettings(BaseModel):
    """Where approved requisitions are pushed: a signed JSON webhook, ERPNext or Odoo."""

    kind: Literal["none", "webhook", "erpnext", "odoo"] = Field(
        default="none", description="none: orders are recorded by hand (POST .../ordered)."
    )
    url: str = Field(default="", description="Webhook URL, or the ERPNext / Odoo base URL.")
    secret: SecretStr | None = Field(default=None, description="Webhook HMAC-SHA256 key.")
    api_key: str | None = Field(default=None, description="ERPNext API key.")
    api_secret: SecretStr | None = Field(default=None, description="ERPNext API secret.")
    company: str | None = Field(default=None, description="ERPNext company of the requests.")
    warehouses: dict[str, str] = Field(
        default_factory=dict, description="Site -> ERPNext warehouse; default the site id."
    )
    database: str = Field(default="", description="Odoo database.")
    username: str = Field(default="", description="Odoo login.")
    password: SecretStr | None = Field(default=None, description="Odoo password or API key.")
    timeout_s: float = Field(default=10.0, gt=0, le=300)
    max_attempts: int = Field(default=10, ge=1, le=100)
    poll_interval_s: float = Field(default=2.0, gt=0, le=300)


class PurchasingSettings(BaseModel):
    """Purchase requisitions: their currency, approval rules and the ERP they go to."""

    currency: str = Field(default="CNY", pattern=r"^[A-Z]{3}$")
    approval_rules: list[ApprovalRule] = Field(default_factory=_default_rules)
    categories: dict[str, str] = Field(
        default_factory=dict, description="SKU -> category, for rules by category."
    )
    erp: ErpSettings = Field(default_factory=ErpSettings)

    def approvals_required(self, amount: float, site: str, category: str | None) -> int:
        """Distinct approvers a requisition needs; with no matching rule, the most any rule
        asks (a gap in the rules never lets a purchase through unapproved)."""
        for rule in self.approval_rules:
            if rule.matches(amount, site, category):
                return rule.approvals
        return max((rule.approvals for rule in self.approval_rules), default=1) or 1


class Settings(BaseSettings):
    """Root settings of a StockSense process."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        env_file=ENV_FILE,
        extra="ignore",
        # VAR= in a unit file or compose file means "not set", not "the empty string".
        env_ignore_empty=True,
    )

    environment: Environment = "local"
    data_dir: EnvPath = Path("var")
    database_path: EnvPath | None = Field(
        default=None, description="SQLite file; default in data_dir"
    )
    database_url: SecretStr | None = Field(
        default=None,
        description="sqlite:///file or postgresql://user:password@host:port/db; default SQLite",
    )
    log_level: LogLevel = "INFO"
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    influx: InfluxSettings = Field(default_factory=InfluxSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    inventory: InventorySettings = Field(default_factory=InventorySettings)
    kpi: KpiSettings = Field(default_factory=KpiSettings)
    rules: RulesSettings = Field(default_factory=RulesSettings)
    notifier: NotifierSettings = Field(default_factory=NotifierSettings)
    alerting: AlertingSettings = Field(default_factory=AlertingSettings)
    startup: StartupSettings = Field(default_factory=StartupSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    purchasing: PurchasingSettings = Field(default_factory=PurchasingSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The usual sources, with environment decoding that names the variable at fault."""
        del env_settings
        env_file = getattr(dotenv_settings, "env_file", ENV_FILE)
        return (
            init_settings,
            _NamedEnvSource(settings_cls),
            _NamedDotEnvSource(settings_cls, env_file=env_file),
            file_secret_settings,
        )

    @property
    def sqlite_path(self) -> Path:
        """The SQLite file of the relational store when no database URL is set."""
        return self.database_path or self.data_dir / "stocksense.db"

    @property
    def database(self) -> Target:
        """The relational store: ``database_url`` if set, else the SQLite file."""
        if self.database_url is None:
            return Target.parse(self.sqlite_path)
        return Target.parse(self.database_url.get_secret_value())

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, url: SecretStr | None) -> SecretStr | None:
        if url is not None:
            try:
                Target.parse(url.get_secret_value())
            except DatabaseError as exc:
                raise ValueError(str(exc)) from exc
        return url

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> Settings:
        if self.environment != "production":
            return self
        problems = production_problems(self)
        if problems:
            raise ValueError(
                "; ".join(problems)
                + " (STOCKSENSE_ENVIRONMENT=production refuses placeholders and empty secrets)"
            )
        return self


def load_settings(**values: Any) -> Settings:
    """Settings from the environment and ``.env`` (``values`` override them).

    Raises :class:`ConfigError` with one line naming each variable at fault, e.g.
    ``STOCKSENSE_MQTT__PORT: Input should be less than or equal to 65535, got 70000``.
    """
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise ConfigError(describe_settings_error(exc)) from None
    except SettingsError as exc:
        raise ConfigError(str(exc)) from None


# -- environment decoding ----------------------------------------------------------------

if TYPE_CHECKING:
    _EnvBase = EnvSettingsSource
else:
    _EnvBase = object


class _NamedDecoding(_EnvBase):
    """Decoding shared by the environment and the ``.env`` source.

    A value that is not valid JSON where JSON is needed raises :class:`ConfigError` naming its
    variable (pydantic-settings names only the top-level field), and a list of plain words may
    be written the shell's way, ``wh1,wh2``, as well as ``["wh1","wh2"]``.
    """

    def decode_complex_value(self, field_name: str, field: FieldInfo, value: Any) -> Any:
        """JSON, or a comma-separated list for a list of plain words."""
        try:
            return super().decode_complex_value(field_name, field, value)
        except ValueError:
            if (
                isinstance(value, str)
                and value.strip()[:1] not in ("[", "{", '"')
                and field is not None
                and _is_word_list(field.annotation)
            ):
                return [word.strip() for word in value.split(",") if word.strip()]
            raise

    def explode_env_vars(
        self, field_name: str, field: FieldInfo, env_vars: Mapping[str, str | None]
    ) -> dict[str, Any]:
        """Nested variables (``STOCKSENSE_A__B``), decoded one by one to name the one at fault."""
        result: dict[str, Any] = {}
        for name, value in env_vars.items():
            try:
                part = super().explode_env_vars(field_name, field, {name: value})
            except ValueError as exc:
                raise ConfigError(_unparsable(name, exc)) from None
            _deep_merge(result, part)
        return result

    def prepare_field_value(
        self, field_name: str, field: FieldInfo, value: Any, value_is_complex: bool
    ) -> Any:
        """A top-level value (``STOCKSENSE_NOTIFIER='{...}'``), naming its variable on error."""
        try:
            return super().prepare_field_value(field_name, field, value, value_is_complex)
        except ValueError as exc:
            raise ConfigError(_unparsable(f"{ENV_PREFIX}{field_name}", exc)) from None


class _NamedEnvSource(_NamedDecoding, EnvSettingsSource):
    """Process environment."""


class _NamedDotEnvSource(_NamedDecoding, DotEnvSettingsSource):
    """The ``.env`` file of the working directory."""


def _unwrap(annotation: Any) -> list[Any]:
    """The members of ``X | None`` and ``Annotated[X, ...]``, as a flat list."""
    if typing.get_origin(annotation) is Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in _unwrap(arg)]
    return [annotation]


def _is_word_list(annotation: Any) -> bool:
    """True for list/tuple/set of str or Literal strings (``tuple[str, ...] | None``)."""
    for member in _unwrap(annotation):
        if typing.get_origin(member) not in (list, tuple, set, frozenset):
            continue
        items = [a for a in typing.get_args(member) if a is not Ellipsis]
        words = [
            m
            for item in items
            for m in _unwrap(item)
            if m is str or typing.get_origin(m) is Literal
        ]
        if items and len(words) == len(items):
            return True
    return False


def _deep_merge(into: dict[str, Any], part: Mapping[str, Any]) -> None:
    for key, value in part.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _deep_merge(into[key], value)
        else:
            into[key] = value


def _unparsable(name: str, exc: ValueError) -> str:
    cause: BaseException = exc
    while cause.__cause__ is not None and not isinstance(cause, json.JSONDecodeError):
        cause = cause.__cause__
    what = (
        f"{cause.msg.lower()} at character {cause.pos}"
        if isinstance(cause, json.JSONDecodeError)
        else str(cause)
    )
    return (
        f"{name.upper()}: not valid JSON ({what}): write lists as [...] and objects as {{...}} "
        "with double-quoted keys and strings, in single quotes for the shell"
    )


# -- validation errors as one line per variable -----------------------------------------

_SECRET_KEYS = frozenset({"url", "secret", "token", "password"})
_SHOW_INPUT = frozenset(
    {
        "literal_error",
        "int_parsing",
        "int_from_float",
        "float_parsing",
        "bool_parsing",
        "greater_than",
        "greater_than_equal",
        "less_than",
        "less_than_equal",
        "string_pattern_mismatch",
        "enum",
    }
)


def env_names_present(env_file: Path = Path(ENV_FILE)) -> set[str]:
    """Upper-case names of the STOCKSENSE_* variables in the environment and the ``.env`` file."""
    names = {k.upper() for k in os.environ if k.upper().startswith(ENV_PREFIX)}
    try:
        text = env_file.read_text(encoding="utf-8")
    except OSError:
        return names
    for raw in text.splitlines():
        found = re.match(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=", raw)
        if found and found.group(1).upper().startswith(ENV_PREFIX):
            names.add(found.group(1).upper())
    return names


def unknown_variables(present: Collection[str] | None = None) -> list[str]:
    """The STOCKSENSE_* variables that name no setting (typos: ``STOCKSENSE_MQTT__PROT``)."""
    names = env_names_present() if present is None else {n.upper() for n in present}
    return sorted(n for n in names if not _names_setting(n[len(ENV_PREFIX) :].lower().split("__")))


def _names_setting(keys: list[str]) -> bool:
    model: type[BaseModel] | None = Settings
    for key in keys:
        if model is None:
            return False  # below a plain value
        field = model.model_fields.get(key)
        if field is None:
            return False
        model = None
        for member in _unwrap(field.annotation):
            if typing.get_origin(member) is dict or member is dict:
                return True  # free keys below, such as alert types
            if isinstance(member, type) and issubclass(member, BaseModel):
                model = member
    return True


def describe_settings_error(exc: ValidationError, *, present: Collection[str] | None = None) -> str:
    """One line for a settings ValidationError, each problem led by its variable.

    ``present`` is the variables that are set (default: environment and ``.env``). Secret
    values are never shown.
    """
    names = env_names_present() if present is None else {n.upper() for n in present}
    problems: list[str] = []
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        variable, rest = _variable_for(loc, names)
        where = f"{rest}: " if rest else ""
        lead = f"{variable}: " if variable else ""
        problems.append(f"{lead}{where}{_problem_text(error, loc)}")
    return "; ".join(dict.fromkeys(problems))


def _variable_for(loc: tuple[str | int, ...], present: Collection[str]) -> tuple[str, str]:
    """The variable that holds ``loc`` and the position inside its value."""
    keys: list[str] = []
    for part in loc:
        if not isinstance(part, str):
            break
        keys.append(part)
    if not keys:
        return "", _position(loc)
    for cut in range(len(keys), 0, -1):
        name = ENV_PREFIX + "__".join(k.upper() for k in keys[:cut])
        if name in present:
            return name, _position(loc[cut:])
    # Not set by a variable (a default or a value passed in code): name the variable that
    # sets the value itself, which is what an operator would change.
    return ENV_PREFIX + "__".join(k.upper() for k in keys), _position(loc[len(keys) :])


def _position(rest: tuple[str | int, ...]) -> str:
    text = ""
    for part in rest:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _problem_text(error: ErrorDetails, loc: tuple[str | int, ...]) -> str:
    kind = error["type"]
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a known key"
    message = error["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    secret = any(isinstance(p, str) and p.lower() in _SECRET_KEYS for p in loc)
    value = error.get("input")
    if kind in _SHOW_INPUT and not secret and isinstance(value, str | int | float | bool):
        message += f", got {value!r}"
    return message


# -- production: no placeholders --------------------------------------------------------

_PLACEHOLDER_WORDS = frozenset(
    {
        "change",
        "changeme",
        "dummy",
        "example",
        "fake",
        "fixme",
        "insert",
        "placeholder",
        "redacted",
        "replace",
        "sample",
        "secret",
        "tbd",
        "test",
        "todo",
        "your",
    }
)
_TOKEN_PARAMS = ("access_token", "key", "token", "secret")
_REQUIRED_PARAM = {"dingtalk": "access_token", "wecom": "key"}


def placeholder_problem(value: str) -> str | None:
    """Why ``value`` cannot be a real secret (empty, ``<...>``, ``your-...``, ``CHANGE_ME``,
    ``xxx``, ``TODO``, ``example``, ``dummy``, ``test`` and the like), or None.

    Real secrets are random strings; the text of the value is never repeated.
    """
    text = value.strip()
    if not text:
        return "is empty"
    low = text.lower()
    compact = re.sub(r"[^a-z0-9]", "", low)
    words = [w for w in re.split(r"[^a-z0-9]+", low) if w]
    if (
        re.fullmatch(r"<.*>|\[.*\]|\{.*\}|\$\{?.*\}?|%.*%|\.{3,}|…|\*+|-+|_+|\?+", low)
        or any(w in _PLACEHOLDER_WORDS or re.fullmatch(r"(sec)?x{3,}\d*", w) for w in words)
        or compact.startswith("your")
        or any(w in compact for w in ("changeme", "placeholder", "example", "dummy"))
        or not compact
    ):
        return "looks like a placeholder"
    return None


def url_problem(url: str, kind: str) -> str | None:
    """Why a channel URL cannot be the real one, or None (never repeats the URL)."""
    text = url.strip()
    try:
        parts = urlsplit(text)
    except ValueError:
        return "is not a valid URL"
    host = parts.hostname or ""
    if not text:
        return "is empty"
    if any(c in text for c in "<>{}"):
        return "looks like a placeholder"
    if parts.scheme not in ("http", "https") or not host:
        return "is not an http(s) URL"
    if re.search(r"(^|\.)example(\.|$)", host) or placeholder_problem(host.split(".")[0]):
        return "has a placeholder host"
    query = parse_qs(parts.query, keep_blank_values=True)
    required = _REQUIRED_PARAM.get(kind)
    problems = [f"has no {required}"] if required is not None and required not in query else []
    problems += [
        f"{name} {problem}"
        for name in _TOKEN_PARAMS
        for token in query.get(name, [])
        if (problem := placeholder_problem(token)) is not None
    ]
    return problems[0] if problems else None


def production_problems(settings: Settings) -> list[str]:
    """Every secret of ``settings`` that is empty or looks like a placeholder, one text each."""
    problems: list[str] = []
    for channel in settings.notifier.channels:
        lead = f"STOCKSENSE_NOTIFIER__CHANNELS: channel {channel.name!r} ({channel.kind})"
        problem = url_problem(channel.url.get_secret_value(), channel.kind)
        if problem is not None:
            problems.append(f"{lead} url {problem}")
        if channel.secret is not None:
            problem = placeholder_problem(channel.secret.get_secret_value())
            if problem is not None:
                problems.append(f"{lead} secret {problem}")
        elif channel.kind == "dingtalk" and not channel.allow_unsigned:
            problems.append(
                f"{lead} secret is not set: sign the robot and give its SEC... secret, or set "
                '"allow_unsigned": true for a robot protected by keywords or IP ranges'
            )
    for variable, secret in (
        ("STOCKSENSE_MQTT__PASSWORD", settings.mqtt.password),
        ("STOCKSENSE_INFLUX__PASSWORD", settings.influx.password),
        ("STOCKSENSE_INFLUX__TOKEN", settings.influx.token),
    ):
        if secret is not None:
            problem = placeholder_problem(secret.get_secret_value())
            if problem is not None:
                problems.append(f"{variable} {problem}")
    erp = settings.purchasing.erp
    for variable, secret in (
        ("STOCKSENSE_PURCHASING__ERP__SECRET", erp.secret),
        ("STOCKSENSE_PURCHASING__ERP__API_SECRET", erp.api_secret),
        ("STOCKSENSE_PURCHASING__ERP__PASSWORD", erp.password),
    ):
        if secret is not None:
            problem = placeholder_problem(secret.get_secret_value())
            if problem is not None:
                problems.append(f"{variable} {problem}")
    if not settings.api.auth:
        problems.append("STOCKSENSE_API__AUTH is false: anyone reaching the API could change it")
    return problems

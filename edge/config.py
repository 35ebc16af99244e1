"""Edge agent configuration: one YAML file, validated by pydantic at start.

Errors name the device and the field: ``devices[2] (scale-1).registers.weight.type: ...``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from core.bounds import CELSIUS, GRAMS
from core.errors import ConfigError
from core.identifiers import Segment as Name
from core.mqtt_settings import MqttSettings, MqttTlsSettings

RegisterType = Literal["int16", "uint16", "int32", "uint32", "float32"]
WeightUnit = Literal["g", "kg", "lb"]
TempUnit = Literal["C", "F"]
REGISTER_COUNT: dict[str, int] = {
    "int16": 1,
    "uint16": 1,
    "int32": 2,
    "uint32": 2,
    "float32": 2,
}


class Strict(BaseModel):
    """Base of the config models: unknown keys are refused (they are usually typos)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class BrokerConfig(Strict):
    """The MQTT broker the agent publishes to."""

    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    client_id: str | None = Field(default=None, description="Default: stocksense-edge-<agent id>.")
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    tls: MqttTlsSettings = Field(default_factory=MqttTlsSettings)
    max_inflight: int = Field(default=200, ge=1, le=65535)

    def mqtt_settings(self, client_id: str) -> MqttSettings:
        """The shared MQTT settings model, for core.mqtt_tls."""
        return MqttSettings(
            host=self.host,
            port=self.port,
            username=self.username,
            password=self.password,
            client_id=client_id,
            keepalive_s=self.keepalive_s,
            tls=self.tls,
        )


class QueueConfig(Strict):
    """The on-disk store-and-forward queue (SQLite, WAL)."""

    path: Path = Path("var/edge-queue.sqlite")
    max_bytes: int = Field(default=256 * 1024 * 1024, ge=4096)
    max_age_s: float = Field(default=7 * 86_400.0, gt=0)
    overflow: Literal["drop_oldest"] = "drop_oldest"
    synchronous: Literal["normal", "full"] = Field(
        default="full", description="full: a committed reading survives power loss too."
    )


class Register(Strict):
    """One reading read from Modbus registers."""

    address: int = Field(ge=0, le=65535)
    function: Literal["holding", "input"] = "holding"
    type: RegisterType = "uint16"
    byte_order: Literal["big", "little"] = "big"
    word_order: Literal["big", "little"] = "big"
    scale: float = 1.0
    offset: float = 0.0
    unit: str | None = Field(default=None, description="g, kg or lb (weight); C or F (temp).")
    stable_register: int | None = Field(default=None, ge=0, le=65535)
    stable_bit: int | None = Field(default=None, ge=0, le=15)
    stable_function: Literal["holding", "input"] = "holding"

    @property
    def count(self) -> int:
        """Registers this reading spans."""
        return REGISTER_COUNT[self.type]

    @model_validator(mode="after")
    def _stable_pair(self) -> Register:
        if (self.stable_register is None) != (self.stable_bit is None):
            raise ValueError("stable_register and stable_bit go together: set both or neither")
        return self


class WeightFilterConfig(Strict):
    """Edge filtering of weight cells: publish settled changes and a heartbeat."""

    deadband_g: float = Field(default=5.0, ge=0)
    settle_samples: int = Field(
        default=3, ge=1, le=100, description="Without a stable bit: readings within settle_band_g."
    )
    settle_band_g: float = Field(default=2.0, ge=0)
    heartbeat_s: float = Field(default=60.0, gt=0)
    settled_repeats: int = Field(
        default=8,
        ge=1,
        le=1000,
        description="A new settled level is published this many polls in a row (see docs).",
    )


class DeviceBase(Strict):
    """What every device has."""

    name: Name
    kind: Literal["weight", "temp", "rfid"]
    poll_interval_s: float = Field(default=1.0, gt=0, le=3600)
    timeout_s: float = Field(default=1.0, gt=0, le=60)
    retries: int = Field(default=2, ge=0, le=10)
    offline_after: int = Field(
        default=3, ge=1, le=1000, description="Failed polls in a row before status goes offline."
    )
    batch_interval_s: float = Field(
        default=1.0, ge=0, le=3600, description="Readings collected this long form one message."
    )
    filter: WeightFilterConfig = Field(default_factory=WeightFilterConfig)
    min_value: float | None = Field(default=None, description="Physical range, grams or °C.")
    max_value: float | None = None

    def value_range(self) -> tuple[float, float]:
        """Plausible values after unit conversion: grams or °C."""
        low, high = GRAMS if self.kind == "weight" else CELSIUS
        return (
            low if self.min_value is None else self.min_value,
            high if self.max_value is None else self.max_value,
        )


def _check_units(kind: str, units: dict[str, str | None]) -> None:
    allowed = ("g", "kg", "lb") if kind == "weight" else ("C", "F")
    for where, unit in units.items():
        if unit is not None and unit not in allowed:
            raise ValueError(f"{where}: unit {unit!r} is not one of {', '.join(allowed)}")


class ModbusTcpDevice(DeviceBase):
    """A Modbus TCP device (shelf indicator, temperature transmitter)."""

    kind: Literal["weight", "temp"]
    protocol: Literal["modbus_tcp"]
    host: str
    port: int = Field(default=502, ge=1, le=65535)
    unit_id: int = Field(default=1, ge=0, le=255)
    registers: dict[Name, Register] = Field(min_length=1)

    @model_validator(mode="after")
    def _units(self) -> ModbusTcpDevice:
        _check_units(self.kind, {f"registers.{k}": r.unit for k, r in self.registers.items()})
        return self


class ModbusRtuDevice(DeviceBase):
    """A Modbus RTU device on a serial line."""

    kind: Literal["weight", "temp"]
    protocol: Literal["modbus_rtu"]
    serial_port: str
    baudrate: int = Field(default=9600, ge=300, le=921_600)
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    unit_id: int = Field(default=1, ge=0, le=247)
    registers: dict[Name, Register] = Field(min_length=1)

    @model_validator(mode="after")
    def _units(self) -> ModbusRtuDevice:
        _check_units(self.kind, {f"registers.{k}": r.unit for k, r in self.registers.items()})
        return self


class SerialScaleDevice(DeviceBase):
    """A serial scale: MT-SICS (``S``/``SI``) or a generic "weight + unit" line."""

    kind: Literal["weight"] = "weight"
    protocol: Literal["serial_scale"]
    serial_port: str
    baudrate: int = Field(default=9600, ge=300, le=921_600)
    cell: Name = "c1"
    dialect: Literal["mt_sics", "regex"] = "mt_sics"
    command: Literal["S", "SI"] | None = Field(
        default="SI", description="MT-SICS command sent each poll; null: the scale streams lines."
    )
    line_regex: str | None = Field(
        default=None,
        description="regex dialect: named groups 'value' and 'unit', optional 'stable'.",
    )
    default_unit: WeightUnit = "kg"

    @model_validator(mode="after")
    def _regex(self) -> SerialScaleDevice:
        if self.dialect == "regex":
            if not self.line_regex:
                raise ValueError("line_regex is required with dialect regex")
            try:
                compiled = re.compile(self.line_regex)
            except re.error as exc:
                raise ValueError(f"line_regex is not a regular expression: {exc}") from None
            if "value" not in compiled.groupindex:
                raise ValueError("line_regex needs a named group 'value'")
        return self


class LlrpDevice(DeviceBase):
    """An LLRP RFID reader (Impinj, Zebra, Kathrein, ...), read with sllurp.

    ``poll_interval_s`` is how often the agent collects the reader's tag reports; a reader that
    cannot be connected to, or stays silent past three keepalives, counts as a failed poll.
    """

    kind: Literal["rfid"] = "rfid"
    protocol: Literal["llrp"]
    host: str
    port: int = Field(default=5084, ge=1, le=65535)
    antennas: list[Annotated[int, Field(ge=1, le=64)]] = Field(default=[1], min_length=1)
    report_interval_s: float = Field(
        default=1.0, ge=0.05, le=3600, description="The reader sends its tag reports this often."
    )
    tx_power_dbm: float | None = Field(
        default=None, ge=-20, le=40, description="Closest entry of the reader's table; None: max."
    )
    dedup_window_s: float = Field(
        default=2.0, ge=0, le=3600, description="Reads of one EPC on one antenna this long: one."
    )
    keepalive_s: float = Field(
        default=10.0, ge=1, le=3600, description="Reader keepalive; three missed: reconnect."
    )
    session: Literal[0, 1, 2, 3] = 2
    tag_population: int = Field(default=32, ge=1, le=65535)

    @model_validator(mode="after")
    def _antennas(self) -> LlrpDevice:
        if len(set(self.antennas)) != len(self.antennas):
            raise ValueError("antennas: an antenna is listed twice")
        return self


Device = Annotated[
    ModbusTcpDevice | ModbusRtuDevice | SerialScaleDevice | LlrpDevice,
    Field(discriminator="protocol"),
]


class EdgeConfig(Strict):
    """The whole agent configuration."""

    site: Name
    agent_id: Name = "edge"
    status_kind: Literal["weight", "temp", "rfid"] | None = Field(
        default=None, description="Kind under which the agent's own status goes; default: first."
    )
    heartbeat_s: float = Field(default=30.0, gt=0, le=86_400)
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    broker: BrokerConfig = Field(default_factory=BrokerConfig)
    queue: QueueConfig = Field(default_factory=QueueConfig)
    devices: list[Device] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> EdgeConfig:
        seen: set[str] = set()
        for device in self.devices:
            if device.name in seen:
                raise ValueError(f"device name {device.name!r} is used twice")
            seen.add(device.name)
        return self

    @model_validator(mode="after")
    def _shared_lines(self) -> EdgeConfig:
        # Several Modbus RTU units on one RS-485 bus share its port: one line, one setting.
        by_port: dict[str, ModbusRtuDevice] = {}
        units: dict[tuple[str, int], str] = {}
        scales = {d.serial_port: d.name for d in self.devices if isinstance(d, SerialScaleDevice)}
        for device in self.devices:
            if not isinstance(device, ModbusRtuDevice):
                continue
            port = device.serial_port
            if port in scales:
                raise ValueError(
                    f"serial port {port} is used by Modbus device {device.name!r} and by the"
                    f" scale {scales[port]!r}"
                )
            first = by_port.setdefault(port, device)
            mine = (device.baudrate, device.parity, device.stopbits)
            theirs = (first.baudrate, first.parity, first.stopbits)
            if mine != theirs:
                raise ValueError(
                    f"devices {first.name!r} and {device.name!r} share serial port {port} with"
                    f" different line settings (baudrate, parity, stopbits {theirs} and {mine})"
                )
            other = units.setdefault((port, device.unit_id), device.name)
            if other != device.name:
                raise ValueError(
                    f"devices {other!r} and {device.name!r} are both unit {device.unit_id} on"
                    f" serial port {port}"
                )
        return self

    @property
    def agent_kind(self) -> Literal["weight", "temp", "rfid"]:
        """The kind segment of the agent's own status topic."""
        return self.status_kind or self.devices[0].kind


_PROTOCOLS = ("modbus_tcp", "modbus_rtu", "serial_scale", "llrp")


def describe(exc: ValidationError, raw: Any, source: str) -> str:
    """One line per error, naming the device by index and name."""
    parts = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = list(error["loc"])
        where = ""
        if len(loc) >= 2 and loc[0] == "devices" and isinstance(loc[1], int):
            index = loc[1]
            name = None
            if isinstance(raw, dict) and isinstance(raw.get("devices"), list):
                devices = raw["devices"]
                if index < len(devices) and isinstance(devices[index], dict):
                    name = devices[index].get("name")
            where = f"devices[{index}]" + (f" ({name})" if name else "")
            # the discriminator's tag (modbus_tcp, ...) is noise in the path
            loc = [p for p in loc[2:] if p not in _PROTOCOLS]
        path = ".".join(str(p) for p in loc)
        where = ".".join(p for p in (where, path) if p) or "<root>"
        parts.append(f"{where}: {error['msg']}")
    return f"{source}: " + "; ".join(parts)


def parse_config(raw: Any, source: str = "config") -> EdgeConfig:
    """Validate a parsed YAML document; ConfigError naming device and field."""
    try:
        return EdgeConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(describe(exc, raw, source)) from None


def load_config(path: Path) -> EdgeConfig:
    """Read and validate the YAML file at ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror or exc}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not YAML ({' '.join(str(exc).split())})") from None
    return parse_config(raw, str(path))

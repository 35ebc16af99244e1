"""Device drivers: Modbus TCP/RTU (pymodbus async client), serial scales (pyserial) and LLRP
RFID readers (sllurp, :mod:`edge.llrp`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from typing import Any

import serial  # type: ignore[import-untyped]  # pyserial ships no type hints
from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from edge.codec import checked, convert, decode_registers, parse_mt_sics, parse_regex
from edge.config import LlrpDevice, ModbusRtuDevice, ModbusTcpDevice, Register, SerialScaleDevice
from edge.errors import DeviceError, ReadingError
from edge.llrp import LlrpDriver
from edge.readings import Poll, Reading, now_ms

logger = logging.getLogger(__name__)

MAX_SPAN = 125  # registers per Modbus read request


class SerialLine:
    """One Modbus RTU serial line (an RS-485 bus) and the devices polled on it.

    The devices share one client, so the port is opened once, and take turns: one request at
    a time is on the line, as a bus master must. The line settings are the first device's (the
    configuration refuses devices on one port with different ones).
    """

    def __init__(self, device: ModbusRtuDevice) -> None:
        self.client = AsyncModbusSerialClient(
            device.serial_port,
            framer=FramerType.RTU,
            baudrate=device.baudrate,
            parity=device.parity,
            stopbits=device.stopbits,
            timeout=device.timeout_s,
            retries=device.retries,
            reconnect_delay=0,
        )
        self.turn = asyncio.Lock()
        self.users = 0


class ModbusDriver:
    """Reads a register map; contiguous registers of one function are read in one request."""

    def __init__(
        self, device: ModbusTcpDevice | ModbusRtuDevice, *, line: SerialLine | None = None
    ) -> None:
        self.device = device
        self.low, self.high = device.value_range()
        self.client: AsyncModbusTcpClient | AsyncModbusSerialClient
        self._line: SerialLine | None = None
        if isinstance(device, ModbusTcpDevice):
            self.client = AsyncModbusTcpClient(
                device.host,
                port=device.port,
                timeout=device.timeout_s,
                retries=device.retries,
                reconnect_delay=0,
            )
        else:
            self._line = line if line is not None else SerialLine(device)
            self._line.users += 1
            self.client = self._line.client
        self._plan = self._plan_reads()

    def _plan_reads(self) -> list[tuple[str, int, int]]:
        """(function, start, count) requests covering every register the map needs."""
        wanted: dict[str, set[int]] = {"holding": set(), "input": set()}
        for reg in self.device.registers.values():
            wanted[reg.function].update(range(reg.address, reg.address + reg.count))
            if reg.stable_register is not None:
                wanted[reg.stable_function].add(reg.stable_register)
        plan: list[tuple[str, int, int]] = []
        for function, addresses in wanted.items():
            ordered = sorted(addresses)
            if not ordered:
                continue
            start = prev = ordered[0]
            for address in ordered[1:]:
                if address == prev + 1 and address - start < MAX_SPAN:
                    prev = address
                else:
                    plan.append((function, start, prev - start + 1))
                    start = prev = address
            plan.append((function, start, prev - start + 1))
        return plan

    async def close(self) -> None:
        """Close the connection (a shared serial line once its last device closes)."""
        if self._line is not None:
            self._line.users -= 1
            if self._line.users > 0:
                return
        self.client.close()

    async def _read(self, function: str, start: int, count: int) -> list[int]:
        if self._line is None:
            return await self._request(function, start, count)
        async with self._line.turn:
            return await self._request(function, start, count)

    async def _request(self, function: str, start: int, count: int) -> list[int]:
        if not self.client.connected and not await self.client.connect():
            raise DeviceError(f"cannot connect to {self._where()}")
        call = (
            self.client.read_holding_registers
            if function == "holding"
            else self.client.read_input_registers
        )
        try:
            response: Any = await call(start, count=count, device_id=self.device.unit_id)
        except ModbusException as exc:
            raise DeviceError(f"{self._where()}: no answer ({exc})") from None
        if response.isError():
            code = getattr(response, "exception_code", None)
            raise DeviceError(
                f"{self._where()}: exception code {code} reading {function} {start}+{count}"
            )
        registers = list(response.registers)
        if len(registers) < count:
            raise DeviceError(f"{self._where()}: short answer ({len(registers)} of {count})")
        return registers[:count]

    def _where(self) -> str:
        d = self.device
        return f"{d.host}:{d.port}" if isinstance(d, ModbusTcpDevice) else d.serial_port

    async def poll(self) -> Poll:
        """Read every register of the map once; DeviceError when the device does not answer."""
        memory: dict[tuple[str, int], int] = {}
        for function, start, count in self._plan:
            values = await self._read(function, start, count)
            for i, value in enumerate(values):
                memory[(function, start + i)] = value
        ts = now_ms()
        readings: list[Reading] = []
        rejected: list[str] = []
        for name, reg in self.device.registers.items():
            try:
                number = self._value(memory, reg)
                readings.append(Reading(name, number, self._stable(memory, reg), ts))
            except ReadingError as exc:
                rejected.append(f"{name}: {exc}")
        return Poll(readings, rejected)

    def _value(self, memory: dict[tuple[str, int], int], reg: Register) -> float:
        words = [memory[(reg.function, reg.address + i)] for i in range(reg.count)]
        raw = decode_registers(words, reg)
        return convert(raw, reg, self.device.kind, self.low, self.high)

    @staticmethod
    def _stable(memory: dict[tuple[str, int], int], reg: Register) -> bool | None:
        if reg.stable_register is None or reg.stable_bit is None:
            return None
        return bool(memory[(reg.stable_function, reg.stable_register)] >> reg.stable_bit & 1)


class SerialScaleDriver:
    """A scale on a serial port: asks ``S``/``SI`` each poll, or reads the lines it streams."""

    def __init__(self, device: SerialScaleDevice) -> None:
        self.device = device
        self.low, self.high = device.value_range()
        self._port: Any = None
        self._pattern = re.compile(device.line_regex) if device.line_regex else None
        self._partial = b""

    async def close(self) -> None:
        """Close the port."""
        if self._port is not None:
            port, self._port = self._port, None
            await asyncio.to_thread(port.close)

    async def poll(self) -> Poll:
        """One exchange (or the lines streamed since the last poll)."""
        try:
            return await asyncio.to_thread(self._poll_blocking)
        except (serial.SerialException, OSError) as exc:
            await self.close()
            raise DeviceError(f"{self.device.serial_port}: {exc}") from None

    def _open(self) -> Any:
        if self._port is None:
            self._port = serial.serial_for_url(
                self.device.serial_port,
                baudrate=self.device.baudrate,
                timeout=self.device.timeout_s,
            )
            self._partial = b""
        return self._port

    def _poll_blocking(self) -> Poll:
        port = self._open()
        lines: list[bytes] = []
        if self.device.command is not None:
            port.reset_input_buffer()
            port.write(f"{self.device.command}\r\n".encode("ascii"))
            for _ in range(self.device.retries + 1):
                line = port.read_until(b"\n")
                if line.endswith(b"\n"):
                    lines.append(line)
                    break
                if line:
                    lines.append(line)  # a half line: counted as garbage below
                    break
            if not lines:
                raise DeviceError(f"{self.device.serial_port}: no answer to {self.device.command}")
        else:
            data = self._partial + port.read(port.in_waiting or 1)
            *complete, self._partial = data.split(b"\n")
            lines = [c + b"\n" for c in complete]
            if len(self._partial) > 256:
                lines.append(self._partial)
                self._partial = b""
            if not lines and not data:
                raise DeviceError(f"{self.device.serial_port}: scale sends nothing")
        return self._parse(lines)

    def _parse(self, lines: list[bytes]) -> Poll:
        ts = now_ms()
        readings: list[Reading] = []
        rejected: list[str] = []
        for raw in lines:
            if not raw.endswith(b"\n"):
                rejected.append(f"half line {raw[:40]!r}")
                continue
            try:
                text = raw.decode("ascii")
            except UnicodeDecodeError:
                rejected.append(f"not ASCII {raw[:40]!r}")
                continue
            try:
                if self._pattern is not None:
                    got = parse_regex(text, self._pattern, self.device.default_unit)
                else:
                    got = parse_mt_sics(text)
                grams = checked(got.grams, self.low, self.high)
            except ReadingError as exc:
                rejected.append(str(exc))
                continue
            readings.append(Reading(self.device.cell, grams, got.stable, ts))
        return Poll(readings, rejected)


Driver = ModbusDriver | SerialScaleDriver | LlrpDriver


def driver_for(
    device: ModbusTcpDevice | ModbusRtuDevice | SerialScaleDevice | LlrpDevice,
    lines: dict[str, SerialLine] | None = None,
) -> Driver:
    """The driver of a configured device; Modbus RTU devices on one port share its line in
    ``lines`` (by port)."""
    if isinstance(device, SerialScaleDevice):
        return SerialScaleDriver(device)
    if isinstance(device, LlrpDevice):
        return LlrpDriver(device)
    if isinstance(device, ModbusRtuDevice) and lines is not None:
        line = lines.get(device.serial_port)
        if line is None:
            line = lines[device.serial_port] = SerialLine(device)
        return ModbusDriver(device, line=line)
    return ModbusDriver(device)


async def close_quietly(driver: Driver) -> None:
    """Close a driver, ignoring errors of an already broken connection."""
    with contextlib.suppress(OSError, serial.SerialException):
        await driver.close()

"""Simulated Modbus devices served by pymodbus: a 4-cell shelf indicator and a temperature
transmitter on one TCP port (unit 1 and unit 2), or as Modbus RTU on one serial line, with
scripted picks and faults.

Register maps (holding and input registers read the same values):

- shelf (unit 1): cell n (0-3) net weight as float32 kg at 2n..2n+1 (big-endian words);
  register 8: bit n set when cell n is stable; cell n as int32 grams at 100+2n.
- temperature (unit 2): probe n (0-3) as int16 tenths of °C at n; register 10 counts reads.

``python -m simulators.modbus_devices --port 5020 --pick c1:-0.5@10`` runs them on TCP;
``--serial /dev/ttyUSB1`` serves RTU on that port instead, and ``--serial pty`` on one end of a
:class:`~simulators.null_modem.NullModem`, printing the other end for the agent's serial_port.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from pymodbus import FramerType
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimAction, SimData, SimDevice

from simulators.null_modem import NullModem

logger = logging.getLogger(__name__)

SHELF_UNIT = 1
TEMP_UNIT = 2
CELLS = 4
REGISTERS = 200


def _float_words(value: float) -> list[int]:
    high, low = struct.unpack(">HH", struct.pack(">f", value))
    return [high, low]


def _int32_words(value: int) -> list[int]:
    high, low = struct.unpack(">HH", struct.pack(">i", value))
    return [high, low]


@dataclass(frozen=True)
class SerialLine:
    """A serial port to serve Modbus RTU on, with its line settings."""

    port: str
    baudrate: int = 9600
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1


@dataclass
class Faults:
    """Faults to inject: silence (no answer), an exception code, garbage values."""

    silent: bool = False
    exception: ExcCodes | None = None
    garbage: bool = False


@dataclass
class Shelf:
    """Four load cells in kilograms; a change stays unstable for ``unstable_reads`` reads."""

    kg: list[float] = field(default_factory=lambda: [0.0] * CELLS)
    unstable: list[int] = field(default_factory=lambda: [0] * CELLS)
    faults: Faults = field(default_factory=Faults)
    reads: int = 0

    def set_kg(self, cell: int, kg: float, *, unstable_reads: int = 2) -> None:
        """Put ``kg`` on cell ``cell``; it reads unstable for the next reads."""
        self.kg[cell] = kg
        self.unstable[cell] = unstable_reads

    def pick(self, cell: int, kg: float, *, unstable_reads: int = 2) -> None:
        """Take ``kg`` off cell ``cell`` (negative puts it back)."""
        self.set_kg(cell, round(self.kg[cell] - kg, 6), unstable_reads=unstable_reads)

    def registers(self) -> dict[int, int]:
        """The current register image."""
        image: dict[int, int] = {}
        status = 0
        for n in range(CELLS):
            shown = self.kg[n]
            if self.unstable[n]:
                shown = self.kg[n] + 0.137 * self.unstable[n]  # still swinging
            else:
                status |= 1 << n
            value = math.nan if self.faults.garbage else shown
            image[2 * n], image[2 * n + 1] = _float_words(value)
            grams = -(2**31) if self.faults.garbage else round(shown * 1000)
            image[100 + 2 * n], image[101 + 2 * n] = _int32_words(grams)
        image[8] = status
        return image

    def after_read(self) -> None:
        """One read of the status register ages the unstable periods."""
        self.reads += 1
        self.unstable = [max(0, u - 1) for u in self.unstable]


@dataclass
class Transmitter:
    """Four temperature probes in °C."""

    celsius: list[float] = field(default_factory=lambda: [4.0, 4.5, 5.0, 20.0])
    faults: Faults = field(default_factory=Faults)
    reads: int = 0

    def registers(self) -> dict[int, int]:
        """The current register image."""
        image: dict[int, int] = {}
        for n, value in enumerate(self.celsius):
            tenths = 32767 if self.faults.garbage else round(value * 10)
            image[n] = tenths & 0xFFFF
        image[10] = self.reads & 0xFFFF
        return image


def _action(
    image: Callable[[], dict[int, int]], faults: Faults, on_read: Callable[[], None]
) -> SimAction:
    async def action(  # noqa: PLR0917 - pymodbus calls it positionally
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        current_registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        del function_code, set_values
        if faults.silent:
            await asyncio.sleep(30)
            return ExcCodes.DEVICE_BUSY
        if faults.exception is not None:
            return faults.exception
        values = image()
        for i in range(count):
            current_registers[address - start_address + i] = values.get(address + i, 0)
        on_read()
        return None

    return action


class Devices:
    """Both simulated devices on one Modbus server: TCP, or RTU on a serial line."""

    def __init__(self) -> None:
        self.shelf = Shelf()
        self.temp = Transmitter()

        def temp_read() -> None:
            self.temp.reads += 1

        blocks = [SimData(0, count=REGISTERS, values=0, datatype=DataType.REGISTERS)]
        self._devices = [
            SimDevice(
                id=SHELF_UNIT,
                simdata=list(blocks),
                action=_action(self.shelf.registers, self.shelf.faults, self.shelf.after_read),
            ),
            SimDevice(
                id=TEMP_UNIT,
                simdata=[SimData(0, count=REGISTERS, values=0, datatype=DataType.REGISTERS)],
                action=_action(self.temp.registers, self.temp.faults, temp_read),
            ),
        ]
        self.server: ModbusTcpServer | ModbusSerialServer | None = None

    async def serve(self, host: str, port: int) -> None:
        """Start serving in the running loop (returns once listening)."""
        self.server = ModbusTcpServer(self._devices, address=(host, port))
        await self.server.serve_forever(background=True)

    async def serve_rtu(self, line: SerialLine) -> None:
        """Start serving Modbus RTU on ``line`` in the running loop (returns once open)."""
        self.server = ModbusSerialServer(
            self._devices,
            framer=FramerType.RTU,
            port=line.port,
            baudrate=line.baudrate,
            parity=line.parity,
            stopbits=line.stopbits,
        )
        await self.server.serve_forever(background=True)

    async def stop(self) -> None:
        """Stop serving."""
        if self.server is not None:
            await self.server.shutdown()  # type: ignore[no-untyped-call]  # pymodbus
            self.server = None


class ThreadedDevices:
    """The devices served from a thread of their own (for tests and the benchmark): on TCP
    ``host:port``, or, given ``line``, as Modbus RTU on that serial line (``port`` unused)."""

    def __init__(
        self, port: int = 0, host: str = "127.0.0.1", *, line: SerialLine | None = None
    ) -> None:
        self.devices = Devices()
        self.port = port
        self.line = line
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(host,), daemon=True)

    def _run(self, host: str) -> None:
        asyncio.set_event_loop(self._loop)
        serving = (
            self.devices.serve(host, self.port)
            if self.line is None
            else self.devices.serve_rtu(self.line)
        )
        try:
            self._loop.run_until_complete(serving)
            self._ready.set()
            self._loop.run_forever()
        finally:
            self._loop.close()

    def start(self) -> ThreadedDevices:
        """Start and wait until listening."""
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("Modbus simulator did not start")
        return self

    def stop(self) -> None:
        """Stop the server and its thread."""
        asyncio.run_coroutine_threadsafe(self.devices.stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def _pick(text: str) -> tuple[int, float, float]:
    try:
        cell, rest = text.split(":", 1)
        kg, at = rest.split("@", 1)
        return int(cell.lstrip("c")) - 1, float(kg), float(at)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not CELL:KG@SECONDS (c1:0.5@10)") from None


async def _main(args: argparse.Namespace) -> None:
    devices = Devices()
    for n, kg in enumerate(args.initial):
        devices.shelf.set_kg(n, kg, unstable_reads=0)
    modem: NullModem | None = None
    if args.serial is None:
        await devices.serve(args.host, args.port)
        where = f"{args.host}:{args.port}"
    else:
        port = args.serial
        if port == "pty":
            modem = NullModem().start()
            port = modem.b
        line = SerialLine(port, args.baudrate, args.parity, args.stopbits)
        await devices.serve_rtu(line)
        where = f"Modbus RTU {port} ({line.baudrate} {line.parity} {line.stopbits})"
        if modem is not None:
            where += f"; the agent's serial_port: {modem.a}"
    logger.info("shelf (unit %d) and transmitter (unit %d) on %s", SHELF_UNIT, TEMP_UNIT, where)
    start = asyncio.get_running_loop().time()
    for cell, kg, at in sorted(args.pick, key=lambda p: p[2]):
        await asyncio.sleep(max(0.0, start + at - asyncio.get_running_loop().time()))
        devices.shelf.pick(cell, kg)
        logger.info("picked %.3f kg from c%d: now %.3f kg", kg, cell + 1, devices.shelf.kg[cell])
    try:
        await asyncio.Event().wait()
    finally:
        await devices.stop()
        if modem is not None:
            modem.stop()


def main(argv: list[str] | None = None) -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=5020, help="TCP port (default: %(default)s)")
    parser.add_argument(
        "--serial",
        metavar="PORT",
        help="serve Modbus RTU on this serial port instead of TCP; 'pty': on a null modem",
    )
    parser.add_argument("--baudrate", type=int, default=9600, help="RTU (default: %(default)s)")
    parser.add_argument("--parity", choices=("N", "E", "O"), default="N", help="RTU parity")
    parser.add_argument("--stopbits", type=int, choices=(1, 2), default=1, help="RTU stop bits")
    parser.add_argument(
        "--initial",
        type=float,
        nargs=CELLS,
        default=[10.0, 5.0, 2.5, 0.0],
        metavar="KG",
        help="starting kilograms of the four cells",
    )
    parser.add_argument(
        "--pick",
        type=_pick,
        action="append",
        default=[],
        metavar="CELL:KG@S",
        help="take KG off CELL (c1..c4) S seconds after start; repeatable",
    )
    args = parser.parse_args(argv)
    if args.serial == "pty" and args.parity != "N":
        parser.error("a pty takes no parity: use --parity N with --serial pty")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    asyncio.run(_main(args))


if __name__ == "__main__":
    main()

"""A simulated MT-SICS scale on a pty pair: answers ``S`` and ``SI`` with its weight.

The agent opens :attr:`SerialScale.device` (the pty's slave name) like a serial port. The
weight changes by scripted picks; faults reply busy (``S I``), errors (``ES``/``EL``), half
lines or garbage. ``python -m simulators.serial_scale --pick 0.25@5`` prints the device name.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import select
import threading
import time
import tty

logger = logging.getLogger(__name__)


_FAULT_REPLIES = {
    "busy": b"S I\r\n",
    "error": b"EL\r\n",
    "half": b"S S     12.",
    "garbage": b"\x00\xff#%!\r\n",
}


class SerialScale:
    """One scale; ``kg`` is what lies on it. Thread-safe setters."""

    def __init__(self, kg: float = 0.0, *, unit: str = "kg") -> None:
        self.kg = kg
        self.unit = unit
        self.unstable = 0
        self.fault: str | None = None  # busy, error, half, garbage, silent
        self.requests = 0
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.device = os.ttyname(self._slave)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="serial-scale", daemon=True)

    def start(self) -> SerialScale:
        """Start answering."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop and close the pty."""
        self._stop.set()
        self._thread.join(5)
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)

    def pick(self, kg: float, *, unstable_reads: int = 2) -> None:
        """Take ``kg`` off (negative puts it on); dynamic for the next replies."""
        self.kg = round(self.kg - kg, 6)
        self.unstable = unstable_reads

    def reply(self, command: str) -> bytes:
        """The answer to one command line."""
        if command not in ("S", "SI"):
            return b"ES\r\n"
        if self.fault in _FAULT_REPLIES:
            return _FAULT_REPLIES[self.fault]
        swinging = self.unstable > 0
        if command == "S" and swinging:
            self.unstable -= 1
            return b"S I\r\n"  # S waits for stability; busy meanwhile
        shown = self.kg + (0.021 * self.unstable if swinging else 0.0)
        if swinging:
            self.unstable -= 1
        flag = "D" if swinging else "S"
        return f"S {flag} {shown:10.3f} {self.unit}\r\n".encode("ascii")

    def _serve(self) -> None:
        buffer = b""
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], 0.1)
            if not ready:
                continue
            try:
                data = os.read(self._master, 1024)
            except OSError:
                return
            buffer += data
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                self.requests += 1
                if self.fault == "silent":
                    continue
                answer = self.reply(line.strip().decode("ascii", "replace"))
                with contextlib.suppress(OSError):
                    os.write(self._master, answer)


def _pick(text: str) -> tuple[float, float]:
    try:
        kg, at = text.split("@", 1)
        return float(kg), float(at)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not KG@SECONDS (0.25@5)") from None


def main(argv: list[str] | None = None) -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kg", type=float, default=12.345, help="starting weight in kg")
    parser.add_argument(
        "--pick",
        type=_pick,
        action="append",
        default=[],
        metavar="KG@S",
        help="take KG off S seconds after start; repeatable",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    scale = SerialScale(args.kg).start()
    logger.info("MT-SICS scale on %s (%.3f kg)", scale.device, scale.kg)
    start = time.monotonic()
    try:
        for kg, at in sorted(args.pick, key=lambda p: p[1]):
            time.sleep(max(0.0, start + at - time.monotonic()))
            scale.pick(kg)
            logger.info("picked %.3f kg: now %.3f kg", kg, scale.kg)
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        scale.stop()


if __name__ == "__main__":
    main()

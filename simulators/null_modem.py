"""A null-modem cable between two pseudo-terminals: bytes written on one end are read on the
other, like two serial ports wired TX to RX.

Each end is the slave of a pty pair (:attr:`NullModem.a`, :attr:`NullModem.b`), opened by path
like any serial port; a thread copies between the two masters. :meth:`unplug` drops every byte
until :meth:`plug`, as a pulled cable does. Line settings (baud rate, stop bits) are accepted
and ignored; parity cannot be set on a pty (glibc's ``tcsetattr`` refuses it), so both ends
run with parity N.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
import tty

logger = logging.getLogger(__name__)


class NullModem:
    """Two pty slaves joined end to end; start it before opening them."""

    def __init__(self) -> None:
        self._pairs = [os.openpty(), os.openpty()]
        for master, slave in self._pairs:
            tty.setraw(slave)
            # A full buffer on an end nobody reads loses bytes instead of stalling the cable.
            os.set_blocking(master, False)
        self.a = os.ttyname(self._pairs[0][1])
        self.b = os.ttyname(self._pairs[1][1])
        self.plugged = threading.Event()
        self.plugged.set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._copy, name="null-modem", daemon=True)

    def start(self) -> NullModem:
        """Start carrying bytes."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop and close both pty pairs."""
        self._stop.set()
        self._thread.join(5)
        for master, slave in self._pairs:
            for fd in (master, slave):
                with contextlib.suppress(OSError):
                    os.close(fd)

    def unplug(self) -> None:
        """Drop every byte in both directions from now on."""
        self.plugged.clear()

    def plug(self) -> None:
        """Carry bytes again."""
        self.plugged.set()

    def _copy(self) -> None:
        (master_a, _), (master_b, _) = self._pairs
        other = {master_a: master_b, master_b: master_a}
        while not self._stop.is_set():
            ready, _, _ = select.select(list(other), [], [], 0.1)
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                except BlockingIOError:
                    continue
                except OSError:
                    return  # closed under us by stop()
                if self.plugged.is_set():
                    with contextlib.suppress(BlockingIOError):
                        os.write(other[fd], data)

"""Errors of the edge agent."""

from core.errors import StockSenseError


class EdgeError(StockSenseError):
    """Base of every error the edge agent raises on purpose."""


class DeviceError(EdgeError):
    """A device did not answer, or answered with a Modbus exception code."""


class ReadingError(EdgeError):
    """A device answered, but with a value that is not a plausible reading (NaN, out of range)."""


class QueueError(EdgeError):
    """The on-disk queue cannot be opened or written."""

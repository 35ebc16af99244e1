"""Exception hierarchy shared by every StockSense service."""


class StockSenseError(Exception):
    """Base class of every error StockSense raises on purpose."""


class ConfigError(StockSenseError):
    """Settings or seed data are invalid; the message says which value and why."""


class PayloadError(StockSenseError):
    """A message could not be turned into readings; ``reason`` is a short machine-readable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class StoreError(StockSenseError):
    """A time-series or relational store refused or failed an operation."""


class InfluxWriteError(StoreError):
    """InfluxDB did not accept a write; ``retryable`` tells whether sending again can help."""

    def __init__(self, message: str, *, retryable: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status


class InventoryStoreError(StoreError):
    """Base class of the inventory stores' errors."""


class NotFoundError(InventoryStoreError, KeyError):
    """The record does not exist."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "not found"


class ConflictError(InventoryStoreError):
    """The change conflicts with the stored state (a lifecycle step, a reference in use)."""


class TopicError(StockSenseError, ValueError):
    """A topic or topic filter does not follow MQTT or the v1 layout."""


class EpcError(StockSenseError, ValueError):
    """The EPC is not a valid SGTIN-96, or a GTIN cannot be encoded as one."""


class AuthError(StockSenseError):
    """A user or token operation that cannot be done (unknown user, name taken ...)."""

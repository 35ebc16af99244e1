"""Durable on-disk spool of line-protocol batches, replayed in order when InfluxDB returns.

Each batch is one file named by a monotonically increasing sequence number, written to a
temp name, fsynced and renamed, so a crash never leaves a half batch behind.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)


class Spool:
    """Append-only directory of batches; oldest first."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.tmp"):
            stale.unlink()
        existing = self._segments()
        self._next = int(existing[-1].stem) + 1 if existing else 0

    def _segments(self) -> list[Path]:
        return sorted(self.directory.glob("*.lp"))

    def append(self, body: bytes) -> Path:
        """Store one batch durably and return its path."""
        path = self.directory / f"{self._next:016d}.lp"
        tmp = path.with_suffix(".tmp")
        with tmp.open("wb") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.rename(path)
        self._next += 1
        return path

    def oldest(self) -> Path | None:
        """The next batch to replay, if any."""
        segments = self._segments()
        return segments[0] if segments else None

    def __len__(self) -> int:
        return len(self._segments())

    def pending_bytes(self) -> int:
        """Total size of spooled batches."""
        return sum(p.stat().st_size for p in self._segments())

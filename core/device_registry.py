"""The enrolled devices, as the broker's ACL file grants them (kept by ``stocksense devices``).

A device is enrolled when a ``user`` block of the Mosquitto ACL file lets it write its own
topics: the command writes, per device::

    user wh1/temp/probe-3
    topic write stocksense/v1/wh1/temp/probe-3/+

The username is the device key ``site/kind/device``: ``/`` never occurs in a topic segment, so
one username names exactly one device (a dotted ``wh1.temp.probe-3`` would not, since sites
and devices may contain dots). Ingest reads the same file, so the devices the broker lets in
and the devices ingest accepts cannot drift apart.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from core import topics
from core.errors import ConfigError, TopicError
from core.identifiers import SEGMENT_RE

if TYPE_CHECKING:
    from core.settings import IngestSettings

logger = logging.getLogger(__name__)

UNKNOWN_DEVICE = "unknown_device"
REFRESH_S = 1.0
_GRANTS = frozenset({"write", "readwrite"})


def device_key(site: str, kind: str, device: str) -> str:
    """``site/kind/device``, after checking each segment against the wire contract."""
    if kind not in topics.KINDS:
        raise TopicError(f"kind {kind!r} is not one of {', '.join(topics.KINDS)}")
    topics.build(site, "temp", device)  # validates site and device
    return f"{site}/{kind}/{device}"


def username(site: str, kind: str, device: str) -> str:
    """The broker username of a device: its device key."""
    return device_key(site, kind, device)


def topic_grant(site: str, kind: str, device: str) -> str:
    """The ACL topic of a device: its own channels and nothing else."""
    return f"{topics.ROOT}/{device_key(site, kind, device)}/+"


def _granted_device(line: str) -> str | None:
    """The device key a ``topic`` ACL line lets write, when it names exactly one device."""
    words = line.split()
    if len(words) == 2:  # "topic <filter>" is readwrite
        access, pattern = "readwrite", words[1]
    elif len(words) == 3:
        access, pattern = words[1], words[2]
    else:
        return None
    if access not in _GRANTS:
        return None
    parts = pattern.split("/")
    if len(parts) != 6 or "/".join(parts[:2]) != topics.ROOT:
        return None
    site, kind, device = parts[2:5]
    if kind not in topics.KINDS or not all(SEGMENT_RE.fullmatch(s) for s in (site, device)):
        return None  # wildcards and foreign layouts enrol nobody
    return f"{site}/{kind}/{device}"


def enrolled_devices(acl_text: str) -> frozenset[str]:
    """Device keys granted to a user block of a Mosquitto ACL file."""
    found: set[str] = set()
    in_user = False
    for raw in acl_text.splitlines():
        line = raw.strip()
        if line.startswith("user "):
            in_user = True
        elif line.startswith("topic ") and in_user:
            key = _granted_device(line)
            if key is not None:
                found.add(key)
    return frozenset(found)


@dataclass
class DeviceRegistry:
    """Enrolled devices from an ACL file, re-read when the file changes (checked each second).

    A file that becomes unreadable keeps the last good set: a half-finished edit by hand must
    not dead-letter the whole fleet.
    """

    path: Path
    _devices: frozenset[str] = field(default=frozenset(), init=False)
    _stamp: tuple[int, int] | None = field(default=None, init=False)
    _next_check: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        try:
            self._load()
        except OSError as exc:
            raise ConfigError(
                f"STOCKSENSE_INGEST__DEVICE_ACL_FILE={self.path}: cannot be read"
                f" ({exc.strerror or exc})"
            ) from None

    def _load(self) -> None:
        stat = self.path.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            self._devices = enrolled_devices(self.path.read_text(encoding="utf-8"))
            self._stamp = stamp
            logger.info("%d devices enrolled in %s", len(self._devices), self.path)

    def knows(self, device_key: str) -> bool:
        """Whether ``site/kind/device`` is enrolled.

        Removals are picked up within ``REFRESH_S``; an unknown device makes the file be
        checked at once (a stat, re-read only if it changed), so a device enrolled a moment ago
        is not dead-lettered for publishing before the next periodic check.
        """
        now = time.monotonic()
        known = device_key in self._devices
        if now >= self._next_check or not known:
            self._next_check = now + REFRESH_S
            try:
                self._load()
            except OSError as exc:
                logger.warning("keeping the enrolled devices: %s: %s", self.path, exc)
            known = device_key in self._devices
        return known

    def why(self, device_key: str) -> str:
        """The dead-letter detail for a device that is not enrolled."""
        return f"device {device_key} is not enrolled in {self.path}"

    @property
    def devices(self) -> frozenset[str]:
        """The device keys enrolled at the last read."""
        return self._devices


def from_settings(ingest: IngestSettings) -> DeviceRegistry | None:
    """The registry ingest checks, or None when ``known_devices_only`` is off."""
    if not ingest.known_devices_only:
        return None
    if ingest.device_acl_file is None:
        raise ConfigError(
            "STOCKSENSE_INGEST__KNOWN_DEVICES_ONLY=true needs STOCKSENSE_INGEST__DEVICE_ACL_FILE"
            " (the broker ACL file kept by 'stocksense devices')"
        )
    return DeviceRegistry(ingest.device_acl_file)

"""Benchmarks that print figures; run them as scripts, they are not tests."""

from __future__ import annotations

import os
import re
from pathlib import Path


def proc_memory_mb(pid: int, field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of process ``pid`` in MB, from ``/proc`` (NaN if absent).

    Not ``ru_maxrss``: Linux carries it over exec, so a process spawned by a large parent would
    report the parent's peak.
    """
    match = re.search(rf"^{field}:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.M)
    return int(match.group(1)) / 1024 if match else float("nan")


def proc_cpu_s(pid: int) -> float:
    """User plus system CPU seconds process ``pid`` has used, from ``/proc/<pid>/stat``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

"""Generate the dashboard JSON files from their code.

    python -m dashboards.build           # write dashboards/*.json
    python -m dashboards.build --check   # exit 1, naming them, when a file differs

The JSON files are committed and shipped (Grafana provisioning and ``dashboards.push`` read
them); the code in ``dashboards/<name>.py`` is where they are changed.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from grafana_foundation_sdk.builders.dashboard import Dashboard

from dashboards import (
    DASHBOARD_DIR,
    alert_response,
    alerts,
    cold_chain,
    inventory_health,
    warehouse,
)
from dashboards.kit import model

logger = logging.getLogger(__name__)

BUILDERS: dict[str, Callable[[], Dashboard]] = {
    cold_chain.UID: cold_chain.build,
    warehouse.UID: warehouse.build,
    alerts.UID: alerts.build,
    inventory_health.UID: inventory_health.build,
    alert_response.UID: alert_response.build,
}


def render(build: Callable[[], Dashboard]) -> str:
    """One dashboard's file content: its JSON model, indented, keys in the builder's order."""
    return json.dumps(model(build()), indent=2, ensure_ascii=False) + "\n"


def generate() -> dict[str, str]:
    """File name -> content of every dashboard."""
    return {f"{uid}.json": render(build) for uid, build in BUILDERS.items()}


def stale(directory: Path = DASHBOARD_DIR) -> list[str]:
    """Names of the files in ``directory`` that differ from the code, or are missing."""
    out = []
    for name, text in generate().items():
        path = directory / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            out.append(name)
    return out


def write(directory: Path = DASHBOARD_DIR) -> list[str]:
    """Write every dashboard into ``directory``; the names of the files that changed."""
    changed = stale(directory)
    for name, text in generate().items():
        if name in changed:
            (directory / name).write_text(text, encoding="utf-8")
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    parser = argparse.ArgumentParser(
        prog="python -m dashboards.build", description="Generate the dashboard JSON files."
    )
    parser.add_argument(
        "--check", action="store_true", help="only report files that differ from the code"
    )
    args = parser.parse_args(argv)
    if args.check:
        differ = stale()
        for name in differ:
            logger.error("%s differs from its code: run python -m dashboards.build", name)
        return 1 if differ else 0
    changed = write()
    logger.info("%d dashboards, %d written: %s", len(BUILDERS), len(changed), changed or "none")
    return 0


if __name__ == "__main__":
    sys.exit(main())

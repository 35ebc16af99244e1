"""Grafana dashboards as code: JSON models, provisioning files and a push command."""

from __future__ import annotations

from pathlib import Path

DASHBOARD_DIR = Path(__file__).resolve().parent
DATASOURCE_UID = "stocksense-influxdb"
DATASOURCE_VARIABLE = "DS_STOCKSENSE"


def dashboard_files(directory: Path = DASHBOARD_DIR) -> list[Path]:
    """The dashboard JSON files, in a stable order."""
    return sorted(directory.glob("*.json"))

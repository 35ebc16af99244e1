"""The sites one rules worker keeps.

Workers partitioned by site (``STOCKSENSE_MQTT__SITES``) share one database: each evaluates,
sweeps and computes only its own sites, and leaves the others' alerts alone. No sites named
means every site.
"""

from __future__ import annotations

from collections.abc import Collection


def keeps(sites: Collection[str], site: str) -> bool:
    """Whether a worker given ``sites`` (empty: every site) keeps ``site``."""
    return not sites or site in sites

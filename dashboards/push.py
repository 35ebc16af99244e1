"""Upload the StockSense dashboards to a running Grafana through its HTTP API.

    python -m dashboards.push --url http://grafana:3000 --token-file ~/.grafana-token
    python -m dashboards.push --url http://grafana:3000 --token glsa_... --folder StockSense

Every ``dashboards/*.json`` is saved with ``overwrite`` into the folder (created when missing).
The token (a service-account token with the Editor role) is never logged or printed.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import niquests
from grafana_client.api import GrafanaApi
from grafana_client.client import (
    GrafanaClientError,
    GrafanaException,
    GrafanaUnauthorizedError,
)

from core.errors import StockSenseError
from dashboards import DASHBOARD_DIR, dashboard_files

logger = logging.getLogger(__name__)

DEFAULT_FOLDER = "StockSense"


class PushError(StockSenseError):
    """Dashboards could not be loaded or Grafana refused them; the message says why."""


def safe_url(url: str) -> str:
    """``url`` without any user:password part, for messages."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def redact(text: str, secret: str | None) -> str:
    """``text`` with every occurrence of ``secret`` replaced."""
    return text.replace(secret, "***") if secret else text


def folder_uid_for(title: str) -> str:
    """A stable folder uid derived from its title (Grafana allows up to 40 characters)."""
    slug = re.sub(r"[^a-z0-9_-]+", "-", title.lower()).strip("-")
    return (slug or "stocksense")[:40]


def load_dashboards(directory: Path = DASHBOARD_DIR) -> list[dict[str, Any]]:
    """Parse every dashboard JSON in ``directory``; each needs a ``uid`` and a ``title``."""
    files = dashboard_files(directory)
    if not files:
        raise PushError(f"no dashboard JSON files in {directory}")
    loaded: list[dict[str, Any]] = []
    for path in files:
        try:
            model = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise PushError(f"{path.name}: cannot read dashboard JSON: {exc}") from exc
        if not isinstance(model, dict) or not model.get("uid") or not model.get("title"):
            raise PushError(f"{path.name}: a dashboard needs a top-level 'uid' and 'title'")
        loaded.append(model)
    return loaded


def ensure_folder(api: GrafanaApi, title: str) -> str:
    """The uid of the folder called ``title``; created when it does not exist yet."""
    folder_api: Any = api.folder  # grafana-client's element methods are unannotated
    folders: list[dict[str, Any]] = folder_api.get_all_folders()
    for folder in folders:
        if folder.get("title") == title:
            uid: str = folder["uid"]
            logger.info("using existing folder %r (uid %s)", title, uid)
            return uid
    created: dict[str, Any] = folder_api.create_folder(title, uid=folder_uid_for(title))
    logger.info("created folder %r (uid %s)", title, created["uid"])
    return str(created["uid"])


def push_dashboards(
    api: GrafanaApi, dashboards: Sequence[dict[str, Any]], folder_uid: str
) -> list[str]:
    """Save every dashboard with overwrite into the folder; return their Grafana URLs."""
    dashboard_api: Any = api.dashboard  # grafana-client's element methods are unannotated
    urls: list[str] = []
    for model in dashboards:
        payload = {
            "dashboard": {**model, "id": None},
            "folderUid": folder_uid,
            "overwrite": True,
            "message": "Pushed from the StockSense repository",
        }
        result: dict[str, Any] = dashboard_api.update_dashboard(payload)
        logger.info(
            "saved %r as version %s: %s", model["title"], result.get("version"), result.get("url")
        )
        urls.append(str(result.get("url", "")))
    return urls


def _describe(exc: Exception, url: str) -> str:
    if isinstance(exc, GrafanaUnauthorizedError):
        return f"Grafana at {url} rejected the token (HTTP 401): check it is valid and not expired"
    if isinstance(exc, GrafanaClientError) and exc.status_code == 403:
        return (
            f"Grafana at {url} refused the request (HTTP 403): the token needs the Editor role "
            "(Admin to create folders when folder creation is restricted)"
        )
    if isinstance(exc, GrafanaException) and exc.status_code:
        return f"Grafana at {url} answered HTTP {exc.status_code}: {exc.message}"
    return f"cannot reach Grafana at {url}: {exc}"


def push(url: str, token: str, folder: str, *, timeout: float = 10.0) -> list[str]:
    """Load the dashboards, make sure the folder exists and upload them; return their URLs."""
    dashboards = load_dashboards()
    api = GrafanaApi.from_url(url, credential=token, timeout=timeout)
    shown = safe_url(url)
    try:
        folder_uid = ensure_folder(api, folder)
        return push_dashboards(api, dashboards, folder_uid)
    except (GrafanaException, niquests.exceptions.RequestException) as exc:
        raise PushError(redact(_describe(exc, shown), token)) from None


def _read_token(args: argparse.Namespace) -> str:
    if args.token_file is not None:
        try:
            token = Path(args.token_file).expanduser().read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise PushError(f"cannot read the token file: {exc.strerror}") from None
    else:
        token = str(args.token).strip()
    if not token:
        raise PushError("the Grafana token is empty")
    return token


def build_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m dashboards.push",
        description="Upload the StockSense Grafana dashboards (overwriting older versions).",
    )
    parser.add_argument("--url", required=True, help="Grafana base URL, e.g. http://grafana:3000")
    secret = parser.add_mutually_exclusive_group(required=True)
    secret.add_argument("--token", help="service-account token (Editor role)")
    secret.add_argument("--token-file", help="file holding the token (keeps it out of ps)")
    parser.add_argument(
        "--folder", default=DEFAULT_FOLDER, help="folder title (default: %(default)s)"
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="HTTP timeout in seconds")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    try:
        token = _read_token(args)
        urls = push(args.url, token, args.folder, timeout=args.timeout)
    except PushError as exc:
        logger.error("push failed: %s", exc)  # noqa: TRY400 - the message is the whole story
        return 1
    logger.info("pushed %d dashboards to %s", len(urls), safe_url(args.url))
    return 0


if __name__ == "__main__":
    sys.exit(main())

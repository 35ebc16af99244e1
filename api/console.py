"""The ops console: one static page over the API (alerts with ack and silence, stock,
purchase suggestions, silences). Alert messages link to ``/console#alert-<id>``."""

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

PAGE = Path(__file__).resolve().parent / "static" / "console.html"

router = APIRouter(tags=["console"])


@router.get("/console", response_class=HTMLResponse, include_in_schema=False)
def console() -> HTMLResponse:
    """The console page."""
    return HTMLResponse(PAGE.read_text(encoding="utf-8"))

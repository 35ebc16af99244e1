"""One error shape, ``{"detail": ...}``: store errors become 404/409 with the store's message,
and whatever slips through still answers in that shape (a 409 for a refused database
constraint, a 500 for the rest) instead of a bare text page.

Validation errors keep FastAPI's 422 body: ``detail`` is a list naming each field and why.
"""

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from core import db
from core.errors import InventoryStoreError, NotFoundError

logger = logging.getLogger(__name__)


class ErrorMessage(BaseModel):
    """The body of every error answer other than a validation error."""

    detail: str


_MEANINGS = {
    400: "The body is not JSON text at all (e.g. not UTF-8)",
    404: "No such record",
    409: "The change conflicts with the stored state",
}


def answers(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: the error statuses it answers besides 422 (FastAPI's own)."""
    return {code: {"model": ErrorMessage, "description": _MEANINGS[code]} for code in statuses}


def invalid(loc: tuple[str | int, ...], message: str, value: object) -> RequestValidationError:
    """A 422 in pydantic's shape, for rules a schema cannot state (e.g. body vs path)."""
    return RequestValidationError(
        [{"type": "value_error", "loc": loc, "msg": message, "input": value}]
    )


async def _store_error(request: Request, exc: Exception) -> JSONResponse:
    status = 404 if isinstance(exc, NotFoundError) else 409
    return JSONResponse({"detail": str(exc)}, status_code=status)


async def _constraint(request: Request, exc: Exception) -> JSONResponse:
    # Validation should have caught it first; the database refusing is still the client's
    # request conflicting with stored data, not a crash, but it is worth a look.
    logger.warning("%s %s refused by the database: %s", request.method, request.url.path, exc)
    return JSONResponse({"detail": "the change conflicts with stored data"}, status_code=409)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # Starlette re-raises after this handler, so the server still logs the traceback.
    del request, exc
    return JSONResponse({"detail": "internal error"}, status_code=500)


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(InventoryStoreError, _store_error)
    app.add_exception_handler(db.IntegrityError, _constraint)
    app.add_exception_handler(Exception, _unexpected)

"""Console sign-in: ``POST /auth/login`` opens a session (an HttpOnly, SameSite=Strict cookie
and a CSRF token for changes), ``POST /auth/logout`` ends it, ``GET /auth/me`` says who is
signed in. Systems use API tokens instead (``Authorization: Bearer``), which need no CSRF.

Failed logins are limited per name and per client address (``STOCKSENSE_API__LOGIN_*``):
past the limit, ``429`` with ``Retry-After`` until the oldest failure leaves the window.
"""

import math
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from api.deps import Connection, get_settings
from api.errors import ErrorMessage, answers
from api.security import (
    CHALLENGE,
    GUARDED,
    SESSION_COOKIE,
    Authenticated,
    audit,
)
from core.auth import PERMISSIONS, AuthStore, Principal, Role
from core.identifiers import UserName
from core.settings import Settings

router = APIRouter(prefix="/auth", tags=["auth"])


class LoginRequest(BaseModel):
    """A console user's name and password."""

    model_config = ConfigDict(strict=True)

    username: UserName
    password: Annotated[str, Field(min_length=1, max_length=256)]


class Me(BaseModel):
    """The signed-in user; ``csrf_token`` goes in ``X-CSRF-Token`` on every session change."""

    name: str
    role: Role
    sites: list[str] = Field(description="Sites the user may see and change; empty: all")
    via: str = Field(description="token, session, or open (sign-in is off)")
    permissions: list[str]
    csrf_token: str | None = None
    expires_at: int | None = Field(default=None, description="Session end, epoch ms")


_LOGIN_ANSWERS: dict[int | str, dict[str, Any]] = {
    **answers(400),
    401: {"model": ErrorMessage, "description": "Wrong name or password"},
    429: {
        "model": ErrorMessage,
        "description": "Too many failed logins for this name or address: see Retry-After",
    },
}


@router.post("/login", responses=_LOGIN_ANSWERS)
def login(
    body: LoginRequest,
    request: Request,
    response: Response,
    conn: Connection,
    settings: Annotated[Settings, Depends(get_settings)],
) -> Me:
    """Sign in to the console: sets the session cookie and returns the CSRF token."""
    limits = settings.api
    store = AuthStore(conn)
    address = request.client.host if request.client is not None else "unknown"
    keys = [f"user:{body.username.lower()}", f"addr:{address}"]
    wait_s = store.login_retry_after(
        keys, limit=limits.login_max_failures, window_s=limits.login_window_s
    )
    if wait_s > 0:
        raise HTTPException(
            status_code=429,
            detail=f"too many failed logins: try again in {wait_s} s",
            headers={"Retry-After": str(wait_s)},
        )
    user = store.check_password(body.username, body.password)
    if user is None:
        store.login_failed(keys, window_s=limits.login_window_s)
        challenge = {"WWW-Authenticate": CHALLENGE}
        raise HTTPException(status_code=401, detail="wrong name or password", headers=challenge)
    store.login_succeeded(keys[0])
    session, csrf, expires = store.open_session(user, limits.session_ttl_s)
    response.set_cookie(
        SESSION_COOKIE,
        session,
        max_age=max(1, math.ceil(limits.session_ttl_s)),
        path="/",
        secure=limits.cookie_secure,
        httponly=True,
        samesite="strict",
    )
    me = Me(
        name=user.name,
        role=user.role,
        sites=list(user.sites),
        via="session",
        permissions=sorted(p for p, roles in PERMISSIONS.items() if user.role in roles),
        csrf_token=csrf,
        expires_at=expires,
    )
    who = Principal(name=user.name, role=user.role, sites=user.sites, via="session")
    audit(conn, who, "session.login", f"user {user.name}", after={"from": address})
    return me


@router.post("/logout", status_code=204, responses=GUARDED)
def logout(request: Request, who: Authenticated, conn: Connection) -> Response:
    """End the console session (a token caller has none: nothing happens)."""
    del who
    response = Response(status_code=204)
    session = request.cookies.get(SESSION_COOKIE)
    if session:
        AuthStore(conn).close_session(session)
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


@router.get("/me", responses=GUARDED)
def me(who: Authenticated) -> Me:
    """Who is signed in, what they may do, and the session's CSRF token."""
    return Me(
        name=who.name,
        role=who.role,
        sites=list(who.sites),
        via=who.via,
        permissions=sorted(p for p, roles in PERMISSIONS.items() if who.role in roles),
        csrf_token=who.csrf,
    )

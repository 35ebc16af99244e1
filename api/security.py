"""Who is calling: API tokens (``Authorization: Bearer``) and console session cookies, roles
and sites, CSRF for cookie sessions, and the audit entry of every change.

Every route names the permission it needs with one of the ``Can*`` parameters below; a test
walks the app's routes and fails on a route without one (docs/access.md lists them).
"""

from collections.abc import Callable, Iterable
from typing import Annotated, Any, Protocol, TypeVar

from fastapi import Depends, HTTPException, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer

from api.deps import Connection, get_settings
from api.errors import ErrorMessage
from core import db
from core.audit import AuditLog
from core.auth import PERMISSIONS, AuthStore, Principal, Role, TokenCache, same_secret
from core.settings import Settings

SESSION_COOKIE = "stocksense_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CHALLENGE = 'Bearer realm="stocksense"'

# Routes anyone may call: health, the docs, the spec, and the console page (its login form).
PUBLIC_PATHS = frozenset(
    {"/health", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json", "/console",
     "/auth/login"}
)  # fmt: skip


def _unauthorized(detail: str, challenge: str = CHALLENGE) -> HTTPException:
    return HTTPException(status_code=401, detail=detail, headers={"WWW-Authenticate": challenge})


def _token_cache(request: Request) -> TokenCache:
    cache: TokenCache | None = getattr(request.app.state, "token_cache", None)
    if cache is None:
        cache = request.app.state.token_cache = TokenCache()
    return cache


# Declared so the spec lists both ways in (securitySchemes); the headers are read below.
_BEARER = HTTPBearer(auto_error=False, description="An API token from `stocksense users token`")
_COOKIE = APIKeyCookie(
    name=SESSION_COOKIE, auto_error=False, description="Console session from POST /auth/login"
)


def current_principal(
    request: Request,
    conn: Connection,
    settings: Annotated[Settings, Depends(get_settings)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)],
    cookie: Annotated[str | None, Depends(_COOKIE)],
) -> Principal:
    """The caller; 401 without valid credentials, 403 for a cookie change without CSRF."""
    del bearer, cookie  # the raw header is parsed here, to say what is wrong with it
    if not settings.api.auth:
        return Principal(name="anonymous", role=Role.ADMIN, via="open")
    store = AuthStore(conn)
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _unauthorized("Authorization must be 'Bearer <token>'")
        principal = store.principal_for_token(token.strip(), _token_cache(request))
        if principal is None:
            raise _unauthorized("the API token is not valid", CHALLENGE + ', error="invalid_token"')
        return principal
    session = request.cookies.get(SESSION_COOKIE)
    if session:
        principal = store.principal_for_session(session)
        if principal is None:
            raise _unauthorized("the session has expired: sign in again")
        if request.method not in SAFE_METHODS and not same_secret(
            request.headers.get(CSRF_HEADER), principal.csrf
        ):
            raise HTTPException(
                status_code=403, detail=f"a change from a session needs the {CSRF_HEADER} header"
            )
        return principal
    raise _unauthorized("sign in: an API token (Authorization: Bearer) or a console session")


class Guard(Protocol):
    """A dependency that checks one permission; ``permission`` names it for the route table."""

    permission: str

    async def __call__(
        self, principal: Annotated[Principal, Depends(current_principal)]
    ) -> Principal: ...


def allow(permission: str) -> Guard:
    """A dependency returning the caller if their role holds ``permission`` (403 otherwise)."""
    roles = PERMISSIONS[permission]

    async def guard(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if principal.role not in roles:
            allowed = ", ".join(sorted(roles))
            raise HTTPException(
                status_code=403,
                detail=f"{permission} needs the role {allowed} (you are {principal.role})",
            )
        return principal

    guard.permission = permission  # type: ignore[attr-defined]
    return guard  # type: ignore[return-value]


CanRead = Annotated[Principal, Depends(allow("read"))]
CanAck = Annotated[Principal, Depends(allow("alerts.ack"))]
CanSilence = Annotated[Principal, Depends(allow("silences.manage"))]
CanPurchase = Annotated[Principal, Depends(allow("purchasing.manage"))]
CanEditCatalog = Annotated[Principal, Depends(allow("catalog.manage"))]
CanEditLots = Annotated[Principal, Depends(allow("lots.manage"))]
CanReadAudit = Annotated[Principal, Depends(allow("audit.read"))]
Authenticated = Annotated[Principal, Depends(current_principal)]

# Answers every guarded route may give besides its own, for the spec.
GUARDED: dict[int | str, dict[str, Any]] = {
    401: {
        "model": ErrorMessage,
        "description": "No credentials, or an unknown, revoked or expired token or session",
    },
    403: {
        "model": ErrorMessage,
        "description": "The role or sites do not allow it, or a session change lacks CSRF",
    },
}


def check_site(principal: Principal, site: str | None, what: str = "it") -> None:
    """403 unless ``site`` is one of the caller's sites."""
    if not principal.covers(site):
        where = f"site {site}" if site is not None else "every site"
        raise HTTPException(
            status_code=403, detail=f"{what} belongs to {where}, outside your sites"
        )


class _Sited(Protocol):
    @property
    def site(self) -> str | None: ...


S = TypeVar("S", bound=_Sited)


def visible(principal: Principal, rows: Iterable[S]) -> list[S]:
    """The rows of the caller's sites."""
    return [r for r in rows if principal.covers(r.site)]


def site_filters(principal: Principal, site: str | None) -> list[str | None]:
    """The site filters to query for a list: the asked one (checked), or each of the caller's."""
    if site is not None:
        check_site(principal, site, "the list")
        return [site]
    return [None] if principal.all_sites else list(principal.sites)


def audit(
    conn: db.Connection,
    principal: Principal,
    action: str,
    target: str,
    *,
    site: str | None = None,
    before: object = None,
    after: object = None,
) -> None:
    """Record one change made by ``principal``."""
    AuditLog(conn).record(
        actor=principal.name,
        role=principal.role.value,
        via=principal.via,
        action=action,
        target=target,
        site=site,
        before=before,
        after=after,
    )


def permission_of(dependant: Any) -> str | None:
    """The permission a route's dependencies check (None: no guard), for the route table."""
    for dep in dependant.dependencies:
        call: Callable[..., Any] | None = dep.call
        found = getattr(call, "permission", None)
        if found is not None:
            return str(found)
        nested = permission_of(dep)
        if nested is not None:
            return nested
    return None


def authenticates(dependant: Any) -> bool:
    """Whether a route resolves the caller (and so answers 401 without credentials)."""
    deps = dependant.dependencies
    return any(dep.call is current_principal or authenticates(dep) for dep in deps)


def actor(principal: Principal, given: str | None) -> str:
    """The name to record for a change: the signed-in user; with sign-in off, the name given."""
    if principal.via == "open":
        return given or principal.name
    return principal.name


def route_access(app: Any) -> list[tuple[str, str, str | None, bool]]:
    """(method, path, permission, signed in) of every route the app serves."""
    from fastapi.routing import iter_route_contexts  # noqa: PLC0415 - for the docs and tests

    found: list[tuple[str, str, str | None, bool]] = []
    for route in iter_route_contexts(app.routes):
        dependant = getattr(route.original_route, "dependant", None)
        permission = None if dependant is None else permission_of(dependant)
        signed_in = dependant is not None and authenticates(dependant)
        for method in sorted((route.methods or set()) - {"HEAD"}):
            found.append((method, str(route.path), permission, signed_in))
    return found


def access_table(app: Any) -> str:
    """The markdown table of docs/access.md: every route, its permission and the roles."""
    order = list(Role)
    lines = [
        "| method | path | permission | " + " | ".join(r.value for r in order) + " |",
        "|---|---|---|" + "---|" * len(order),
    ]
    for method, path, permission, signed_in in route_access(app):
        if permission is not None:
            what = f"`{permission}`"
            marks = ["✓" if role in PERMISSIONS[permission] else "" for role in order]
        elif signed_in:
            what, marks = "signed in", ["✓"] * len(order)
        else:
            what, marks = "public", ["anyone"] * len(order)
        lines.append(f"| {method} | `{path}` | {what} | " + " | ".join(marks) + " |")
    return "\n".join(lines) + "\n"

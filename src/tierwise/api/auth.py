"""Who is calling: `Authorization: Bearer <token>` or the session cookie, and the sign-in routes.

Cookie-authenticated state-changing requests must carry the session's CSRF token in
`X-CSRF-Token`; bearer tokens are never sent by browsers on their own, so they need none.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response, status
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer

from tierwise.api.schemas import (
    ErrorOut,
    LoginCreate,
    LoginPublic,
    TokenCreate,
    TokenCreated,
    TokenListed,
    UserPublic,
)
from tierwise.core.errors import AuthError
from tierwise.core.settings import Settings
from tierwise.services import serving
from tierwise.services.access import Principal, permissions
from tierwise.services.serving import Store

SESSION_COOKIE = "tierwise_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

_bearer = HTTPBearer(auto_error=False, description="A personal API token (POST /auth/tokens).")
_cookie = APIKeyCookie(
    name=SESSION_COOKIE,
    auto_error=False,
    description=f"Set by POST /auth/login; POSTs also need the {CSRF_HEADER} header.",
)


def get_store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


StoreDep = Annotated[Store, Depends(get_store)]


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


def current_user(
    request: Request,
    store: StoreDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    session_secret: Annotated[str | None, Depends(_cookie)],
) -> Principal:
    """The caller; a bearer token wins over a cookie sent alongside it."""
    if bearer is not None:
        user = serving.principal_for_token(store, bearer.credentials)
    elif "authorization" in request.headers:
        raise AuthError("unsupported Authorization header; use: Bearer <token>")
    elif session_secret:
        user = serving.principal_for_session(
            store,
            session_secret,
            state_changing=request.method not in SAFE_METHODS,
            csrf_token=request.headers.get(CSRF_HEADER),
        )
    else:
        raise AuthError("not signed in: send Authorization: Bearer <token> or sign in")
    request.state.username = user.username
    return user


UserDep = Annotated[Principal, Depends(current_user)]


def user_public(user: Principal) -> UserPublic:
    return UserPublic(
        username=user.username,
        display_name=user.display_name,
        role=user.role,
        team=user.team,
        permissions=sorted(permissions(user)),
    )


public = APIRouter(tags=["auth"])
"""Routes open to anonymous callers."""

router = APIRouter(
    tags=["auth"],
    responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut}},
)


BAD_BODY: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "The body is not JSON."}
}


@public.post(
    "/auth/login",
    responses={**BAD_BODY, 401: {"model": ErrorOut}, 429: {"model": ErrorOut}},
)
def login(body: LoginCreate, request: Request, response: Response, store: StoreDep) -> LoginPublic:
    """Sign in: sets an HttpOnly session cookie and returns the CSRF token for later POSTs."""
    ip = request.client.host if request.client else "unknown"
    signed = serving.login(store, body.username, body.password, ip)
    response.set_cookie(
        SESSION_COOKIE,
        signed.session_secret,
        expires=signed.expires_at,
        path="/",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="lax",
    )
    request.state.username = signed.principal.username
    return LoginPublic(
        user=user_public(signed.principal),
        csrf_token=signed.csrf_token,
        expires_at=signed.expires_at,
    )


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT)
def logout(
    user: UserDep,
    store: StoreDep,
    request: Request,
    response: Response,
) -> None:
    """End the browser session (a bearer token stays valid: revoke it instead)."""
    serving.logout(store, user, request.cookies.get(SESSION_COOKIE))
    response.delete_cookie(
        SESSION_COOKIE,
        path="/",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="lax",
    )


@router.post("/auth/tokens", status_code=status.HTTP_201_CREATED, responses=BAD_BODY)
def create_token(body: TokenCreate, user: UserDep, store: StoreDep) -> TokenCreated:
    """A personal API token with the caller's rights; the secret is shown only here."""
    token = serving.create_api_token(store, user, body.name, body.ttl_days)
    return TokenCreated.model_validate(token)


@router.get("/auth/tokens")
def list_tokens(user: UserDep, store: StoreDep) -> list[TokenListed]:
    """The caller's API tokens (never their secrets), revoked ones included."""
    return [TokenListed.model_validate(t) for t in serving.list_api_tokens(store, user)]


@router.delete("/auth/tokens/{token_id}", responses={404: {"model": ErrorOut}})
def revoke_token(
    token_id: Annotated[int, Path(ge=1, le=2**31 - 1)], user: UserDep, store: StoreDep
) -> TokenListed:
    """Revoke one of the caller's tokens at once; others' tokens answer 404."""
    return TokenListed.model_validate(serving.revoke_api_token(store, user, token_id))


@router.get("/me")
def me(user: UserDep) -> UserPublic:
    return user_public(user)

"""The JSON API under /api/v1, built per call: no app, engine or settings exist at import time.

Domain errors become status codes in one handler. Nothing a caller typed is echoed in
validation errors or logged: request logs carry method, path (never the query string, which
may hold a searched name), status, duration and user.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from tierwise.api import (
    actions,
    auth,
    behaviour,
    customers,
    dashboard,
    exports,
    operations,
    playbook,
)
from tierwise.api.schemas import Health
from tierwise.core.errors import (
    AuthError,
    BusyError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    ThrottledError,
    TierwiseError,
)
from tierwise.core.settings import Settings
from tierwise.services.dashboard import Dashboard
from tierwise.services.jobs import RunJobs
from tierwise.services.serving import open_store
from tierwise.web import actions as web_actions
from tierwise.web import routes as web

PREFIX = "/api/v1"

access_log = logging.getLogger("tierwise.api.access")

STATUS_BY_ERROR: tuple[tuple[type[TierwiseError], int], ...] = (
    (ThrottledError, 429),  # before AuthError, its base class
    (AuthError, 401),
    (PermissionDeniedError, 403),
    (NotFoundError, 404),
    (ConflictError, 409),
    (InvalidInputError, 422),
    (BusyError, 503),
)
"""Most specific first; any other domain error is the caller's to fix: 400."""


def status_for(error: TierwiseError) -> int:
    return next((code for cls, code in STATUS_BY_ERROR if isinstance(error, cls)), 400)


def _domain_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TierwiseError)  # registered for TierwiseError only
    code = status_for(exc)
    headers = {"WWW-Authenticate": "Bearer"} if code == 401 else {}
    if isinstance(exc, ThrottledError):
        headers["Retry-After"] = str(exc.retry_after_s)
    return JSONResponse({"detail": str(exc)}, status_code=code, headers=headers)


def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    """Where and why, without the rejected input (it may be a password or a phone number)."""
    assert isinstance(exc, RequestValidationError)
    errors = [{"loc": e["loc"], "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
    return JSONResponse({"detail": errors}, status_code=422)


async def _log_and_no_store(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    """Access log without query strings; API answers (personal data) are never cached."""
    started = time.perf_counter()
    response = await call_next(request)
    if request.url.path.startswith(PREFIX):
        response.headers.setdefault("Cache-Control", "no-store")
    access_log.info(
        "%s %s %d %.0fms %s",
        request.method,
        request.url.path,
        response.status_code,
        (time.perf_counter() - started) * 1000,
        getattr(request.state, "username", "-"),
    )
    return response


def create_app(settings: Settings) -> FastAPI:
    """The API for `settings`; the store is opened and migrated when the app starts."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = open_store(settings)
        app.state.store = store
        app.state.settings = settings
        app.state.run_jobs = RunJobs()
        app.state.dashboard = Dashboard(settings, store)
        try:
            yield
        finally:
            store.close()

    app = FastAPI(
        title="Tierwise",
        summary="Customer tiering and classification (客户分级分类管理)",
        version="1",
        openapi_url=f"{PREFIX}/openapi.json",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.add_exception_handler(TierwiseError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.middleware("http")(_log_and_no_store)

    api = APIRouter(prefix=PREFIX)

    @api.get("/health", tags=["health"])
    def health() -> Health:
        """Liveness; needs no sign-in."""
        return Health()

    api.include_router(auth.public)
    api.include_router(auth.router)
    api.include_router(customers.router)
    api.include_router(operations.router)
    api.include_router(exports.router)
    api.include_router(actions.router)
    api.include_router(playbook.router)
    api.include_router(dashboard.router)
    api.include_router(behaviour.router)
    app.include_router(api)
    app.include_router(web.router)  # the dashboard pages and their static files
    app.include_router(web_actions.router)  # tasks, complaints, playbook, campaigns pages
    return app

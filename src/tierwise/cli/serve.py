"""`tierwise serve`: the API on uvicorn, logging through the app's own query-free access log."""

from __future__ import annotations

import copy
from typing import Annotated, Any

import typer


def _log_config() -> dict[str, Any]:
    """uvicorn's logging plus the `tierwise` loggers on stderr.

    uvicorn's own access log is off: it prints query strings, which may hold a searched name.
    """
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["tierwise"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
) -> None:
    """Serve the JSON API at /api/v1 (migrates the store first).

    Behind a reverse proxy on the same host, X-Forwarded-For and -Proto are trusted, so sign-in
    throttling sees the real address and session cookies are marked Secure under HTTPS.
    """
    import uvicorn

    from tierwise.api.app import create_app
    from tierwise.cli.main import state

    app = create_app(state.settings())
    uvicorn.run(app, host=host, port=port, access_log=False, log_config=_log_config())

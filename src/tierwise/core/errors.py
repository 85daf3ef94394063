"""Domain errors: each is shown to users as one clear line (CLI exit code 1, API 4xx)."""

from __future__ import annotations


class TierwiseError(Exception):
    """Base of every error a user can cause or fix; never a bug."""


class ConfigError(TierwiseError):
    """A wrong key or value in tierwise.toml or a TIERWISE_* variable."""


class SourceError(TierwiseError):
    """A source file or table cannot be read as a whole (missing, unreadable, no mapped header)."""


class BusyError(TierwiseError):
    """Another ingest or run holds the warehouse; nothing was written."""


class DataError(TierwiseError):
    """The warehouse lacks what the step needs (no orders ingested, unknown snapshot...)."""


class ContractError(TierwiseError):
    """Computed marts broke a contract check; the current snapshot was left unchanged."""


class NotFoundError(TierwiseError):
    """The named user, token, task or run does not exist."""


class ConflictError(TierwiseError):
    """The change clashes with what is stored (duplicate name, already closed, last admin...)."""


class AuthError(TierwiseError):
    """Sign-in refused: wrong credentials, disabled user, expired or revoked token or session."""


class ThrottledError(AuthError):
    """Too many failed sign-ins for a username or address; refused until the window passes."""

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class PermissionDeniedError(TierwiseError):
    """The signed-in user's role does not allow the action."""


class InvalidInputError(TierwiseError):
    """A value typed by the user is malformed (username, role, too short a password...)."""

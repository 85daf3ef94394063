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

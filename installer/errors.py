"""The installer's errors: "retry later" is kept apart from "give up"."""

from __future__ import annotations


class InstallerError(Exception):
    """Base of every error the installer raises on purpose."""


class TemporaryError(InstallerError):
    """Something that may work later (API unreachable, conflict): retried with backoff."""

    def __init__(self, message: str, *, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


class PermanentError(InstallerError):
    """Retrying without a change of input cannot help."""


class ConfigurationError(PermanentError):
    """The installer's own configuration (settings, component table) is wrong."""

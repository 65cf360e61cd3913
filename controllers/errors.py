"""The controllers' one error hierarchy: retry later, or give up on this object.

Handlers raise, they never sleep.  ``RetryLater`` (an API conflict, a server
that is briefly away, LDAP unreachable) makes kopf call the handler again after
``delay`` seconds; ``GiveUp`` (an object that cannot be made true until a person
changes it) stops the retries, and kopf posts a Warning Event about it.  Both
are kopf's own exception types underneath, so kopf needs no translation.
"""

from __future__ import annotations

import kopf


class ControllerError(Exception):
    """Base of every error the controllers raise on purpose."""


class RetryLater(ControllerError, kopf.TemporaryError):
    """A passing failure: the same reconcile will probably succeed in ``delay`` seconds."""

    def __init__(self, message: str, *, delay: float = 1.0) -> None:
        kopf.TemporaryError.__init__(self, message, delay=delay)


class GiveUp(ControllerError, kopf.PermanentError):
    """The object itself is wrong; retrying cannot help until it changes."""


class NotFound(ControllerError):
    """The object asked for does not exist (any more)."""


class Conflict(RetryLater):
    """409: the object changed since it was read, or one of that name already exists."""

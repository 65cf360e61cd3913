"""One rule for what the Kubernetes API answers: retry later, or give up.

Every package of the platform sorts API failures with :func:`retryable`, so a
403 or a 422 means the same thing in the installer, the controllers and the
apiserver:

* **retry later**: no answer at all (connection refused, reset, timed out),
  ``408`` and ``504`` (timeouts), ``409`` (a conflict: read again, try again;
  but not ``AlreadyExists``, the 409 of a create whose name is taken),
  ``429`` (throttled) and every other ``5xx``;
* **give up**: everything else, notably ``400``, ``401``, ``403``, ``404``,
  ``410`` and ``422``; retrying the same request cannot change the answer.

A caller that knows better for one call says so (``retry={404}`` while waiting
for a CRD to be established, ``final={409}`` for a create that lost a race on
purpose).  Packages keep their own exception types (kopf's in the controllers,
the installer's own), built from :class:`KubeError` by this rule.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

#: Statuses worth retrying besides 5xx (and no answer at all).
RETRY_STATUSES = frozenset({408, 409, 429})


def retryable(status: int | None, *, retry: Collection[int] = (), final: Collection[int] = ()) -> bool:
    """True when the same request may succeed later; ``None`` means there was no answer."""
    if status is not None and status in retry:
        return True
    if status is not None and status in final:
        return False
    return status is None or status in RETRY_STATUSES or status >= 500


class KubeError(Exception):
    """A non-2xx answer from kube-apiserver; ``body`` is its Status (or ``{"message": text}``)."""

    def __init__(self, status: int, body: dict[str, Any], *, what: str = "") -> None:
        self.status = status
        self.body = body
        self.what = what
        super().__init__(f"{what}: {self.message}" if what else self.message)

    @property
    def message(self) -> str:
        return str(self.body.get("message") or f"kube-apiserver answered {self.status}")

    @property
    def reason(self) -> str:
        return str(self.body.get("reason") or "")

    @property
    def temporary(self) -> bool:
        """Worth retrying later by the shared rule (:func:`retryable`).

        A 409 that says ``AlreadyExists`` is the one exception: the same create can never succeed.
        """
        return retryable(self.status) and self.reason != "AlreadyExists"

    @classmethod
    def from_response(cls, status: int, raw: bytes | str | None, *, what: str = "") -> KubeError:
        text = raw.decode(errors="replace") if isinstance(raw, bytes) else (raw or "")
        try:
            body = json.loads(text)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            body = {"message": text.strip() or f"HTTP {status}"}
        return cls(status, body, what=what)


class KubeUnavailable(KubeError):
    """kube-apiserver could not be reached at all (refused, reset, TLS failure, timeout).

    It carries the ``503`` a client of ours is answered with, and is always temporary.
    """

    def __init__(self, message: str, *, what: str = "") -> None:
        super().__init__(503, {"message": message, "reason": "ServiceUnavailable", "code": 503}, what=what)

    @property
    def temporary(self) -> bool:
        return True


class CredentialsError(Exception):
    """No usable credentials: no kubeconfig, an unreadable one, or a broken service account."""

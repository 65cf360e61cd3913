"""The apiserver's error types and the two error body formats KubeSphere uses.

* Filters (authentication, authorization, proxy) answer with a Kubernetes
  ``Status`` object (``status_body``).
* ``/kapis`` handlers answer with ``text/plain`` ``<message>\\n`` and the status
  code of the underlying Kubernetes error (404, 409, 422, 403...), else 500.

Handlers raise ``APIError`` (or let ``kube.KubeError`` through); the server's
error middleware turns both into responses.  Anything else becomes a 500 with a
logged error id.
"""

from __future__ import annotations

from typing import Any

REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    502: "BadGateway",
    503: "ServiceUnavailable",
}


def status_body(code: int, message: str, *, reason: str | None = None, details: Any = None) -> dict[str, Any]:
    """A Kubernetes ``v1.Status`` failure body."""
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason or REASONS.get(code, "Unknown"),
        "code": code,
    }
    if details is not None:
        body["details"] = details
    return body


class APIError(Exception):
    """An error with an HTTP status, raised by handlers.

    ``as_status=True`` answers with a Kubernetes Status JSON body (filters,
    proxy); the default is KubeSphere's text/plain handler error.
    """

    def __init__(
        self, code: int, message: str, *, reason: str | None = None, as_status: bool = False
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or REASONS.get(code, "Unknown")
        self.as_status = as_status


def bad_request(message: str) -> APIError:
    return APIError(400, message)


def not_found(resource: str, name: str) -> APIError:
    """KubeSphere's spelling: ``user.iam.kubesphere.io "bob" not found``."""
    return APIError(404, f'{resource} "{name}" not found')


def forbidden(message: str) -> APIError:
    return APIError(403, message, as_status=True)

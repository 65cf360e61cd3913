"""Prometheus metrics of the controller manager, and the wrapper every handler goes through.

``instrument`` times each reconcile and counts its outcome (``ok``, ``retry``,
``gave_up``, ``error``) per controller, so a dashboard shows both the work done
and the objects that are stuck.  The leader gauge tells which replica acts.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import kopf
from prometheus_client import Counter, Gauge, Histogram

from controllers.errors import Conflict, NotFound, RetryLater

log = logging.getLogger(__name__)

RECONCILES = Counter(
    "ks_controller_reconcile_total", "Reconciles by controller and outcome.", ["controller", "result"]
)
RECONCILE_SECONDS = Histogram(
    "ks_controller_reconcile_seconds",
    "Time spent in one reconcile.",
    ["controller"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
API_REQUESTS = Counter("ks_controller_api_requests_total", "Kubernetes API requests.", ["verb", "code"])
LEADER = Gauge("ks_controller_leader", "1 while this replica holds the leader lease and acts.")
CONFLICTS = Counter(
    "ks_controller_conflicts_retried_total", "Reconciles re-run at once after a 409 conflict.", ["controller"]
)
PASSWORDS_HASHED = Counter("ks_controller_passwords_hashed_total", "Plain-text passwords replaced by bcrypt.")

F = TypeVar("F", bound=Callable[..., Any])
CONFLICT_ATTEMPTS = 3


def instrument(controller: str) -> Callable[[F], F]:
    """Count and time a (synchronous) handler; errors pass through to kopf unchanged.

    A 409 conflict re-runs the handler at once (up to three runs in all); a handler that gives
    up also posts a Warning Event ``SyncFailed`` on its object.
    """

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def handler(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            result = "error"
            try:
                # Every reconcile starts from a fresh read, so a conflict is retried here at once,
                # a few times, before kopf's slower retry takes over.
                for attempt in range(CONFLICT_ATTEMPTS):
                    try:
                        value = fn(*args, **kwargs)
                        break
                    except Conflict:
                        if attempt == CONFLICT_ATTEMPTS - 1:
                            raise
                        CONFLICTS.labels(controller=controller).inc()
                    except NotFound as exc:
                        # Usually the object went away mid-reconcile; kopf drops the retry if so.
                        raise RetryLater(str(exc), delay=2.0) from exc
                result = "ok"
                return value
            except kopf.PermanentError as exc:
                result = "gave_up"
                body = kwargs.get("body")
                if body is not None:
                    # A person has to act: say so where ``kubectl describe`` shows it.
                    kopf.warn(body, reason="SyncFailed", message=str(exc))
                raise
            except kopf.TemporaryError as exc:
                result = "retry"
                log.debug("%s: will retry: %s", controller, exc)
                raise
            finally:
                RECONCILES.labels(controller=controller, result=result).inc()
                RECONCILE_SECONDS.labels(controller=controller).observe(time.perf_counter() - started)

        return handler  # type: ignore[return-value]

    return wrap

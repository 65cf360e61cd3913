"""What the engine needs from the Kubernetes API and from the runner, as Protocols.

The engine is given both as arguments: in the operator, :class:`installer.kube.Kube`
and :class:`installer.runs.Runner`; in unit tests, in-memory fakes that drive it
deterministically.  The surfaces are kept to what the engine calls, so a fake has
nothing to stub out.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from installer.runs import Progress, RunRequest, RunResult

Obj = dict[str, Any]


class ClusterApi(Protocol):
    """The ClusterConfiguration the engine acts on, its status, its Events.

    ``patch_status`` raises :class:`installer.errors.TemporaryError` for answers
    worth retrying (conflicts, throttling, server errors, timeouts) and
    :class:`installer.errors.PermanentError` for those that retrying the same
    patch cannot fix (the API server refused it).
    """

    namespace: str
    name: str

    def watch_cc(self, stop: threading.Event) -> Iterator[tuple[str, Obj]]:
        """``("SYNC", obj)`` first (``{}`` while it does not exist), then watch events."""
        ...

    def patch_status(self, patch: Obj) -> None:
        """Merge ``patch`` into the status subresource (``None`` values delete keys)."""
        ...

    def post_event(self, cc: Obj, *, kind: str, reason: str, message: str) -> None:
        """Best effort: never raises."""
        ...

    def console_address(self, port: int) -> str:
        """Where the console answers, for the Welcome banner."""
        ...


class RoleRunner(Protocol):
    """Runs one component's role with one action and says what happened."""

    def run(
        self,
        request: RunRequest,
        *,
        cancel: threading.Event | None = None,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> RunResult: ...


#: A monotonic clock in seconds (``time.monotonic`` unless a test drives time).
Clock = Callable[[], float]

#: Posts an Event about the ClusterConfiguration: ``(kind, reason, message)``.
EventSink = Callable[[str, str, str], None]

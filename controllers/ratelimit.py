"""The user state machine of KubeSphere's rate limiting, as pure functions.

Failed LoginRecords of a user count when they were created after the user's
``status.lastTransitionTime`` and within the last
``authenticateRateLimiterDuration``.  At ``authenticateRateLimiterMaxTries``
failures the user becomes ``AuthLimitExceeded``; once the duration has passed
since that transition it is ``Active`` again.  ``Disabled`` is a person's
decision and is never changed here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kubesphere.config import format_duration

ACTIVE, DISABLED, LIMITED = "Active", "Disabled", "AuthLimitExceeded"


@dataclass(frozen=True)
class Verdict:
    """The status a user should have, and when to look again (seconds, or None)."""

    state: str
    reason: str = ""
    recheck_after: float | None = None


def _time(value: Any) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value
    if not value:
        return None
    return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def count_failures(
    records: Iterable[dict[str, Any]], *, since: dt.datetime | None, now: dt.datetime, window: float
) -> int:
    """Failed records created after ``since`` and within ``window`` seconds before ``now``."""
    start = now - dt.timedelta(seconds=window)
    if since is not None and since > start:
        start = since
    count = 0
    for record in records:
        if (record.get("spec") or {}).get("success", False):
            continue
        created = _time((record.get("metadata") or {}).get("creationTimestamp"))
        # Timestamps have one-second resolution: a record made in the same second as the
        # transition is counted, as the apiserver may have written it just before.
        if created is not None and created >= start.replace(microsecond=0):
            count += 1
    return count


def verdict(
    *,
    state: str,
    last_transition: dt.datetime | None,
    records: Iterable[dict[str, Any]],
    now: dt.datetime,
    max_tries: int,
    window: float,
    reason: str = "",
) -> Verdict:
    """What ``status.state`` should be for a user whose password is set (``reason``: the current one)."""
    if state == DISABLED:
        return Verdict(DISABLED)
    if state == LIMITED and last_transition is not None:
        left = (last_transition + dt.timedelta(seconds=window) - now).total_seconds()
        if left > 0:
            return Verdict(LIMITED, reason=reason, recheck_after=left)
        return Verdict(ACTIVE)
    since = last_transition if state == ACTIVE else None
    failures = count_failures(records, since=since, now=now, window=window)
    if failures >= max_tries:
        reason = f"Failed login attempts exceed {failures} in last {format_duration(window)}"
        return Verdict(LIMITED, reason=reason, recheck_after=window)
    return Verdict(ACTIVE)

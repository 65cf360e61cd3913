"""The loginrecord controller: lastLoginTime, the rate-limit check, and login history limits.

Each new LoginRecord (label ``iam.kubesphere.io/user-ref``) updates its user's
``status.lastLoginTime`` and re-runs the rate-limit rules, so ten quick
failures turn the user ``AuthLimitExceeded`` at once.  The user's records are
then trimmed to ``loginHistoryMaximumEntries`` (oldest first).  A sweep
deletes records older than ``loginHistoryRetentionPeriod``, and records of
users that no longer exist.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any

import kopf

from controllers import metrics, users
from controllers.context import Context
from controllers.errors import ControllerError
from kubesphere.resources import LOGINRECORDS, USERS, Obj, parse_time

log = logging.getLogger(__name__)

GROUP, VERSION, PLURAL = LOGINRECORDS.group, LOGINRECORDS.version, LOGINRECORDS.plural


def _created(record: Obj) -> dt.datetime:
    return parse_time(record["metadata"].get("creationTimestamp")) or dt.datetime.now(dt.UTC)


def excess(records: list[Obj], *, keep: int) -> list[Obj]:
    """The records beyond the newest ``keep`` (oldest first)."""
    ordered = sorted(records, key=lambda r: (_created(r), r["metadata"]["name"]))
    return ordered[: max(0, len(ordered) - keep)]


def expired(records: list[Obj], *, retention: float, now: dt.datetime) -> list[Obj]:
    if retention <= 0:
        return []
    cutoff = now - dt.timedelta(seconds=retention)
    return [r for r in records if _created(r) < cutoff]


def handle(ctx: Context, record: Obj) -> None:
    user = (record["metadata"].get("labels") or {}).get(users.USER_REF)
    if not user:
        return
    users.record_login(ctx, user, at=record["metadata"]["creationTimestamp"])
    trim(ctx, user)


def trim(ctx: Context, user: str) -> int:
    records = ctx.kube.list(LOGINRECORDS, labels=f"{users.USER_REF}={user}")
    auth = ctx.settings.authentication
    doomed = {r["metadata"]["name"] for r in excess(records, keep=auth.login_history_max_entries)}
    doomed |= {
        r["metadata"]["name"]
        for r in expired(records, retention=auth.login_history_retention, now=dt.datetime.now(dt.UTC))
    }
    for name in sorted(doomed):
        ctx.kube.delete(LOGINRECORDS, name)
    return len(doomed)


def sweep(ctx: Context) -> int:
    """One pass over every record: past retention, or of a user that is gone."""
    auth = ctx.settings.authentication
    records = ctx.kube.list(LOGINRECORDS)
    existing = {u["metadata"]["name"] for u in ctx.kube.list(USERS)}
    now = dt.datetime.now(dt.UTC)
    doomed = {
        r["metadata"]["name"] for r in expired(records, retention=auth.login_history_retention, now=now)
    }
    for r in records:
        owner = (r["metadata"].get("labels") or {}).get(users.USER_REF)
        if owner and owner not in existing and _created(r) < now - dt.timedelta(seconds=60):
            doomed.add(r["metadata"]["name"])
    for name in sorted(doomed):
        ctx.kube.delete(LOGINRECORDS, name)
    return len(doomed)


def sweep_interval(retention: float) -> float:
    return max(2.0, min(300.0, retention / 4)) if retention > 0 else 300.0


async def sweep_forever(ctx: Context) -> None:
    """Runs while this replica leads (started by the operator's startup handler)."""
    interval = sweep_interval(ctx.settings.authentication.login_history_retention)
    while True:
        try:
            removed = await asyncio.to_thread(sweep, ctx)
            if removed:
                log.info("login history: removed %d records", removed)
        except ControllerError as exc:
            log.warning("login history sweep: %s", exc)
        await asyncio.sleep(interval)


def register(registry: kopf.OperatorRegistry, ctx: Context) -> None:
    # Creation only: kopf sees a record it never handled (made while no replica led) as created.
    @kopf.on.create(GROUP, VERSION, PLURAL, registry=registry, backoff=5)
    @metrics.instrument("loginrecord")
    def loginrecord_created(body: kopf.Body, **_: Any) -> None:
        handle(ctx, dict(body))

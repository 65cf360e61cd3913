"""LoginRecords: one object per login attempt, which the controllers count for rate limiting.

Written for a successful password or OAuth login and for a failure with an
incorrect password, only for users that exist; never for refresh grants or
blocked accounts.  The user controller counts recent failures to set
``AuthLimitExceeded``; the loginrecord controller trims old records.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from aiohttp import web

from apiserver import kube

if TYPE_CHECKING:
    from apiserver.context import Context

log = logging.getLogger(__name__)

TOKEN = "Token"
PASSWORD = "Password"
OAUTH = "OAuth"
SUCCESS = "authenticated successfully"
INCORRECT_PASSWORD = "incorrect password"


def source_ip(request: web.Request) -> str:
    """``x-client-ip``, then ``X-Real-IP``, then ``X-Forwarded-For``, then the peer address."""
    for header in ("X-Client-IP", "X-Real-IP", "X-Forwarded-For"):
        value = request.headers.get(header)
        if value:
            return value
    remote = request.remote or ""
    return "127.0.0.1" if remote == "::1" else remote


async def record(
    ctx: Context,
    request: web.Request,
    username: str,
    *,
    login_type: str,
    success: bool,
    reason: str,
    provider: str = "",
) -> None:
    """Create the LoginRecord; a failed write is logged, never fails the login itself."""
    if ctx.caches[kube.USERS].get(username) is None:
        return
    obj = {
        "apiVersion": kube.LOGINRECORDS.api_version,
        "kind": kube.LOGINRECORDS.kind,
        "metadata": {"generateName": f"{username}-", "labels": {kube.USER_REF_LABEL: username}},
        "spec": {
            "type": login_type,
            "provider": provider,
            "sourceIP": source_ip(request),
            "userAgent": request.headers.get("User-Agent", ""),
            "success": success,
            "reason": reason,
        },
    }
    try:
        await ctx.kube.create(kube.LOGINRECORDS, obj)
    except kube.KubeError as exc:
        log.warning("could not write a login record for %s: %s", username, exc.message)

"""Who is calling: the anonymous, basic and bearer authenticators, and the password check.

* No ``Authorization`` header: ``system:anonymous`` (group ``system:unauthenticated``).
* ``Basic``: a local account's name (or email) and password; a wrong password
  writes a failed LoginRecord, which is what the rate limiter counts.
* ``Bearer <jwt>``: a token this platform issued and has not revoked; the user
  must still exist and not be Disabled (``AuthLimitExceeded`` is not checked,
  so tokens issued before the limit keep working).  A refresh token is accepted
  only by the token endpoint, where the console sends it with the refresh grant.

Failures are 401 Status bodies, ``Unauthorized: <reason>``.  Password checks
run bcrypt in a worker thread (it is deliberately slow) and remember recent
successes by a digest of hash and password, so basic auth does not pay bcrypt
on every request.  Nothing here logs a password or a token.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import bcrypt
from aiohttp import web

from apiserver import kube, loginrecords
from apiserver.errors import APIError
from apiserver.identity import ANONYMOUS_USER, AUTHENTICATED_GROUP, UserInfo
from apiserver.tokens import ACCESS_TOKEN, REFRESH_TOKEN, STATIC_TOKEN, StoreUnavailable, TokenError

if TYPE_CHECKING:
    from apiserver.context import Context

log = logging.getLogger(__name__)

ACTIVE = "Active"
DISABLED = "Disabled"
AUTH_LIMIT_EXCEEDED = "AuthLimitExceeded"
UNINITIALIZED_ANNOTATION = "iam.kubesphere.io/uninitialized"


class AuthenticationError(Exception):
    """A login or credential failure; ``rate_limited`` answers 429 on the token endpoint."""

    def __init__(self, message: str, *, rate_limited: bool = False, incorrect_password: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.rate_limited = rate_limited
        self.incorrect_password = incorrect_password


INCORRECT_PASSWORD = "incorrect password"
NOT_ACTIVE = "account is not active"
RATE_LIMITED = "auth rate limit exceeded"


def unauthorized(message: str) -> APIError:
    return APIError(401, f"Unauthorized: {message}", reason="Unauthorized", as_status=True)


def find_user(ctx: Context, name_or_email: str) -> dict[str, Any] | None:
    users = ctx.caches[kube.USERS]
    user = users.get(name_or_email)
    if user is None and "@" in name_or_email:
        for candidate in users.list():
            if (candidate.get("spec") or {}).get("email") == name_or_email:
                return candidate
    return user


def user_info(user: dict[str, Any], extra: dict[str, list[str]] | None = None) -> UserInfo:
    meta = user.get("metadata") or {}
    groups = tuple(str(g) for g in (user.get("spec") or {}).get("groups") or ())
    return UserInfo(
        name=str(meta.get("name")),
        uid=str(meta.get("uid") or ""),
        groups=(*groups, AUTHENTICATED_GROUP),
        extra={k: tuple(v) for k, v in (extra or {}).items()},
    )


def token_extra(user: dict[str, Any]) -> dict[str, list[str]]:
    """The ``extra`` claim: an uninitialized user (first login) is marked so."""
    annotations = (user.get("metadata") or {}).get("annotations") or {}
    if annotations.get(UNINITIALIZED_ANNOTATION) == "true":
        return {"uninitialized": ["true"]}
    return {}


class PasswordChecker:
    """bcrypt verification off the event loop, with a small cache of recent successes."""

    def __init__(self, *, size: int = 4096) -> None:
        self._ok: OrderedDict[bytes, None] = OrderedDict()
        self._size = size

    async def verify(self, hashed: str, password: str) -> bool:
        if not hashed.startswith("$2"):
            return False
        digest = hashlib.sha256(hashed.encode() + b"\0" + password.encode()).digest()
        if digest in self._ok:
            self._ok.move_to_end(digest)
            return True
        try:
            ok = await asyncio.to_thread(bcrypt.checkpw, password.encode(), hashed.encode())
        except ValueError:
            return False
        if ok:
            self._ok[digest] = None
            if len(self._ok) > self._size:
                self._ok.popitem(last=False)
        return ok


PASSWORDS = PasswordChecker()


async def check_password(ctx: Context, username: str, password: str) -> dict[str, Any]:
    """The User object for a correct local-account login, else ``AuthenticationError``.

    Order as in KubeSphere: unknown user or empty field -> incorrect password;
    a state other than Active -> rate limited / not active (before the password
    is looked at); then the bcrypt check.
    """
    if not username or not password:
        raise AuthenticationError(INCORRECT_PASSWORD, incorrect_password=True)
    user = find_user(ctx, username)
    if user is None:
        raise AuthenticationError(INCORRECT_PASSWORD, incorrect_password=True)
    state = (user.get("status") or {}).get("state")
    if state != ACTIVE:
        if state == AUTH_LIMIT_EXCEEDED:
            raise AuthenticationError(RATE_LIMITED, rate_limited=True)
        raise AuthenticationError(NOT_ACTIVE)
    hashed = str((user.get("spec") or {}).get("password") or "")
    if not await PASSWORDS.verify(hashed, password):
        raise AuthenticationError(INCORRECT_PASSWORD, incorrect_password=True)
    return user


async def _basic(ctx: Context, request: web.Request, credentials: str) -> UserInfo:
    try:
        username, _, password = base64.b64decode(credentials, validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        raise unauthorized("invalid basic auth header") from None
    try:
        user = await check_password(ctx, username, password)
    except AuthenticationError as exc:
        if exc.incorrect_password:
            name = (find_user(ctx, username) or {}).get("metadata", {}).get("name", "")
            if name:
                await loginrecords.record(
                    ctx, request, name, login_type=loginrecords.PASSWORD, success=False, reason=exc.message
                )
        raise unauthorized(exc.message) from None
    return user_info(user)


TOKEN_ENDPOINT = "/oauth/token"


async def _bearer(ctx: Context, token: str, *, refresh_allowed: bool = False) -> UserInfo:
    try:
        claims = await ctx.tokens.verify(token)
    except TokenError as exc:
        raise unauthorized(str(exc)) from None
    except StoreUnavailable as exc:
        log.error("bearer token check failed: %s", exc)
        raise APIError(503, "the token cache is unavailable", as_status=True) from None
    allowed = (ACCESS_TOKEN, STATIC_TOKEN, REFRESH_TOKEN) if refresh_allowed else (ACCESS_TOKEN, STATIC_TOKEN)
    if claims.token_type not in allowed:
        raise unauthorized(f"{claims.token_type or 'this token'} cannot be used to authenticate requests")
    user = ctx.caches[kube.USERS].get(claims.username)
    if user is None:
        raise unauthorized(f'user.iam.kubesphere.io "{claims.username}" not found')
    if (user.get("status") or {}).get("state") == DISABLED:
        raise unauthorized(NOT_ACTIVE)
    return user_info(user, claims.extra)


async def verify_bearer(ctx: Context, token: str) -> UserInfo:
    """The user a bearer token stands for (access and static tokens of active users); 401 otherwise."""
    return await _bearer(ctx, token)


async def authenticate(ctx: Context, request: web.Request) -> UserInfo:
    """The caller of ``request``; raises a 401 ``APIError`` for bad credentials."""
    header = request.headers.get("Authorization")
    if header is None:
        return ANONYMOUS_USER
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and value:
        # The console sends its refresh token as the bearer of the refresh grant; only the
        # token endpoint takes one, and only there (anywhere else it must not authenticate).
        return await _bearer(ctx, value, refresh_allowed=request.path == TOKEN_ENDPOINT)
    if scheme.lower() == "basic" and value:
        return await _basic(ctx, request, value)
    raise unauthorized("unsupported authorization scheme")

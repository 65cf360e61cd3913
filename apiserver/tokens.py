"""JWTs KubeSphere's way: HS256 tokens whose validity also needs a key in the token cache.

A token is valid when its signature, ``exp`` and ``iat`` (within the clock
skew) check out *and* ``kubesphere:user:<name>:token:<jwt>`` exists in the
cache, so logging out on one apiserver replica revokes the token on all of
them: replicas share state only through Redis.  Tokens that never expire
(``accessTokenMaxAge: 0``) are not cached and not checked against the cache.
The in-memory store is for a single process and only used when configured.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import jwt

from kubesphere.config import Authentication, Cache

log = logging.getLogger(__name__)

ACCESS_TOKEN = "access_token"
REFRESH_TOKEN = "refresh_token"
STATIC_TOKEN = "static_token"


class TokenError(Exception):
    """The token is not valid; the message is what the 401 says after ``Unauthorized: ``."""


class StoreUnavailable(Exception):
    """The token cache cannot be reached: try again later."""


class TokenStore(Protocol):
    async def start(self) -> None: ...
    async def set(self, key: str, value: str, ttl: float) -> None: ...
    async def exists(self, key: str) -> bool: ...
    async def delete_matching(self, pattern: str) -> int: ...
    async def delete(self, key: str) -> int: ...
    async def ping(self) -> bool: ...
    async def close(self) -> None: ...


@dataclass
class MemoryStore:
    """A dict with expiry times: one process only (``cache.type: inmemory``)."""

    items: dict[str, tuple[str, float]] = field(default_factory=dict)

    async def set(self, key: str, value: str, ttl: float) -> None:
        self.items[key] = (value, time.monotonic() + ttl)

    async def exists(self, key: str) -> bool:
        entry = self.items.get(key)
        if entry is None:
            return False
        if entry[1] < time.monotonic():
            del self.items[key]
            return False
        return True

    async def delete(self, key: str) -> int:
        return 1 if self.items.pop(key, None) is not None else 0

    async def delete_matching(self, pattern: str) -> int:
        keys = [k for k in self.items if fnmatch.fnmatchcase(k, pattern)]
        for k in keys:
            del self.items[k]
        return len(keys)

    async def ping(self) -> bool:
        return True

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        self.items.clear()


class RedisStore:
    """Redis (``cache.type: redis``), shared by every replica.

    Each process also remembers, for a few seconds, keys it has seen exist, so
    a burst of requests with one token costs one round trip.  Revocations are
    published on ``INVALIDATIONS`` and every replica drops the matching keys at
    once.  Every (re)subscription forgets everything remembered, and while the
    subscription is down nothing is answered from memory; so a revocation is
    missed for at most the few seconds a key is remembered, and only if the
    channel broke at that very moment.
    """

    INVALIDATIONS = "kubesphere:token:invalidations"

    def __init__(self, cache: Cache, *, remember: float = 5.0, size: int = 100_000) -> None:
        import redis.asyncio as redis
        from redis.asyncio.retry import Retry
        from redis.backoff import ExponentialBackoff

        # One quick retry: a request waiting on a dead Redis should fail fast with 503.
        self._redis = redis.Redis(
            retry=Retry(ExponentialBackoff(cap=0.2, base=0.05), retries=1),
            host=cache.host,
            port=cache.port,
            password=cache.password or None,
            db=cache.db,
            socket_connect_timeout=5,
            socket_timeout=5,
            health_check_interval=30,
            max_connections=256,
        )
        self._remember = remember
        self._size = size
        self._seen: dict[str, float] = {}
        self._generation = 0  # bumped by every invalidation, so a racing lookup is not remembered
        self._listening = False
        self._task: asyncio.Task[None] | None = None

    async def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        import redis

        try:
            return await fn(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            raise StoreUnavailable(f"token cache: {exc}") from exc

    async def start(self) -> None:
        if self._task is None and self._remember > 0:
            self._task = asyncio.create_task(self._listen(), name="token invalidations")

    async def _listen(self) -> None:
        import redis

        while True:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(self.INVALIDATIONS)
                async for message in pubsub.listen():
                    if message.get("type") == "subscribe":
                        self._forget("*")
                        self._listening = True
                    elif message.get("type") == "message":
                        self._forget(message["data"].decode())
            except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
                log.warning("token invalidation channel lost (%s); checking Redis on every request", exc)
            finally:
                self._listening = False
                self._forget("*")
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(1)

    def _forget(self, pattern: str) -> None:
        self._generation += 1
        if pattern == "*":
            self._seen.clear()
        elif any(c in pattern for c in "*?["):
            for key in [k for k in self._seen if fnmatch.fnmatchcase(k, pattern)]:
                del self._seen[key]
        else:
            self._seen.pop(pattern, None)

    async def set(self, key: str, value: str, ttl: float) -> None:
        await self._call(self._redis.set, key, value, px=max(1, int(ttl * 1000)))

    async def exists(self, key: str) -> bool:
        now = time.monotonic()
        if self._listening and self._seen.get(key, 0.0) > now:
            return True
        generation = self._generation
        found = bool(await self._call(self._redis.exists, key))
        if found and self._listening and generation == self._generation:
            if len(self._seen) >= self._size:
                self._seen.clear()
            self._seen[key] = now + self._remember
        return found

    async def _publish(self, pattern: str) -> None:
        self._forget(pattern)
        await self._call(self._redis.publish, self.INVALIDATIONS, pattern)

    async def delete(self, key: str) -> int:
        deleted = int(await self._call(self._redis.delete, key))
        await self._publish(key)
        return deleted

    async def delete_matching(self, pattern: str) -> int:
        async def scan() -> list[Any]:
            return [k async for k in self._redis.scan_iter(match=pattern, count=500)]

        keys = await self._call(scan)
        deleted = int(await self._call(self._redis.delete, *keys)) if keys else 0
        await self._publish(pattern)
        return deleted

    async def ping(self) -> bool:
        try:
            return bool(await self._call(self._redis.ping))
        except StoreUnavailable:
            return False

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._redis.aclose()


def make_store(cache: Cache) -> TokenStore:
    return RedisStore(cache) if cache.type == "redis" else MemoryStore()


def _key(username: str, token: str) -> str:
    return f"kubesphere:user:{username}:token:{token}"


@dataclass(frozen=True)
class Claims:
    username: str
    token_type: str
    issued_at: float
    expires_at: float | None
    extra: dict[str, list[str]]
    raw: dict[str, Any]


class TokenIssuer:
    """Issue, verify and revoke tokens (the ``Authentication`` options say lifetimes and skew)."""

    def __init__(self, options: Authentication, store: TokenStore) -> None:
        if not options.jwt_secret:
            raise ValueError("authentication.jwtSecret (or KUBESPHERE_JWT_SECRET) must be set")
        self.options = options
        self.store = store
        self._secret = options.jwt_secret.encode()
        self._locks: dict[str, asyncio.Lock] = {}
        self._decoded: dict[str, Claims] = {}

    @property
    def access_lifetime(self) -> float:
        return self.options.oauth.access_token_max_age

    @property
    def refresh_lifetime(self) -> float:
        o = self.options.oauth
        return o.access_token_max_age + o.access_token_inactivity_timeout if o.access_token_max_age else 0.0

    async def issue(
        self,
        username: str,
        *,
        token_type: str,
        lifetime: float,
        extra: dict[str, list[str]] | None = None,
    ) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.options.oauth.issuer,
            "sub": username,
            "username": username,
            "iat": now,
            "token_type": token_type,
            # Unique per issue: two logins in the same second must not share a token (and a key).
            "jti": secrets.token_hex(8),
        }
        if lifetime > 0:
            claims["exp"] = now + int(lifetime)
        if extra:
            claims["extra"] = extra
        token = jwt.encode(claims, self._secret, algorithm="HS256")
        if lifetime > 0:
            await self.store.set(_key(username, token), token, lifetime)
        return token

    async def issue_pair(self, username: str, *, extra: dict[str, list[str]] | None = None) -> dict[str, Any]:
        """A login's tokens; without multipleLogin the user's earlier tokens are revoked first."""
        lock = self._locks.setdefault(username, asyncio.Lock())
        async with lock:
            if not self.options.multiple_login:
                await self.revoke_all(username)
            access = await self.issue(
                username, token_type=ACCESS_TOKEN, lifetime=self.access_lifetime, extra=extra
            )
            refresh = await self.issue(
                username, token_type=REFRESH_TOKEN, lifetime=self.refresh_lifetime, extra=extra
            )
        body: dict[str, Any] = {"access_token": access, "token_type": "Bearer", "refresh_token": refresh}
        if self.access_lifetime > 0:
            body["expires_in"] = int(self.access_lifetime)
        return body

    def _decode(self, token: str) -> Claims:
        """Signature, expiry and issue time; a signature already checked is remembered by token."""
        claims = self._decoded.get(token)
        now = time.time()
        if claims is None:
            try:
                raw = jwt.decode(
                    token,
                    self._secret,
                    algorithms=["HS256"],
                    leeway=0,
                    options={
                        "verify_iat": False,
                        "verify_aud": False,
                        "verify_iss": False,
                        "require": ["iat"],
                    },
                )
            except jwt.ExpiredSignatureError as exc:
                raise TokenError("token is expired") from exc
            except jwt.PyJWTError as exc:
                raise TokenError(f"invalid token: {exc}") from exc
            username = str(raw.get("username") or raw.get("sub") or "")
            if not username:
                raise TokenError("invalid token: no username")
            exp = raw.get("exp")
            extra = raw.get("extra") if isinstance(raw.get("extra"), dict) else {}
            claims = Claims(
                username=username,
                token_type=str(raw.get("token_type") or ""),
                issued_at=float(raw.get("iat") or 0),
                expires_at=float(exp) if exp is not None else None,
                extra={str(k): [str(x) for x in v] for k, v in (extra or {}).items() if isinstance(v, list)},
                raw=raw,
            )
            if len(self._decoded) >= 10_000:
                self._decoded.clear()
            self._decoded[token] = claims
        if claims.expires_at is not None and claims.expires_at <= now:
            self._decoded.pop(token, None)
            raise TokenError("token is expired")
        if claims.issued_at > now + self.options.maximum_clock_skew:
            raise TokenError("token used before issued")
        return claims

    async def verify(self, token: str) -> Claims:
        claims = self._decode(token)
        cached = claims.token_type == STATIC_TOKEN or self.access_lifetime <= 0
        if not cached and not await self.store.exists(_key(claims.username, token)):
            raise TokenError("token not found in cache")
        return claims

    async def revoke(self, token: str) -> None:
        """Revoke one token (the username comes from the token itself; the signature is not needed)."""
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
            username = str(unverified.get("username") or unverified.get("sub") or "")
        except jwt.PyJWTError:
            username = ""
        if username and await self.store.delete(_key(username, token)):
            return
        await self.store.delete_matching(f"kubesphere:user:*:token:{_escape(token)}")

    async def revoke_all(self, username: str) -> int:
        return await self.store.delete_matching(f"kubesphere:user:{_escape(username)}:token:*")


def _escape(text: str) -> str:
    """Glob-escape for Redis MATCH / fnmatch (names may not hold these, but tokens are opaque)."""
    return "".join(f"[{c}]" if c in "*?[]\\" else c for c in text)

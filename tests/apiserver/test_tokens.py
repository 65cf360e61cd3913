"""TokenIssuer: claims, verification rules, revocation, on the in-memory store and on real Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import jwt
import pytest

from apiserver.tokens import MemoryStore, RedisStore, TokenError, TokenIssuer, TokenStore
from kubesphere.config import Authentication, Cache, OAuthOptions
from tests.services import RedisServer

SECRET = "unit-test-secret-long-enough-for-hs256!"


def options(*, max_age: float = 7200, multiple_login: bool = True) -> Authentication:
    return Authentication(
        jwt_secret=SECRET,
        multiple_login=multiple_login,
        oauth=OAuthOptions(access_token_max_age=max_age, access_token_inactivity_timeout=1800),
    )


def run(coro: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(coro())  # type: ignore[arg-type]


def test_claims_and_lifetimes() -> None:
    async def go() -> None:
        issuer = TokenIssuer(options(), MemoryStore())
        pair = await issuer.issue_pair("alice", extra={"uninitialized": ["true"]})
        assert pair["expires_in"] == 7200 and pair["token_type"] == "Bearer"
        access = jwt.decode(pair["access_token"], SECRET, algorithms=["HS256"])
        assert access["iss"] == "kubesphere" and access["sub"] == access["username"] == "alice"
        assert access["token_type"] == "access_token" and access["exp"] - access["iat"] == 7200
        assert access["extra"] == {"uninitialized": ["true"]}
        refresh = jwt.decode(pair["refresh_token"], SECRET, algorithms=["HS256"])
        assert refresh["exp"] - refresh["iat"] == 9000
        claims = await issuer.verify(pair["access_token"])
        assert (claims.username, claims.token_type) == ("alice", "access_token")

    run(go)


def test_verification_failures() -> None:
    async def go() -> None:
        issuer = TokenIssuer(options(), MemoryStore())
        now = int(time.time())
        base = {"iss": "kubesphere", "sub": "bob", "username": "bob", "token_type": "access_token"}
        cases = {
            "token is expired": jwt.encode({**base, "iat": now - 100, "exp": now - 10}, SECRET),
            "token used before issued": jwt.encode({**base, "iat": now + 60, "exp": now + 600}, SECRET),
            "invalid token": jwt.encode(
                {**base, "iat": now, "exp": now + 600}, "another-secret-long-enough-for-hs256!!"
            ),
            "token not found in cache": jwt.encode({**base, "iat": now, "exp": now + 600}, SECRET),
        }
        for expected, token in cases.items():
            with pytest.raises(TokenError, match=expected):
                await issuer.verify(token)
        with pytest.raises(TokenError, match="invalid token"):
            await issuer.verify("not-a-jwt")
        # Within the clock skew is fine (once the token is in the cache).
        token = await issuer.issue("bob", token_type="access_token", lifetime=600)
        assert (await issuer.verify(token)).username == "bob"

    run(go)


def test_tokens_without_expiry_are_neither_cached_nor_looked_up() -> None:
    async def go() -> None:
        store = MemoryStore()
        issuer = TokenIssuer(options(max_age=0), store)
        pair = await issuer.issue_pair("carol")
        assert "expires_in" not in pair and store.items == {}
        assert "exp" not in jwt.decode(pair["access_token"], SECRET, algorithms=["HS256"])
        assert (await issuer.verify(pair["access_token"])).username == "carol"

    run(go)


async def _revocation(store: TokenStore, suffix: str) -> None:
    issuer = TokenIssuer(options(), store)
    a, b = f"dave-{suffix}", f"erin-{suffix}"
    one = await issuer.issue_pair(a)
    two = await issuer.issue_pair(a)
    other = await issuer.issue_pair(b)
    await issuer.revoke(one["access_token"])
    with pytest.raises(TokenError, match="not found in cache"):
        await issuer.verify(one["access_token"])
    await issuer.verify(two["access_token"])
    assert await issuer.revoke_all(a) == 3  # two's pair and one's refresh token
    with pytest.raises(TokenError):
        await issuer.verify(two["access_token"])
    await issuer.verify(other["access_token"])
    single = TokenIssuer(options(multiple_login=False), store)
    first = await single.issue_pair(b)
    second = await single.issue_pair(b)
    with pytest.raises(TokenError):
        await single.verify(first["access_token"])
    with pytest.raises(TokenError):
        await single.verify(other["access_token"])
    await single.verify(second["access_token"])
    await store.close()


def test_revocation_in_memory() -> None:
    run(lambda: _revocation(MemoryStore(), "mem"))


def test_revocation_in_redis(redis_server: RedisServer) -> None:
    cache = Cache(type="redis", host="127.0.0.1", port=redis_server.port, password=redis_server.password)

    async def go() -> None:
        store = RedisStore(cache)
        assert await store.ping()
        await _revocation(store, f"redis-{time.time_ns()}")

    run(go)


def test_unreachable_redis_is_not_ready() -> None:
    async def go() -> None:
        store = RedisStore(Cache(type="redis", host="127.0.0.1", port=1))
        assert not await store.ping()
        await store.close()

    run(go)


def test_jwt_secret_is_required() -> None:
    with pytest.raises(ValueError, match="jwtSecret"):
        TokenIssuer(Authentication(), MemoryStore())

"""The apiserver's client of Prometheus's HTTP API: instant and range queries, nothing else.

One pooled aiohttp session per process, against ``monitoring.endpoint`` of
kubesphere.yaml.  Queries are form-encoded POSTs (long expressions do not fit a
URL).  Every failure — no endpoint configured, Prometheus unreachable or slow,
an error answer, a body that is not Prometheus's — is a ``QueryError`` whose
text becomes the ``error`` of that one metric, never a failed request: the
console shows the other charts.  Credentials in the endpoint URL never appear in
an error text.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp

#: How long one query may take, connection included.
TIMEOUT = 30.0
#: Queries of one request in flight at once.
CONCURRENCY = 16


class QueryError(Exception):
    """A query that produced no data; the message is what the caller sees."""


@dataclass(frozen=True)
class Result:
    """Prometheus's ``data``: ``resultType`` (vector, matrix, scalar, string) and ``result``."""

    type: str
    series: list[dict[str, Any]]


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.username or parts.password:
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts)


class Prometheus:
    def __init__(self, endpoint: str, *, timeout: float = TIMEOUT) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self.limit = asyncio.Semaphore(CONCURRENCY)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                connector=aiohttp.TCPConnector(limit=CONCURRENCY * 2),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def query(self, expr: str, *, time: float) -> Result:
        return await self._call("query", {"query": expr, "time": _seconds(time)})

    async def query_range(self, expr: str, *, start: float, end: float, step: float) -> Result:
        form = {"query": expr, "start": _seconds(start), "end": _seconds(end), "step": _seconds(step)}
        return await self._call("query_range", form)

    async def _call(self, api: str, form: dict[str, str]) -> Result:
        if not self.endpoint:
            raise QueryError("monitoring.endpoint is not configured: there is no Prometheus to ask")
        url = f"{self.endpoint}/api/v1/{api}"
        shown = _redacted(url)
        try:
            async with self.limit, self._client().post(url, data=form) as resp:
                try:
                    body = await resp.json(content_type=None)
                except ValueError:
                    raise QueryError(f'Post "{shown}": answered {resp.status} without a JSON body') from None
        except TimeoutError:
            raise QueryError(f'Post "{shown}": no answer within {self.timeout:g}s') from None
        except aiohttp.ClientError as exc:
            raise QueryError(f'Post "{shown}": {_reason(exc)}') from None
        if not isinstance(body, dict):
            raise QueryError(f'Post "{shown}": the answer is not a Prometheus API response')
        if body.get("status") != "success":
            kind = body.get("errorType") or f"status {resp.status}"
            raise QueryError(f"{kind}: {body.get('error') or 'no error text'}")
        data = body.get("data")
        if not isinstance(data, dict) or not isinstance(data.get("resultType"), str):
            raise QueryError(f'Post "{shown}": the answer has no data.resultType')
        result = data.get("result")
        series = result if isinstance(result, list) else []
        return Result(type=data["resultType"], series=[s for s in series if isinstance(s, dict)])


def _seconds(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".")


def _reason(exc: aiohttp.ClientError) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        errno = exc.os_error.errno
        why = os.strerror(errno).lower() if errno else str(exc.os_error)
        return f"dial tcp {exc.host}:{exc.port}: connect: {why}"
    return str(exc) or type(exc).__name__

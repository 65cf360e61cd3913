"""Upgraded connections to kube-apiserver: websocket watches, exec, attach and port-forward.

A request with an ``Upgrade`` header (``websocket``, ``SPDY/3.1``) has been
authenticated and authorized like any other; it is then sent to kube-apiserver
on a connection of its own, with the server's credentials (the caller's
``Authorization``, ``Impersonate-*`` and ``X-Remote-*`` headers dropped, as for
every proxied call).  If kube-apiserver switches protocols, its ``101`` goes
back to the caller and from then on bytes are copied both ways as they arrive,
whatever the protocol inside; otherwise its answer is relayed as a normal
response.

When either side goes the other is closed: kube-apiserver's end of the stream
(a watch timing out, an exec'd command exiting) is flushed to the caller and
the caller's connection closed; a caller that goes away closes the upstream
connection, which ends the stream in kube-apiserver.  Nothing waits on a clock
once the protocols are switched: watches and terminals last as long as they
last.

aiohttp's server knows only ``websocket`` as an upgrade; for any other token
the connection is taken over the same way (its bytes go to this module's
parser once the handshake is answered), which works because clients wait for
the ``101`` before they speak the new protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

import yarl
from aiohttp import web
from multidict import CIMultiDict

from apiserver.errors import APIError

if TYPE_CHECKING:
    from apiserver.kube import KubeClient

log = logging.getLogger(__name__)

#: Bounds the handshake (connect, send, read kube-apiserver's answer head), not the stream.
HANDSHAKE_TIMEOUT = 30.0
#: Reading from the caller pauses while this much is queued for kube-apiserver.
HIGH_WATER = 1 << 20
CHUNK = 1 << 16
_DROP_REQUEST = frozenset(
    {"connection", "upgrade", "host", "content-length", "transfer-encoding", "keep-alive", "te",
     "trailer", "proxy-authorization", "proxy-authenticate", "authorization"}
)  # fmt: skip
_DROP_RESPONSE = frozenset({"content-length", "transfer-encoding", "keep-alive", "date", "server"})
IDENTITY = ("impersonate-", "x-remote-")


class UpgradeResponse(web.StreamResponse):
    """A ``101`` whose body is the raw upgraded stream (no length, no chunking)."""

    _length_check = False

    async def write_eof(self, data: bytes = b"") -> None:
        # The stream is over and its connection closed; nothing is left to terminate.
        with contextlib.suppress(ConnectionError):
            await super().write_eof(data)


class _CallerBytes:
    """What aiohttp feeds once the handshake is answered: queued for kube-apiserver, with back-pressure."""

    def __init__(self, request: web.Request) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.pending = 0
        self.paused = False
        self._transport = request.transport

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.queue.put_nowait(bytes(data))
        self.pending += len(data)
        if self.pending > HIGH_WATER and not self.paused and self._transport is not None:
            self._transport.pause_reading()
            self.paused = True
        return False, b""

    def feed_eof(self) -> None:
        self.queue.put_nowait(None)

    def taken(self, size: int) -> None:
        self.pending -= size
        if self.paused and self.pending < HIGH_WATER // 4 and self._transport is not None:
            self._transport.resume_reading()
            self.paused = False


def request_head(kube: KubeClient, request: web.Request) -> bytes:
    """The request line and headers sent to kube-apiserver (its credentials, the caller's upgrade)."""
    url = yarl.URL(kube.server)
    lines = [f"{request.method} {request.rel_url.raw_path_qs} HTTP/1.1", f"Host: {url.host}:{url.port}"]
    for key, value in request.headers.items():
        lower = key.lower()
        if lower in _DROP_REQUEST or lower.startswith(IDENTITY):
            continue
        lines.append(f"{key}: {value}")
    lines += ["Connection: Upgrade", f"Upgrade: {request.headers['Upgrade']}"]
    lines += [f"{k}: {v}" for k, v in kube.headers().items()]
    # Header values arrive decoded; what latin-1 cannot carry was not valid in a header either.
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", errors="replace")


def parse_head(raw: bytes) -> tuple[int, CIMultiDict[str]]:
    """Status and headers of an HTTP/1.1 response head (raises ValueError when it is not one)."""
    text = raw.decode("latin-1")
    status_line, *header_lines = text.rstrip("\r\n").split("\r\n")
    version, _, rest = status_line.partition(" ")
    if not version.startswith("HTTP/1.") or not rest[:3].isdigit():
        raise ValueError(f"not an HTTP response: {status_line[:80]!r}")
    headers: CIMultiDict[str] = CIMultiDict()
    for line in header_lines:
        key, sep, value = line.partition(":")
        if not sep:
            raise ValueError(f"bad header line {line[:80]!r}")
        headers.add(key.strip(), value.strip())
    return int(rest[:3]), headers


async def _read_body(reader: asyncio.StreamReader, headers: CIMultiDict[str]) -> bytes:
    if "chunked" in headers.get("Transfer-Encoding", "").lower():
        body = bytearray()
        while True:
            size = int((await reader.readline()).split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                await reader.readline()
                return bytes(body)
            body += await reader.readexactly(size)
            await reader.readline()
    length = headers.get("Content-Length")
    if length is not None and length.isdigit():
        return await reader.readexactly(int(length))
    return await reader.read()


async def proxy(kube: KubeClient, request: web.Request) -> web.StreamResponse:
    """Send an upgrade request to kube-apiserver; on ``101`` splice the two connections."""
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(HANDSHAKE_TIMEOUT):
            reader, writer = await kube.connect(limit=CHUNK * 4)
            writer.write(request_head(kube, request))
            await writer.drain()
            status, headers = parse_head(await reader.readuntil(b"\r\n\r\n"))
    except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
        log.warning("upgrade %s %s: %s", request.method, request.path, exc or type(exc).__name__)
        if writer is not None:
            writer.close()
        raise APIError(503, "kube-apiserver is unavailable", as_status=True) from None
    if status != 101:
        try:
            body = await asyncio.wait_for(_read_body(reader, headers), HANDSHAKE_TIMEOUT)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError):
            body = b""
        finally:
            writer.close()
        dropped = _DROP_RESPONSE | {"connection"}
        kept = CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in dropped)
        return web.Response(status=status, headers=kept, body=body)
    return await _splice(request, headers, reader, writer)


async def _splice(
    request: web.Request,
    headers: CIMultiDict[str],
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
) -> web.StreamResponse:
    response = UpgradeResponse(
        status=101, headers=CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in _DROP_RESPONSE)
    )
    response.force_close()
    caller = _CallerBytes(request)
    # Before the 101 goes out: the caller's first frames must reach this parser, not aiohttp's.
    request.protocol.set_parser(caller)  # type: ignore[arg-type]
    request.protocol.keep_alive(False)
    await response.prepare(request)

    async def downstream() -> None:
        while data := await reader.read(CHUNK):
            await response.write(data)

    async def upstream() -> None:
        while (data := await caller.queue.get()) is not None:
            writer.write(data)
            await writer.drain()
            caller.taken(len(data))

    down = asyncio.create_task(downstream())
    up = asyncio.create_task(upstream())
    try:
        done, _ = await asyncio.wait({down, up}, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            exc = task.exception()
            if exc is not None and not isinstance(exc, (OSError, asyncio.IncompleteReadError)):
                raise exc
    finally:
        for task in (down, up):
            task.cancel()
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
        if request.transport is not None:
            request.transport.close()
    return response

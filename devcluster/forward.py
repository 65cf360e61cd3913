"""A TCP forwarder: the real node's pods reach kube-apiserver through it.

kube-apiserver listens on loopback only.  Pods reach it as the ``kubernetes``
Service (10.96.0.1:443), which kube-proxy sends to the Service's endpoint; with
the real node on, that endpoint is this forwarder on the node's address, and it
passes the bytes (TLS end to end) to kube-apiserver on loopback.

    python -m devcluster.forward --listen 192.0.2.2:40001 --to 127.0.0.1:6443
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            writer.close()


async def _serve(listen: tuple[str, int], target: tuple[str, int]) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*target)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    server = await asyncio.start_server(handle, *listen, reuse_address=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devcluster.forward", description=__doc__.splitlines()[0])
    parser.add_argument("--listen", type=_address, required=True, help="host:port to listen on")
    parser.add_argument("--to", type=_address, required=True, help="host:port to forward to")
    parser.add_argument("--state", help="the state directory it belongs to (so a stop finds it)")
    args = parser.parse_args(argv)
    asyncio.run(_serve(args.listen, args.to))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

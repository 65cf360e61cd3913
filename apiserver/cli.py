"""``ks-apiserver``: load kubesphere.yaml, connect to Kubernetes and Redis, fill the caches, serve.

Out of cluster it listens on 127.0.0.1:9090 (as ks-apiserver does); in a pod
``--bind 0.0.0.0:9090``.  Plain HTTP unless ``--tls-cert-file`` and
``--tls-private-key-file`` (KubeSphere's flags) name a certificate: clients
such as kubectl send bearer tokens over HTTPS only.  A configuration it cannot use exits with status 2 and
a message naming the key.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import ssl
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from apiserver import kube, proxy, server
from apiserver.context import Context
from apiserver.tokens import TokenIssuer, make_store
from kubesphere import config as configuration

log = logging.getLogger("apiserver")

DEFAULT_CONFIG = Path("/etc/kubesphere/kubesphere.yaml")


def parse_bind(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{value!r}: expected HOST:PORT")
    return host.strip("[]") or "0.0.0.0", int(port)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ks-apiserver", description=__doc__.splitlines()[0])
    p.add_argument("--config", type=Path, default=None, help=f"kubesphere.yaml (default {DEFAULT_CONFIG})")
    p.add_argument("--kubeconfig", type=Path, default=None, help="default $KUBECONFIG, then in-cluster")
    p.add_argument(
        "--bind", type=parse_bind, default=parse_bind(os.environ.get("KS_APISERVER_BIND", "127.0.0.1:9090")),
        help="HOST:PORT to listen on (default 127.0.0.1:9090, or $KS_APISERVER_BIND)",
    )  # fmt: skip
    p.add_argument(
        "--tls-cert-file", type=Path, default=None,
        help="serve HTTPS with this certificate (PEM, chain after the leaf); needs --tls-private-key-file",
    )  # fmt: skip
    p.add_argument("--tls-private-key-file", type=Path, default=None, help="the key of --tls-cert-file (PEM)")
    p.add_argument("--log-level", default=os.environ.get("KS_APISERVER_LOG_LEVEL", "INFO"))
    p.add_argument(
        "--sync-timeout", type=float, default=120.0, help="seconds to wait for the first cache sync"
    )
    return p


def load_config(path: Path | None) -> configuration.Config:
    if path is None and DEFAULT_CONFIG.exists():
        path = DEFAULT_CONFIG
    cfg = configuration.load(path)
    if not cfg.authentication.jwt_secret:
        raise configuration.ConfigError("authentication.jwtSecret: required (or set KUBESPHERE_JWT_SECRET)")
    proxy.gateway(cfg)  # the gateway's section is this process's own: check it before anything starts
    return cfg


def tls_context(cert: Path | None, key: Path | None) -> ssl.SSLContext | None:
    """The serving context of ``--tls-cert-file``/``--tls-private-key-file`` (None: plain HTTP).

    Raises ``ConfigError`` when only one is given or they cannot be loaded.
    """
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise configuration.ConfigError("--tls-cert-file and --tls-private-key-file go together")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(cert), str(key))
    except (OSError, ssl.SSLError) as exc:
        raise configuration.ConfigError(f"--tls-cert-file {cert}: cannot load it: {exc}") from exc
    return context


def make_context(cfg: configuration.Config, client: kube.KubeClient) -> Context:
    from apiserver.rbac import Authorizer
    from apiserver.signing import Signer

    caches = kube.Caches(client, kube.PLATFORM_RESOURCES)
    tokens = TokenIssuer(cfg.authentication, make_store(cfg.cache))
    return Context(
        config=cfg,
        kube=client,
        caches=caches,
        authorizer=Authorizer(caches, mode=cfg.authorization_mode),
        tokens=tokens,
        signer=Signer(cfg.authentication.oauth),
    )


def build(ctx: Context, *, sync_timeout: float) -> web.Application:
    app = server.build_app(ctx)

    async def report_sync() -> None:
        if await ctx.caches.wait_synced(timeout=sync_timeout):
            log.info("caches synced (%d resources); ready", len(list(ctx.caches)))
        else:
            log.warning("caches not synced after %.0fs: %s", sync_timeout, ", ".join(ctx.caches.unsynced()))

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        # Listen at once (liveness); /readyz and every API call wait for the first sync.
        await ctx.caches.start()
        await ctx.tokens.store.start()
        reporter = asyncio.create_task(report_sync())
        yield
        reporter.cancel()
        await ctx.caches.stop()
        await ctx.tokens.store.close()
        await ctx.kube.close()

    app.cleanup_ctx.append(lifecycle)
    return app


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    try:
        cfg = load_config(args.config)
        serving = tls_context(args.tls_cert_file, args.tls_private_key_file)
    except configuration.ConfigError as exc:
        print(f"ks-apiserver: {exc}", file=sys.stderr)
        return 2
    try:
        client = kube.KubeClient.from_kubeconfig(args.kubeconfig)
    except Exception as exc:  # a broken kubeconfig raises whatever the loader found
        print(f"ks-apiserver: cannot load the kubeconfig: {exc}", file=sys.stderr)
        return 2
    host, port = args.bind
    try:
        ctx = make_context(cfg, client)
    except (configuration.ConfigError, OSError) as exc:  # the ID-token key it was told to load
        print(f"ks-apiserver: {exc}", file=sys.stderr)
        return 2
    app = build(ctx, sync_timeout=args.sync_timeout)
    log.info("listening on %s://%s:%d", "https" if serving else "http", host, port)
    web.run_app(
        app, host=host, port=port, ssl_context=serving, print=None, access_log=None, shutdown_timeout=10
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Wiring: kopf's registry and settings, and the life of one manager process.

``run`` serves the HTTP endpoints, campaigns for the Lease, and only while it
leads runs kopf (cluster-wide, standalone: no kopf peering objects) with every
controller's handlers and the login-history sweep.  Losing the lease stops kopf
and ends the process with status 1, so the replica restarts as a standby and
never acts alongside a new leader.

kopf keeps its bookkeeping in annotations under ``controllers.kubesphere.io``
(the User CRD has no status subresource, and its status schema keeps no
unknown fields).  The diff base kopf stores on each object never holds a
password: ``spec.password`` is replaced by a keyed digest first.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import secrets
import signal
from collections.abc import Iterable
from typing import Any

import kopf

from controllers import (
    csr,
    devops,
    groupbindings,
    http,
    loginrecords,
    metrics,
    namespaces,
    rolebindings,
    users,
    workspaces,
)
from controllers.context import Context
from controllers.kube import Kube, connection_info, load_client
from controllers.ldap import LdapSync
from controllers.settings import Settings
from kubesphere.leases import LeaderElector

log = logging.getLogger(__name__)

PREFIX = "controllers.kubesphere.io"
FINALIZER = f"{PREFIX}/cleanup"
_DIGEST_KEY = secrets.token_bytes(32)


class DiffBase(kopf.AnnotationsDiffBaseStorage):
    """kopf's last-handled configuration, with the password replaced by a digest."""

    def build(self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None) -> kopf.BodyEssence:
        essence = super().build(body=body, extra_fields=extra_fields)
        spec = essence.get("spec")
        if isinstance(spec, dict) and spec.get("password"):
            digest = hmac.new(_DIGEST_KEY, str(spec["password"]).encode(), hashlib.sha256).hexdigest()[:16]
            essence["spec"] = {**spec, "password": f"digest:{digest}"}  # type: ignore[index]
        return essence


def operator_settings(settings: Settings) -> kopf.OperatorSettings:
    s = kopf.OperatorSettings()
    s.persistence.finalizer = FINALIZER
    s.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
    s.persistence.diffbase_storage = DiffBase(prefix=PREFIX, key="last-handled-configuration")
    s.posting.level = logging.WARNING  # Events for problems only, not one per successful handler.
    s.execution.max_workers = settings.workers
    s.watching.server_timeout = 300
    s.batching.worker_limit = None
    return s


def build_registry(ctx: Context) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    for module in (users, csr, loginrecords, workspaces, namespaces, rolebindings, groupbindings, devops):
        module.register(registry, ctx)

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return connection_info(ctx.kube.api)

    return registry


async def _run_kopf(ctx: Context, health: http.Health, stop: asyncio.Event) -> None:
    ready = asyncio.Event()

    async def mark_ready() -> None:
        await ready.wait()
        health.operator_ready = True
        log.info(
            "controllers running: user, loginrecord, workspacetemplate, workspace, namespace, "
            "globalrolebinding, devopsproject, certificatesigningrequest"
        )

    watcher = asyncio.create_task(mark_ready())
    sweeper = asyncio.create_task(loginrecords.sweep_forever(ctx))
    try:
        await kopf.operator(
            registry=build_registry(ctx),
            settings=operator_settings(ctx.settings),
            standalone=True,
            clusterwide=True,
            stop_flag=stop,
            ready_flag=ready,
        )
    finally:
        sweeper.cancel()
        watcher.cancel()


async def run(settings: Settings) -> int:
    """The whole process; returns the exit status."""
    api = load_client(settings.kubeconfig)
    kube = Kube(api)
    ldap = LdapSync(settings.config.ldap) if settings.config.ldap else None
    ctx = Context(kube=kube, settings=settings, ldap=ldap)
    health = http.Health(leading=not settings.leader.enabled, standby=True)
    runner = await http.start(health, host=settings.listen_host, port=settings.listen_port)
    log.info("serving /healthz, /readyz and /metrics on %s:%d", settings.listen_host, settings.listen_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    elector: LeaderElector | None = None
    campaign: asyncio.Task[None] | None = None
    status = 0
    try:
        if settings.leader.enabled:
            became = asyncio.Event()

            def on_change(leading: bool) -> None:
                metrics.LEADER.set(1 if leading else 0)
                if leading:
                    loop.call_soon_threadsafe(became.set)

            elector = LeaderElector(kube, settings.leader.lease(), on_change=on_change)
            campaign = asyncio.create_task(elector.run_until_lost())
            leading = asyncio.create_task(became.wait())
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait([leading, stopping, campaign], return_when=asyncio.FIRST_COMPLETED)
            leading.cancel()
            stopping.cancel()
            if campaign.done():
                log.error("leader election ended unexpectedly: %r", campaign.exception())
                return 1
            if not elector.leading.is_set():
                return 0
            health.leading = True
            # The campaign returns only when leadership is lost (or it crashed): stop acting then.
            campaign.add_done_callback(lambda _: stop.set())
        else:
            metrics.LEADER.set(1)
        await _run_kopf(ctx, health, stop)
        if campaign is not None and campaign.done():
            log.error("stopping: another replica may lead now")
            status = 1
    finally:
        lost = campaign is not None and campaign.done() and not campaign.cancelled()
        if campaign is not None and not campaign.done():
            campaign.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await campaign
        if elector is not None and not lost:
            await asyncio.to_thread(elector.release)
        if ldap is not None:
            ldap.close()
        await runner.cleanup()
        api.close()  # type: ignore[no-untyped-call]
    return status

"""Wiring: settings → API client → leader election → one engine per leadership term."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType

from installer import __version__
from installer.components import load_table
from installer.engine import Engine
from installer.kube import Kube, connect
from installer.metrics import Health, Metrics, serve
from installer.roles import check_roles, roles_paths, runner_for
from installer.runs import sweep_stale_runs
from installer.settings import Settings
from kubesphere.leases import LeaderElector, LeaseOptions

log = logging.getLogger("ks-installer")


def setup_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)-7s %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S%z",
    )
    for noisy in ("kubernetes", "urllib3", "ansible_runner"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def run_operator(settings: Settings, stop: threading.Event | None = None) -> None:
    """Run until ``stop`` is set (or SIGTERM/SIGINT when called from the main thread)."""
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():

        def _terminate(signum: int, _frame: FrameType | None) -> None:
            log.info("received %s, shutting down", signal.Signals(signum).name)
            stop.set()

        signal.signal(signal.SIGTERM, _terminate)
        signal.signal(signal.SIGINT, _terminate)

    table = load_table(settings.component_table)
    # Fail fast on a bad table or missing roles, before connecting or campaigning for the lease.
    check_roles(table, roles_paths(settings))
    api = connect(settings.kubeconfig)
    kube = Kube(api, namespace=settings.namespace, name=settings.name)
    metrics = Metrics(__version__)
    kube.on_write = lambda kind: metrics.api_writes.labels(kind).inc()
    health = Health()
    server = serve(settings.listen, metrics, health)
    runner = runner_for(settings)

    stale = sweep_stale_runs(settings.work_dir)
    if stale:
        log.info("removed %d run data dirs left by operators that are gone", len(stale))

    def new_engine() -> Engine:
        return Engine(
            settings=settings, kube=kube, table=table, runner=runner, metrics=metrics, health=health
        )

    log.info(
        "ks-installer %s watching %s/%s (components: %s)",
        __version__,
        settings.namespace,
        settings.name,
        ", ".join(c.name for c in table if c.supported),
    )
    try:
        if not settings.leader_election:
            health.role, health.ready = "leader (no election)", True
            metrics.leader.set(1)
            new_engine().run(stop)
            return
        _lead_when_elected(settings, kube, new_engine, metrics, health, stop)
    finally:
        if server:
            server.shutdown()
        api.close()  # type: ignore[no-untyped-call]
        log.info("stopped")


def _lead_when_elected(
    settings: Settings,
    kube: Kube,
    new_engine: Callable[[], Engine],
    metrics: Metrics,
    health: Health,
    stop: threading.Event,
) -> None:
    term_stop = threading.Event()
    term: list[threading.Thread] = []
    changed = threading.Event()

    def on_change(leading: bool) -> None:
        metrics.leader.set(1 if leading else 0)
        changed.set()

    lease = LeaseOptions(
        name=settings.lease_name,
        namespace=settings.namespace,
        identity=settings.identity,
        duration=settings.lease_duration,
        renew=settings.lease_renew,
    )
    elector = LeaderElector(kube, lease, on_change=on_change, on_write=lambda: kube.count("lease"))
    campaign = threading.Thread(target=elector.run, args=(stop,), name="leader-election", daemon=True)
    campaign.start()
    health.role, health.ready = "standby", True
    log.info(
        "waiting to be elected (lease %s/%s as %s)",
        settings.namespace,
        settings.lease_name,
        settings.identity,
    )
    while not stop.is_set():
        health.beat()
        changed.wait(timeout=5)
        changed.clear()
        leading = elector.leading.is_set()
        running = bool(term) and term[0].is_alive()
        if leading and not running:
            term_stop.clear()
            engine = new_engine()
            term[:] = [threading.Thread(target=engine.run, args=(term_stop,), name="engine", daemon=True)]
            term[0].start()
            health.role = "leader"
        elif not leading and running:
            log.warning("stepping down: stopping in-flight runs")
            term_stop.set()
            term[0].join(timeout=60)
            health.role = "standby"
    term_stop.set()
    if term:
        term[0].join(timeout=60)
    campaign.join(timeout=settings.lease_renew + 35)

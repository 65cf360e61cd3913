"""Prometheus metrics and the health, readiness and metrics HTTP endpoints.

``/healthz`` answers 200 while the main loop is alive, ``/readyz`` while the
operator can do its job (leader: watch synced; standby: lease loop healthy),
``/metrics`` serves the metrics below in the Prometheus text format.
"""

from __future__ import annotations

import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from installer.errors import ConfigurationError

log = logging.getLogger(__name__)


class Metrics:
    def __init__(self, version: str) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.build_info = Gauge("ks_installer_build_info", "Installer version", ["version"], registry=r)
        self.build_info.labels(version).set(1)
        self.runs = Counter(
            "ks_installer_runs_total",
            "Component runs by outcome",
            ["component", "action", "outcome"],
            registry=r,
        )
        self.run_seconds = Histogram(
            "ks_installer_run_duration_seconds",
            "Wall time of component runs (the whole ansible-runner process)",
            ["component", "action"],
            buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600),
            registry=r,
        )
        self.queue_depth = Gauge("ks_installer_queue_depth", "Planned steps not yet started", registry=r)
        self.in_flight = Gauge("ks_installer_runs_in_flight", "Component runs in flight", registry=r)
        self.leader = Gauge("ks_installer_is_leader", "1 while this replica holds the lease", registry=r)
        self.api_writes = Counter(
            "ks_installer_api_writes_total", "Writes to the Kubernetes API by kind", ["kind"], registry=r
        )
        self.reconciles = Counter("ks_installer_reconciles_total", "Planning passes", registry=r)
        self.failed_components = Gauge(
            "ks_installer_failed_components", "Components currently Failed", registry=r
        )


class Health:
    """Liveness and readiness facts, updated by the loops that own them."""

    def __init__(self) -> None:
        self._beat = time.monotonic()
        self.ready = False
        self.role = "starting"

    def beat(self) -> None:
        self._beat = time.monotonic()

    def alive(self, *, stale_after: float = 120.0) -> bool:
        return time.monotonic() - self._beat < stale_after


def serve(listen: str, metrics: Metrics, health: Health) -> ThreadingHTTPServer | None:
    """Start the endpoints on ``host:port`` in a daemon thread; empty ``listen`` disables them."""
    if not listen:
        return None
    host, _, port = listen.rpartition(":")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                self._send(200, generate_latest(metrics.registry), CONTENT_TYPE_LATEST)
            elif self.path == "/healthz":
                ok = health.alive()
                self._send(200 if ok else 503, b"ok\n" if ok else b"main loop stalled\n")
            elif self.path == "/readyz":
                body = f"{health.role}\n".encode()
                self._send(200 if health.ready and health.alive() else 503, body)
            else:
                self._send(404, b"not found\n")

        def _send(self, code: int, body: bytes, ctype: str = "text/plain; charset=utf-8") -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            log.debug("http: " + format, *args)

    try:
        server = ThreadingHTTPServer((host or "0.0.0.0", int(port)), Handler)
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot serve health and metrics on {listen!r}: {exc}") from exc
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    log.info("health and metrics on http://%s/{healthz,readyz,metrics}", listen)
    return server

"""Prometheus metrics: requests by verb, code and route group, their latency, and cache sizes.

The route group is coarse on purpose (``/api``, ``/apis``, ``/kapis/<group>``,
``/oauth``, health...): label values stay few whatever paths clients send.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

if TYPE_CHECKING:
    from apiserver.kube import Caches

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)

REQUESTS = Counter(
    "ks_apiserver_request_total", "Requests served, by verb, code and route group.",
    ["verb", "code", "group"], registry=REGISTRY,
)  # fmt: skip
LATENCY = Histogram(
    "ks_apiserver_request_duration_seconds", "Time to answer a request (watches are not counted).",
    ["verb", "group"], registry=REGISTRY,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)  # fmt: skip
CACHE_OBJECTS = Gauge(
    "ks_apiserver_cache_objects", "Objects held by each informer.", ["resource"], registry=REGISTRY
)
CACHE_SYNCED = Gauge("ks_apiserver_caches_synced", "1 when every informer has listed.", registry=REGISTRY)
ERRORS = Counter(
    "ks_apiserver_internal_errors_total", "Unexpected errors answered with 500.", registry=REGISTRY
)


def route_group(path: str) -> str:
    parts = [p for p in path.split("/") if p]
    if not parts:
        return "root"
    head = parts[0]
    if head in ("api", "apis", "oauth", "version"):
        return "/" + head
    if head in ("kapis", "kapi") and len(parts) > 1:
        if parts[1] == "clusters" and len(parts) > 3:
            return f"/{head}/{parts[3]}"
        return f"/{head}/{parts[1]}"
    if head in ("healthz", "readyz", "livez", "metrics"):
        return "/" + head
    return "other"


def observe(verb: str, code: int, path: str, seconds: float) -> None:
    group = route_group(path)
    REQUESTS.labels(verb=verb, code=str(code), group=group).inc()
    if verb != "watch":  # a watch lasts as long as the client wants: not a latency
        LATENCY.labels(verb=verb, group=group).observe(seconds)


def render(caches: Caches) -> web.Response:
    for informer in caches:
        CACHE_OBJECTS.labels(resource=str(informer.resource)).set(len(informer))
    CACHE_SYNCED.set(1 if caches.synced() else 0)
    resp = web.Response(body=generate_latest(REGISTRY))
    resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return resp

"""/kapis/resources.kubesphere.io/v1alpha2 quotas and abnormal workloads: the console's overview cards.

``GET /namespaces/{ns}/quotas`` merges the namespace's ResourceQuotas (the
tightest hard limit and the lowest usage of each resource, as KubeSphere reads
them), adds ``left`` (hard minus used, never below zero) and counts the objects
of the kinds the console shows when no quota tracks them.  ``GET /quotas`` is the
cluster's counts (``namespace`` is KubeSphere's literal ``"\\"\\""``).

``GET [/namespaces/{ns}]/abnormalworkloads`` counts what the console flags: a
Deployment or StatefulSet whose ready replicas differ from its spec (and are not
a stopped 0/0), a DaemonSet whose ready pods differ from the desired number, a
Job neither active nor succeeded, a PersistentVolumeClaim Pending or Lost.

Objects come from informers started on first use (then kept by watch).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp import web

from apiserver.errors import APIError
from apiserver.kapis import common
from apiserver.openapi import Routes
from kubesphere import quantity
from kubesphere.resources import (
    CRONJOBS,
    DAEMONSETS,
    DEPLOYMENTS,
    INGRESSES,
    JOBS,
    NAMESPACES,
    PODS,
    PVCS,
    RESOURCEQUOTAS,
    SERVICES,
    STATEFULSETS,
    Resource,
)

PREFIX = "/kapis/resources.kubesphere.io/v1alpha2"
routes = Routes(PREFIX, "Resources (v1alpha2)")
SYNC_TIMEOUT = 20.0
#: Quota keys the overview always shows, and what each counts (None: a kind this platform does not serve).
COUNTED: dict[str, Resource | None] = {
    "count/pods": PODS,
    "count/daemonsets.apps": DAEMONSETS,
    "count/deployments.apps": DEPLOYMENTS,
    "count/ingresses.extensions": INGRESSES,
    "count/services": SERVICES,
    "count/statefulsets.apps": STATEFULSETS,
    "persistentvolumeclaims": PVCS,
    "count/jobs.batch": JOBS,
    "count/cronjobs.batch": CRONJOBS,
    "count/s2ibuilders.devops.kubesphere.io": None,
}
QUOTA_SCHEMA = {
    "type": "object",
    "required": ["data"],
    "properties": {"namespace": {"type": "string"}, "data": {"type": "object"}},
}


async def _objects(request: web.Request, res: Resource, namespace: str | None) -> list[dict[str, Any]]:
    try:
        informer = await asyncio.wait_for(common.ctx(request).caches.informer(res), SYNC_TIMEOUT)
    except TimeoutError:
        raise APIError(503, f"{res} is not available yet; try again") from None
    return informer.list(namespace=namespace or None)


def _tightest(merged: dict[str, str], found: Any) -> None:
    for key, value in (found or {}).items():
        try:
            if key not in merged or quantity.parse(merged[key]) > quantity.parse(value):
                merged[key] = value
        except quantity.QuantityError:
            merged.setdefault(key, value)


def _left(hard: dict[str, str], used: dict[str, str]) -> dict[str, str]:
    left = {}
    for key, limit in hard.items():
        if key in used:
            try:
                left[key] = quantity.remaining(limit, used[key])
            except quantity.QuantityError:
                continue
    return left


async def _counts(request: web.Request, namespace: str | None, skip: dict[str, str]) -> dict[str, str]:
    counts = {}
    for key, res in COUNTED.items():
        if key not in skip:
            counts[key] = str(len(await _objects(request, res, namespace))) if res is not None else "0"
    return counts


def _namespace(request: web.Request) -> str:
    name = common.name_param(request, "namespace", NAMESPACES)
    if common.ctx(request).caches[NAMESPACES].get(name) is None:
        raise APIError(404, f'namespaces "{name}" not found')
    return name


@routes.add("GET", "/quotas", summary="Object counts of the cluster", response=QUOTA_SCHEMA)
async def cluster_quotas(request: web.Request) -> web.Response:
    return common.ok({"namespace": '""', "data": {"used": await _counts(request, None, {})}})


@routes.add("GET", "/namespaces/{namespace}/quotas", summary="A project's quotas, usage and what is left")
async def namespace_quotas(request: web.Request) -> web.Response:
    namespace = _namespace(request)
    hard: dict[str, str] = {}
    used: dict[str, str] = {}
    for quota in await _objects(request, RESOURCEQUOTAS, namespace):
        status = quota.get("status") or {}
        _tightest(hard, status.get("hard"))
        _tightest(used, status.get("used"))
    left = _left(hard, used)
    used.update(await _counts(request, namespace, used))
    data: dict[str, Any] = {"hard": hard, "used": used, "left": left}
    return common.ok({"namespace": namespace, "data": {k: v for k, v in data.items() if v}})


def _replicas_status(obj: dict[str, Any]) -> str:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    wanted, ready = spec.get("replicas"), status.get("readyReplicas") or 0
    if wanted is None or (ready == 0 and wanted == 0):
        return "stopped"
    return "running" if ready == wanted else "updating"


def _daemonset_status(obj: dict[str, Any]) -> str:
    status = obj.get("status") or {}
    desired, ready = status.get("desiredNumberScheduled") or 0, status.get("numberReady") or 0
    if desired == 0 and ready == 0:
        return "stopped"
    return "running" if desired == ready else "updating"


def _job_status(obj: dict[str, Any]) -> str:
    status = obj.get("status") or {}
    if status.get("active"):
        return "running"
    if status.get("failed"):
        return "failed"
    return "completed" if status.get("succeeded") else "failed"


def _pvc_phase(obj: dict[str, Any]) -> str:
    return str((obj.get("status") or {}).get("phase") or "Pending")


Check = Callable[[dict[str, Any]], bool]
ABNORMAL: tuple[tuple[str, Resource, Check], ...] = (
    ("deployments", DEPLOYMENTS, lambda o: _replicas_status(o) == "updating"),
    ("statefulsets", STATEFULSETS, lambda o: _replicas_status(o) == "updating"),
    ("daemonsets", DAEMONSETS, lambda o: _daemonset_status(o) == "updating"),
    ("jobs", JOBS, lambda o: _job_status(o) == "failed"),
    (
        "persistentvolumeclaims",
        PVCS,
        lambda o: (o.get("status") or {}).get("phase", "Pending") in ("Pending", "Lost"),
    ),
)


async def _abnormal(request: web.Request, namespace: str) -> web.Response:
    counts = {}
    for key, res, flagged in ABNORMAL:
        counts[key] = sum(1 for o in await _objects(request, res, namespace) if flagged(o))
    return common.ok({"namespace": namespace, "data": counts})


@routes.add("GET", "/abnormalworkloads", summary="Counts of unhealthy workloads and volumes in the cluster")
async def cluster_abnormal(request: web.Request) -> web.Response:
    return await _abnormal(request, "")


@routes.add(
    "GET", "/namespaces/{namespace}/abnormalworkloads", summary="Counts of a project's unhealthy workloads"
)
async def namespace_abnormal(request: web.Request) -> web.Response:
    return await _abnormal(request, _namespace(request))

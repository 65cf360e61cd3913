"""/kapis/monitoring.kubesphere.io/v1alpha3: the console's charts, answered from Prometheus.

A request names a level (cluster, nodes, workspaces, namespaces, workloads,
pods, containers, PVCs, control-plane components) and, in its query,
``metrics_filter`` (a regular expression over the level's metric names),
``resources_filter`` (a regular expression over object names), and either
``time`` (an instant query, default now) or ``start``/``end``/``step`` (a range
query, ``step`` a Go duration, default ``10m``).  Instant queries may be ranked:
``sort_metric``, ``sort_type`` (``asc``/``desc``), ``page``, ``limit`` (default 5).
Every matching metric becomes one PromQL query (``apiserver.monitoring.promql``);
a failed query is that metric's ``error``, never a failed request.

Below a namespace, the time asked is clipped to the namespace's lifetime as
KubeSphere does: a range starting before the namespace existed starts at the
first step after its creation, and a time (or range end) before it answers every
metric of the level with no data.  ``type=statistics`` on a workspace, and
``/kubesphere``, count platform objects from the caches instead.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from typing import Any

import re2
from aiohttp import web

from apiserver.context import CONTEXT
from apiserver.errors import APIError, not_found
from apiserver.kapis import common
from apiserver.monitoring import Prometheus, QueryError, Scope, expression, promql, results
from apiserver.openapi import Param, Routes
from kubesphere.resources import (
    DEVOPSPROJECTS,
    NAMESPACES,
    USERS,
    WORKSPACEROLEBINDINGS,
    WORKSPACEROLES,
    WORKSPACETEMPLATES,
    parse_time,
)

PREFIX = "/kapis/monitoring.kubesphere.io/v1alpha3"
routes = Routes(PREFIX, "Monitoring")
PROMETHEUS: web.AppKey[Prometheus] = web.AppKey("prometheus", Prometheus)
DEFAULT_STEP = 600.0
DEFAULT_LIMIT = 5
#: level -> (metric table, the label that names an object at that level)
LEVELS: dict[str, tuple[dict[str, str], str]] = {
    "cluster": (promql.CLUSTER, ""),
    "node": (promql.NODE, "node"),
    "workspace": (promql.WORKSPACE, "workspace"),
    "namespace": (promql.NAMESPACE, "namespace"),
    "workload": (promql.WORKLOAD, "workload"),
    "pod": (promql.POD, "pod"),
    "container": (promql.CONTAINER, "container"),
    "pvc": (promql.PVC, "persistentvolumeclaim"),
}
TIME_PARAMS = (
    Param("metrics_filter", "Regular expression over metric names (default: all of the level)"),
    Param("start", "Range start, Unix seconds"),
    Param("end", "Range end, Unix seconds"),
    Param("step", "Range step, a duration such as 10m or 600s (default 10m)"),
    Param("time", "Instant query time, Unix seconds (default now)"),
)
RANK_PARAMS = (
    *TIME_PARAMS,
    Param("resources_filter", "Regular expression over object names"),
    Param("sort_metric", "Rank objects by this metric (instant queries)"),
    Param("sort_type", "asc or desc (default)"),
    Param("page", "Page of the ranking, from 1", "integer"),
    Param("limit", "Objects per page (default 5)", "integer"),
)
METRICS_SCHEMA = {
    "type": "object",
    "properties": {
        "results": {"type": "array", "nullable": True, "items": {"type": "object"}},
        "page": {"type": "integer"},
        "total_page": {"type": "integer"},
        "total_item": {"type": "integer"},
    },
}
PATH_NAMES = ("node", "workspace", "namespace", "kind", "workload", "pod", "container", "pvc", "storageclass")
_DURATION = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def install(app: web.Application) -> None:
    endpoint = app[CONTEXT].config.section("monitoring").get("endpoint") or ""
    app[PROMETHEUS] = Prometheus(str(endpoint))

    async def close(app: web.Application) -> None:
        await app[PROMETHEUS].close()

    app.on_cleanup.append(close)
    routes.install(app)


def go_duration(text: str) -> float:
    """Seconds from a Go duration (``10m``, ``600s``, ``1h30m``); anything else is a 400 as in Go."""
    body = text[1:] if text[:1] in "+-" else text
    if body == "0":
        return 0.0
    total, pos = 0.0, 0
    for match in _DURATION.finditer(body):
        number = match.group(1)
        if match.start() != pos or number in ("", "."):
            break
        total += float(number) * _UNITS[match.group(2)]
        pos = match.end()
    if not body or pos != len(body):
        raise APIError(400, f'time: invalid duration "{text}"')
    return -total if text.startswith("-") else total


def _unix(name: str, text: str) -> float:
    """Unix seconds as Go's ``strconv.ParseInt(text, 10, 64)`` reads them."""
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise APIError(400, f'strconv.ParseInt: parsing "{text}": invalid syntax')
    value = int(text)
    if not -(2**63) <= value < 2**63:
        raise APIError(400, f'strconv.ParseInt: parsing "{text}": value out of range')
    return float(value)


class Query:
    """The time and ranking parameters of one request."""

    def __init__(self, q: Any) -> None:
        start, end, at = q.get("start", ""), q.get("end", ""), q.get("time", "")
        self.range = bool(start and end)
        self.start = self.end = self.time = 0.0
        self.step = DEFAULT_STEP
        if self.range:
            self.start, self.end = _unix("start", start), _unix("end", end)
            if q.get("step"):
                self.step = go_duration(q["step"])
            if self.start > self.end:
                raise APIError(400, "'start' must be before 'end'.")
        elif not start and not end:
            self.time = _unix("time", at) if at else time.time()
        else:
            raise APIError(400, "'time' and the combination of 'start' and 'end' are mutually exclusive.")
        self.metrics_filter = q.get("metrics_filter") or ".*"
        self.target = q.get("sort_metric", "")
        self.descending = q.get("sort_type") != "asc"
        self.page, self.limit = 1, DEFAULT_LIMIT
        if self.target:
            self.page = _positive(q.get("page"), 1, "page")
            self.limit = _positive(q.get("limit"), DEFAULT_LIMIT, "limit")

    def clip_to(self, created: float) -> bool:
        """Keep the query within a namespace created at ``created``; False when nothing is left."""
        if not self.range:
            return self.time >= created
        if self.end < created:
            return False
        if self.start < created:
            # the earliest step back from ``end`` still after the creation (KubeSphere steps back one by one)
            steps = max(math.ceil((self.end - created) / self.step) - 1, 0) if self.step > 0 else 0
            self.start = self.end - steps * self.step
            if self.start <= created:  # a step finer than a float's precision at this time
                self.start = min(math.nextafter(created, math.inf), self.end)
        return True


def _positive(raw: str | None, default: int, name: str) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise APIError(400, f"Invalid parameter '{name}'.")
    return value


def _matching(names: list[str], pattern: str) -> list[str]:
    """The names ``pattern`` is found in, with RE2 as Go's regexp (linear time, whatever the pattern)."""
    options = re2.Options()
    options.log_errors = False  # the pattern is the caller's: it does not go to the log
    try:
        regex = re2.compile(pattern, options=options)
    except re2.error:
        return []  # KubeSphere ignores the compile error: nothing matches
    return [n for n in names if regex.search(n)]


def _namespace_created(request: web.Request, namespace: str) -> float:
    ns = common.ctx(request).caches[NAMESPACES].get(namespace) if common.valid_name(namespace) else None
    if ns is None:
        raise not_found("namespaces", namespace)
    created = parse_time(ns["metadata"].get("creationTimestamp"))
    return created.timestamp() if created is not None else 0.0


async def _one(prom: Prometheus, name: str, expr: str, q: Query, scope: Scope) -> dict[str, Any]:
    keep = scope.namespaced_pods if scope.level == "pod" and scope.namespaced_pods else None
    try:
        if q.range:
            found = await prom.query_range(expr, start=q.start, end=q.end, step=q.step)
        else:
            found = await prom.query(expr, time=q.time)
    except QueryError as exc:
        return results.failed(name, str(exc))
    return results.metric(name, found, keep=keep)


async def answer(request: web.Request, scope: Scope, table: dict[str, str], identifier: str) -> web.Response:
    q = Query(request.query)
    if scope.namespace and not q.clip_to(_namespace_created(request, scope.namespace)):
        return common.ok({"results": [results.empty(n) for n in table]})
    names = _matching(list(table), q.metrics_filter)
    if not names:
        return common.ok({"results": None})
    prom = request.app[PROMETHEUS]
    found = await asyncio.gather(*(_one(prom, n, expression(table[n], scope, n), q, scope) for n in names))
    if q.target and identifier and not q.range:
        return common.ok(
            results.sort_and_page(
                found,
                target=q.target,
                identifier=identifier,
                descending=q.descending,
                page=q.page,
                limit=q.limit,
            )
        )
    return common.ok({"results": found})


def _scope(request: web.Request, level: str) -> Scope:
    m, q = request.match_info, request.query
    for key in (
        "node",
        "workspace",
        "namespace",
        "kind",
        "workload",
        "pod",
        "container",
        "pvc",
        "storageclass",
    ):
        value = m.get(key)
        if value is not None and not common.valid_name(value):
            raise APIError(404, f'{key} "{value}" not found')
    pairs = []
    for item in (q.get("namespaced_resources_filter") or "").rstrip("$").split("|"):
        if item:
            ns, sep, pod = item.partition("/")
            pairs.append((ns, pod) if sep else ("", ns))
    return Scope(
        level=level,
        resources_filter=q.get("resources_filter") or ".*",
        node=m.get("node", ""),
        workspace=m.get("workspace", ""),
        namespace=m.get("namespace", ""),
        workload_kind=m.get("kind", ""),
        workload=m.get("workload", ""),
        pod=m.get("pod", ""),
        container=m.get("container", ""),
        pvc=m.get("pvc", ""),
        storageclass=m.get("storageclass", ""),
        namespaced_pods=tuple(pairs),
    )


def _level(level: str) -> Any:
    table, identifier = LEVELS[level]

    async def handler(request: web.Request) -> web.Response:
        return await answer(request, _scope(request, level), table, identifier)

    return handler


def _get(path: str, level: str, summary: str, *, rank: bool = True) -> None:
    routes.add(
        "GET", path, summary=summary, query=RANK_PARAMS if rank else TIME_PARAMS, response=METRICS_SCHEMA
    )(_level(level))


_get("/cluster", "cluster", "Cluster metrics", rank=False)
_get("/nodes", "node", "Metrics of nodes")
_get("/nodes/{node}", "node", "Metrics of one node", rank=False)
_get("/workspaces/{workspace}/namespaces", "namespace", "Metrics of a workspace's projects")
_get("/namespaces", "namespace", "Metrics of projects")
_get("/namespaces/{namespace}", "namespace", "Metrics of one project", rank=False)
_get("/namespaces/{namespace}/workloads", "workload", "Metrics of a project's workloads")
_get("/namespaces/{namespace}/workloads/{kind}", "workload", "Metrics of a project's workloads of one kind")
_get("/pods", "pod", "Metrics of pods")
_get("/namespaces/{namespace}/pods", "pod", "Metrics of a project's pods")
_get("/namespaces/{namespace}/pods/{pod}", "pod", "Metrics of one pod", rank=False)
_get("/namespaces/{namespace}/workloads/{kind}/{workload}/pods", "pod", "Metrics of a workload's pods")
_get("/nodes/{node}/pods", "pod", "Metrics of a node's pods")
_get("/nodes/{node}/pods/{pod}", "pod", "Metrics of one pod of a node", rank=False)
_get("/namespaces/{namespace}/pods/{pod}/containers", "container", "Metrics of a pod's containers")
_get(
    "/namespaces/{namespace}/pods/{pod}/containers/{container}",
    "container",
    "Metrics of one container",
    rank=False,
)
_get("/storageclasses/{storageclass}/persistentvolumeclaims", "pvc", "Metrics of a storage class's volumes")
_get("/namespaces/{namespace}/persistentvolumeclaims", "pvc", "Metrics of a project's volumes")
_get("/namespaces/{namespace}/persistentvolumeclaims/{pvc}", "pvc", "Metrics of one volume", rank=False)


@routes.add("GET", "/workspaces", summary="Metrics of workspaces", query=RANK_PARAMS, response=METRICS_SCHEMA)
async def workspaces(request: web.Request) -> web.Response:
    return await answer(request, _scope(request, "workspace"), promql.WORKSPACE, "workspace")


@routes.add(
    "GET",
    "/workspaces/{workspace}",
    summary="Metrics of one workspace; type=statistics counts its projects, members, roles",
    query=(*TIME_PARAMS, Param("type", "statistics: counts of the workspace's objects")),
    response=METRICS_SCHEMA,
)
async def workspace(request: web.Request) -> web.Response:
    scope = _scope(request, "workspace")
    if request.query.get("type") != "statistics":
        return await answer(request, scope, promql.WORKSPACE, "workspace")
    Query(request.query)  # the same parameter errors as a metrics query
    caches, ws, now = common.ctx(request).caches, scope.workspace, time.time()
    label = {common.WORKSPACE_LABEL: ws}
    members = [
        b
        for b in caches[WORKSPACEROLEBINDINGS].list(labels=label)
        if common.USER_REF_LABEL in common.labels(b)
    ]
    counts = (
        ("workspace_namespace_count", len(caches[NAMESPACES].list(labels=label))),
        ("workspace_devops_project_count", len(caches[DEVOPSPROJECTS].list(labels=label))),
        ("workspace_member_count", len(members)),
        ("workspace_role_count", len(caches[WORKSPACEROLES].list(labels=label))),
    )
    return common.ok({"results": [results.sample(n, v, now) for n, v in counts]})


@routes.add("GET", "/kubesphere", summary="Counts of clusters, workspaces and users", response=METRICS_SCHEMA)
async def platform(request: web.Request) -> web.Response:
    caches, now = common.ctx(request).caches, time.time()
    counts = (
        ("kubesphere_cluser_count", 1),  # KubeSphere's spelling; one cluster (no multicluster)
        ("kubesphere_workspace_count", len(caches[WORKSPACETEMPLATES])),
        ("kubesphere_user_count", len(caches[USERS])),
    )
    return common.ok({"results": [results.sample(n, v, now) for n, v in counts]})


@routes.add(
    "GET",
    "/components/{component}",
    summary="Metrics of a control-plane component: etcd, apiserver or scheduler",
    query=TIME_PARAMS,
    response=METRICS_SCHEMA,
)
async def component(request: web.Request) -> web.Response:
    table = promql.COMPONENTS.get(request.match_info["component"], {})
    return await answer(request, Scope(level="component"), table, "")


@routes.add(
    "GET",
    "/targets/query",
    summary="Run one PromQL expression (instant or range)",
    query=(*TIME_PARAMS[1:], Param("expr", "PromQL expression")),
)
async def adhoc(request: web.Request) -> web.Response:
    q = Query(request.query)
    found = await _one(request.app[PROMETHEUS], "", request.query.get("expr", ""), q, Scope(level="cluster"))
    found.pop("metric_name")
    return common.ok(found)

"""/kapis/resources.kubesphere.io/v1alpha3: list and get any resource the cluster serves, from memory.

``GET /{resources}[/{name}]`` and ``GET /namespaces/{ns}/{resources}[/{name}]``
match a plural name through discovery and read an informer started on first
use, so a list costs no API call after the first.  Lists take the filters,
sorting and paging of ``apiserver.query``.

Authorization is of the real resource: the filter chain matched the request
against ``resources.kubesphere.io`` and, when that did not allow it, deferred;
here it is checked against the resource's own API group (listing pods in a
namespace needs ``list pods`` there) before anything is read.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from aiohttp import web

from apiserver import kube
from apiserver.errors import APIError, forbidden
from apiserver.kapis import common
from apiserver.openapi import LIST, LIST_PARAMS, Param, Routes
from apiserver.requestinfo import RequestInfo

PREFIX = "/kapis/resources.kubesphere.io/v1alpha3"
routes = Routes(PREFIX, "Resources")
SYNC_TIMEOUT = 20.0
#: Served plurals that cannot be listed or watched (create-only reviews and the like).
UNLISTABLE = frozenset(
    {
        "bindings",
        "tokenreviews",
        "selfsubjectaccessreviews",
        "selfsubjectrulesreviews",
        "subjectaccessreviews",
        "localsubjectaccessreviews",
        "selfsubjectreviews",
        "tokenrequests",
        "evictions",
    }
)
FILTERS = (
    *LIST_PARAMS,
    Param("names", "Filter: exact names, comma-separated"),
    Param("label", "Filter: label selector"),
    Param("annotation", "Filter: annotation selector"),
    Param("ownerReference", "Filter: owner uid"),
    Param("ownerKind", "Filter: owner kind"),
)


async def _informer(request: web.Request, plural: str, namespace: str | None) -> kube.Informer:
    ctx = common.ctx(request)
    if not common.valid_name(plural) or plural in UNLISTABLE:
        raise APIError(404, f'the server could not find the requested resource "{plural}"')
    res = await ctx.kube.resolve(plural)
    if res is None or (namespace and not res.namespaced):
        raise APIError(404, f'the server could not find the requested resource "{plural}"')
    info = common.info(request)
    user = common.caller(request)
    if (
        ctx.authorizer.authorize(user, info).deferred
        and not ctx.authorizer.authorize_real(user, info, api_group=res.group).allowed
    ):
        raise forbidden(ctx.authorizer.forbidden_message(user, _real(info, res)))
    try:
        return await asyncio.wait_for(ctx.caches.informer(res), SYNC_TIMEOUT)
    except TimeoutError:
        raise APIError(503, f"{res} is not available yet; try again") from None


def _real(info: RequestInfo, res: kube.Resource) -> RequestInfo:
    return replace(info, api_group=res.group)


async def _list(request: web.Request, namespace: str | None) -> web.Response:
    informer = await _informer(request, request.match_info["resources"], namespace)
    return common.listing(request, informer.list(namespace=namespace))


async def _get(request: web.Request, namespace: str | None) -> web.Response:
    plural = request.match_info["resources"]
    informer = await _informer(request, plural, namespace)
    name = request.match_info["name"]
    obj = informer.get(name, namespace=namespace) if common.valid_name(name) else None
    if obj is None:
        raise APIError(404, f'{plural} "{name}" not found')
    return common.ok(obj)


def _namespace(request: web.Request) -> str:
    return common.name_param(request, "namespace", kube.NAMESPACES)


@routes.add("GET", "/{resources}", summary="List a resource across the cluster", query=FILTERS, response=LIST)
async def list_cluster(request: web.Request) -> web.Response:
    return await _list(request, None)


@routes.add("GET", "/{resources}/{name}", summary="Get a cluster-scoped object (or a namespace)")
async def get_cluster(request: web.Request) -> web.Response:
    return await _get(request, None)


@routes.add(
    "GET",
    "/namespaces/{namespace}/{resources}",
    summary="List a resource in a namespace",
    query=FILTERS,
    response=LIST,
)
async def list_namespaced(request: web.Request) -> web.Response:
    return await _list(request, _namespace(request))


@routes.add("GET", "/namespaces/{namespace}/{resources}/{name}", summary="Get a namespaced object")
async def get_namespaced(request: web.Request) -> web.Response:
    return await _get(request, _namespace(request))

"""The apiserver's only contact with kube-apiserver: an aiohttp client, resources, and informers.

``KubeClient`` speaks JSON over one pooled aiohttp session, authenticated with
whatever the kubeconfig (or the pod's service account) holds: client
certificate, bearer token, CA.  ``Informer`` keeps one resource in memory with
the list+watch pattern of client-go's reflector: a paged list, then a watch
from the list's resourceVersion with bookmarks; a dropped stream resumes from
the last version seen, and ``410 Gone`` (the version fell out of etcd's window)
forces a fresh list.  ``Caches`` holds the informers the handlers and the
authorizer read, so a request costs no API call.

Informers and the client live in this one module on purpose: they share the
session, the error type and the path rules, and nothing else in the package
imports an HTTP client for Kubernetes.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import json
import logging
import ssl
import time
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import yarl

from kubesphere import kubeconfig
from kubesphere.errors import KubeError, KubeUnavailable
from kubesphere.resources import (
    CLUSTERROLEBINDINGS,
    CLUSTERROLES,
    CONFIGMAPS,
    DAEMONSETS,
    DEPLOYMENTS,
    DEVOPSPROJECTS,
    EVENTS,
    GLOBALROLEBINDINGS,
    GLOBALROLES,
    GROUPBINDINGS,
    GROUPS,
    JOBS,
    LOGINRECORDS,
    NAMESPACES,
    NODES,
    PODS,
    PVCS,
    ROLEBASES,
    ROLEBINDINGS,
    ROLES,
    SECRETS,
    SERVICEACCOUNTS,
    SERVICES,
    STATEFULSETS,
    USERS,
    WORKSPACEROLEBINDINGS,
    WORKSPACEROLES,
    WORKSPACES,
    WORKSPACETEMPLATES,
    Resource,
)
from kubesphere.rest import PATCH_TYPES

log = logging.getLogger(__name__)

#: What the authorizer and the handlers read from memory; started with the server.
PLATFORM_RESOURCES = (
    GLOBALROLES, GLOBALROLEBINDINGS, WORKSPACEROLES, WORKSPACEROLEBINDINGS, ROLES, ROLEBINDINGS,
    CLUSTERROLES, CLUSTERROLEBINDINGS, NAMESPACES, DEVOPSPROJECTS, USERS, WORKSPACETEMPLATES,
    WORKSPACES, GROUPS, GROUPBINDINGS, LOGINRECORDS, ROLEBASES,
)  # fmt: skip


class KubeClient:
    """JSON calls to kube-apiserver over one pooled aiohttp session (created on first use)."""

    def __init__(
        self, server: str, *, ssl_context: ssl.SSLContext | bool, auth: Callable[[], str | None]
    ) -> None:
        self.server = server.rstrip("/")
        self.ssl_context = ssl_context
        self._auth = auth
        self._session: aiohttp.ClientSession | None = None
        self._discovery: dict[str, builtins.list[Resource]] | None = None
        self._discovery_lock = asyncio.Lock()
        self._discovered_at = 0.0

    @classmethod
    def from_kubeconfig(cls, path: Path | None) -> KubeClient:
        """``path``, else ``$KUBECONFIG``, else the pod's service account, else ``~/.kube/config``."""
        return cls.from_configuration(kubeconfig.load(path))

    @classmethod
    def from_configuration(cls, cfg: Any) -> KubeClient:
        """A client on a loaded :class:`kubernetes.client.Configuration`."""

        def auth() -> str | None:
            # Calls the refresh hook, so a rotated service-account token is picked up.
            return kubeconfig.bearer_token(cfg)

        return cls(str(cfg.host), ssl_context=kubeconfig.ssl_context(cfg), auth=auth)

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self.ssl_context, limit=0, keepalive_timeout=60)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=None, sock_connect=10)
            )
        return self._session

    def headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """Headers carrying the server's own credentials (plus ``extra``)."""
        headers = dict(extra or {})
        token = self._auth()
        if token:
            headers["Authorization"] = token
        return headers

    @contextlib.asynccontextmanager
    async def open(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        data: Any = None,
        read_timeout: float | None = 60.0,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """A raw response for streaming (the proxy, watches); the caller reads it inside the block."""
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=read_timeout)
        try:
            async with self.session.request(
                method,
                self.server + path,
                params=params,
                headers=self.headers(headers),
                data=data,
                timeout=timeout,
                allow_redirects=False,
                auto_decompress=False,
            ) as resp:
                yield resp
        except (aiohttp.ClientConnectionError, TimeoutError, ssl.SSLError) as exc:
            raise KubeUnavailable(f"kube-apiserver {self.server}: {exc or type(exc).__name__}") from exc

    async def connect(self, *, limit: int = 1 << 18) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A connection of its own to kube-apiserver, TLS as configured (upgrades; ``apiserver.upgrade``).

        The caller writes the request with :meth:`headers` and owns the connection after.
        """
        url = yarl.URL(self.server)
        context: ssl.SSLContext | None = None
        if url.scheme == "https":
            own = self.ssl_context
            context = own if isinstance(own, ssl.SSLContext) else ssl.create_default_context()
        return await asyncio.open_connection(
            url.host, url.port, ssl=context, server_hostname=url.host if context else None, limit=limit
        )

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float | None = 60.0,
    ) -> Any:
        """JSON in and out; ``timeout`` bounds each read (a deletecollection may need more)."""
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json", "Accept-Encoding": "identity"}
        if data is not None:
            headers["Content-Type"] = content_type
        async with self.open(
            method, path, params=params, headers=headers, data=data, read_timeout=timeout
        ) as resp:
            try:
                raw = await resp.read()
            except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, TimeoutError) as exc:
                raise KubeUnavailable(f"kube-apiserver {self.server}: {exc}") from exc
        if resp.status >= 400:
            raise KubeError.from_response(resp.status, raw)
        return json.loads(raw) if raw else {}

    async def get(self, res: Resource, name: str, *, namespace: str | None = None) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("GET", res.path(namespace=namespace, name=name))
        return result

    async def list(
        self, res: Resource, *, namespace: str | None = None, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        items, _ = await self.list_with_version(res, namespace=namespace, label_selector=label_selector)
        return items

    async def list_with_version(
        self,
        res: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        page_size: int = 500,
    ) -> tuple[builtins.list[dict[str, Any]], str]:
        """Every item (paged with ``continue``) and the list's resourceVersion; kind/apiVersion filled in."""
        params: dict[str, str] = {"limit": str(page_size)}
        if label_selector:
            params["labelSelector"] = label_selector
        items: builtins.list[dict[str, Any]] = []
        while True:
            page = await self.request("GET", res.path(namespace=namespace), params=params)
            for item in page.get("items") or []:
                item.setdefault("kind", res.kind)
                item.setdefault("apiVersion", res.api_version)
                items.append(item)
            meta = page.get("metadata") or {}
            if not meta.get("continue"):
                return items, str(meta.get("resourceVersion") or "")
            params["continue"] = meta["continue"]

    async def create(
        self, res: Resource, obj: dict[str, Any], *, namespace: str | None = None
    ) -> dict[str, Any]:
        body = {"apiVersion": res.api_version, "kind": res.kind, **obj}  # both may be left out
        result: dict[str, Any] = await self.request("POST", res.path(namespace=namespace), body=body)
        return result

    async def replace(
        self, res: Resource, obj: dict[str, Any], *, namespace: str | None = None
    ) -> dict[str, Any]:
        name = obj["metadata"]["name"]
        body = {"apiVersion": res.api_version, "kind": res.kind, **obj}
        result: dict[str, Any] = await self.request(
            "PUT", res.path(namespace=namespace, name=name), body=body
        )
        return result

    async def patch(
        self,
        res: Resource,
        name: str,
        patch: Any,
        *,
        namespace: str | None = None,
        patch_type: str = "merge",
    ) -> dict[str, Any]:
        if patch_type not in PATCH_TYPES:
            raise ValueError(f"patch_type {patch_type!r} is not one of {', '.join(PATCH_TYPES)}")
        path = res.path(namespace=namespace, name=name)
        result: dict[str, Any] = await self.request(
            "PATCH", path, body=patch, content_type=PATCH_TYPES[patch_type]
        )
        return result

    async def delete(
        self, res: Resource, name: str, *, namespace: str | None = None, propagation: str | None = None
    ) -> dict[str, Any]:
        body = (
            {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation}
            if propagation
            else None
        )
        result: dict[str, Any] = await self.request(
            "DELETE", res.path(namespace=namespace, name=name), body=body
        )
        return result

    async def resolve(self, plural: str, *, group: str | None = None) -> Resource | None:
        """The served Resource for a plural name (preferred version), from cached discovery.

        A name discovery does not know refreshes it, at most every 30 seconds (a CRD may be new).
        """
        for attempt in range(2):
            for candidate in await self._discover():
                if candidate.plural == plural and (group is None or candidate.group == group):
                    return candidate
            now = time.monotonic()
            if attempt or now - self._discovered_at < 30:
                break
            self._discovery = None
        return None

    async def _discover(self) -> builtins.list[Resource]:
        async with self._discovery_lock:
            if self._discovery is None:
                found: builtins.list[Resource] = []
                groups: builtins.list[tuple[str, str]] = [("", "v1")]
                apis = await self.request("GET", "/apis")
                for g in apis.get("groups") or []:
                    preferred = (g.get("preferredVersion") or {}).get("version")
                    for v in g.get("versions") or []:
                        if v["version"] == preferred:
                            groups.append((g["name"], v["version"]))
                    groups.extend(
                        (g["name"], v["version"])
                        for v in g.get("versions") or []
                        if v["version"] != preferred
                    )
                for group, version in groups:
                    path = f"/apis/{group}/{version}" if group else f"/api/{version}"
                    try:
                        doc = await self.request("GET", path)
                    except KubeError as exc:
                        log.warning("discovery of %s failed: %s", path, exc)
                        continue
                    for r in doc.get("resources") or []:
                        if "/" in r["name"]:
                            continue
                        found.append(
                            Resource(group, version, r["name"], r["kind"], bool(r.get("namespaced")))
                        )
                self._discovery = {"all": found}
                self._discovered_at = time.monotonic()
            return self._discovery["all"]

    def forget_discovery(self) -> None:
        """Drop cached discovery (a CRD was added)."""
        self._discovery = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
            # TLS connections finish closing a few loop turns later; let them, so no transport
            # outlives a loop that is about to end.
            await asyncio.sleep(0.25)


from apiserver.informers import (  # noqa: E402  (re-exported; they need the above)
    INDEXED_LABELS,
    USER_REF_LABEL,
    WORKSPACE_LABEL,
    Caches,
    Informer,
)

__all__ = [
    "CLUSTERROLEBINDINGS",
    "CLUSTERROLES",
    "CONFIGMAPS",
    "DAEMONSETS",
    "DEPLOYMENTS",
    "DEVOPSPROJECTS",
    "EVENTS",
    "GLOBALROLEBINDINGS",
    "GLOBALROLES",
    "GROUPBINDINGS",
    "GROUPS",
    "INDEXED_LABELS",
    "JOBS",
    "LOGINRECORDS",
    "NAMESPACES",
    "NODES",
    "PATCH_TYPES",
    "PLATFORM_RESOURCES",
    "PODS",
    "PVCS",
    "ROLEBASES",
    "ROLEBINDINGS",
    "ROLES",
    "SECRETS",
    "SERVICEACCOUNTS",
    "SERVICES",
    "STATEFULSETS",
    "USERS",
    "USER_REF_LABEL",
    "WORKSPACEROLEBINDINGS",
    "WORKSPACEROLES",
    "WORKSPACES",
    "WORKSPACETEMPLATES",
    "WORKSPACE_LABEL",
    "Caches",
    "Informer",
    "KubeClient",
    "KubeError",
    "KubeUnavailable",
    "Resource",
]

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
import os
import ssl
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

log = logging.getLogger(__name__)

PATCH_TYPES = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
}


class KubeError(Exception):
    """A non-2xx answer from kube-apiserver; ``body`` is its Status (or ``{"message": text}``)."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.body = body
        super().__init__(str(body.get("message") or f"kube-apiserver answered {status}"))

    @property
    def message(self) -> str:
        return str(self.body.get("message") or f"kube-apiserver answered {self.status}")

    @property
    def temporary(self) -> bool:
        """Worth retrying later (throttled, unavailable, timed out), as opposed to a final answer."""
        return self.status in (429, 500, 502, 503, 504)

    @classmethod
    def from_response(cls, status: int, raw: bytes) -> KubeError:
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            body = {"message": raw.decode(errors="replace").strip() or f"HTTP {status}"}
        return cls(status, body)


class KubeUnavailable(KubeError):
    """kube-apiserver could not be reached at all (connection refused, TLS failure, timeout)."""

    def __init__(self, message: str) -> None:
        super().__init__(503, {"message": message, "reason": "ServiceUnavailable", "code": 503})


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, *, namespace: str | None = None, name: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        return f"{base}/{name}" if name else base

    def __str__(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


def _r(group: str, version: str, plural: str, kind: str, namespaced: bool) -> Resource:
    return Resource(group=group, version=version, plural=plural, kind=kind, namespaced=namespaced)


NAMESPACES = _r("", "v1", "namespaces", "Namespace", False)
CONFIGMAPS = _r("", "v1", "configmaps", "ConfigMap", True)
SECRETS = _r("", "v1", "secrets", "Secret", True)
PODS = _r("", "v1", "pods", "Pod", True)
SERVICES = _r("", "v1", "services", "Service", True)
SERVICEACCOUNTS = _r("", "v1", "serviceaccounts", "ServiceAccount", True)
NODES = _r("", "v1", "nodes", "Node", False)
EVENTS = _r("", "v1", "events", "Event", True)
PVCS = _r("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", True)
DEPLOYMENTS = _r("apps", "v1", "deployments", "Deployment", True)
STATEFULSETS = _r("apps", "v1", "statefulsets", "StatefulSet", True)
DAEMONSETS = _r("apps", "v1", "daemonsets", "DaemonSet", True)
JOBS = _r("batch", "v1", "jobs", "Job", True)
_RBAC = "rbac.authorization.k8s.io"
ROLES = _r(_RBAC, "v1", "roles", "Role", True)
ROLEBINDINGS = _r(_RBAC, "v1", "rolebindings", "RoleBinding", True)
CLUSTERROLES = _r(_RBAC, "v1", "clusterroles", "ClusterRole", False)
CLUSTERROLEBINDINGS = _r(_RBAC, "v1", "clusterrolebindings", "ClusterRoleBinding", False)
_IAM = "iam.kubesphere.io"
USERS = _r(_IAM, "v1alpha2", "users", "User", False)
LOGINRECORDS = _r(_IAM, "v1alpha2", "loginrecords", "LoginRecord", False)
GLOBALROLES = _r(_IAM, "v1alpha2", "globalroles", "GlobalRole", False)
GLOBALROLEBINDINGS = _r(_IAM, "v1alpha2", "globalrolebindings", "GlobalRoleBinding", False)
WORKSPACEROLES = _r(_IAM, "v1alpha2", "workspaceroles", "WorkspaceRole", False)
WORKSPACEROLEBINDINGS = _r(_IAM, "v1alpha2", "workspacerolebindings", "WorkspaceRoleBinding", False)
ROLEBASES = _r(_IAM, "v1alpha2", "rolebases", "RoleBase", False)
GROUPS = _r(_IAM, "v1alpha2", "groups", "Group", False)
GROUPBINDINGS = _r(_IAM, "v1alpha2", "groupbindings", "GroupBinding", False)
WORKSPACES = _r("tenant.kubesphere.io", "v1alpha1", "workspaces", "Workspace", False)
WORKSPACETEMPLATES = _r("tenant.kubesphere.io", "v1alpha2", "workspacetemplates", "WorkspaceTemplate", False)
DEVOPSPROJECTS = _r("devops.kubesphere.io", "v1alpha3", "devopsprojects", "DevOpsProject", False)

#: What the authorizer and the handlers read from memory; started with the server.
PLATFORM_RESOURCES = (
    GLOBALROLES, GLOBALROLEBINDINGS, WORKSPACEROLES, WORKSPACEROLEBINDINGS, ROLES, ROLEBINDINGS,
    CLUSTERROLES, CLUSTERROLEBINDINGS, NAMESPACES, DEVOPSPROJECTS, USERS, WORKSPACETEMPLATES,
    WORKSPACES, GROUPS, GROUPBINDINGS, LOGINRECORDS, ROLEBASES,
)  # fmt: skip


def _load_configuration(path: Path | None) -> Any:
    from kubernetes import client, config

    cfg = client.Configuration()
    env_path = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
    default = Path.home() / ".kube" / "config"
    if path is not None or env_path:
        config.load_kube_config(config_file=str(path or env_path), client_configuration=cfg)  # type: ignore[no-untyped-call]
    elif os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
    elif default.exists():
        config.load_kube_config(config_file=str(default), client_configuration=cfg)  # type: ignore[no-untyped-call]
    else:
        raise KubeUnavailable("no kubeconfig: pass --kubeconfig, set KUBECONFIG, or run in a pod")
    return cfg


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
        cfg = _load_configuration(path)
        ctx: ssl.SSLContext | bool = False
        if cfg.host.startswith("https"):
            if cfg.verify_ssl:
                ctx = ssl.create_default_context(cafile=cfg.ssl_ca_cert)
            else:
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            if cfg.cert_file:
                ctx.load_cert_chain(cfg.cert_file, cfg.key_file)

        def auth() -> str | None:
            # Calls the refresh hook, so a rotated service-account token is picked up.  The client's
            # loaders (kubeconfig and in-cluster) keep a token under "BearerToken".
            value = cfg.get_api_key_with_prefix("authorization", alias="BearerToken")
            return str(value) if value else None

        return cls(str(cfg.host), ssl_context=ctx, auth=auth)

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
                        found.append(_r(group, version, r["name"], r["kind"], bool(r.get("namespaced"))))
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


from apiserver.informers import (  # noqa: E402  (re-exported; they need the above)
    INDEXED_LABELS,
    USER_REF_LABEL,
    WORKSPACE_LABEL,
    Caches,
    Informer,
)

__all__ = [
    "INDEXED_LABELS",
    "USER_REF_LABEL",
    "WORKSPACE_LABEL",
    "Caches",
    "Informer",
    "KubeClient",
    "KubeError",
    "KubeUnavailable",
    "Resource",
]

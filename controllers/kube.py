"""The controllers' one contact with the Kubernetes API.

Every read and write the controllers make goes through :class:`Kube`: plain
dicts in and out, one generic path builder for core, RBAC and custom
resources, a request timeout on every call, and errors sorted once into the
package hierarchy (409 conflicts, 429 and 5xx retry; 400/422 give up; 404 is
``NotFound``).  Writes that should not race carry ``metadata.resourceVersion``
so the server refuses a stale one with a conflict, which is then retried.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import kopf
import urllib3
from kubernetes import client, config
from kubernetes.client import ApiException

from controllers import metrics
from controllers.errors import Conflict, GiveUp, NotFound, RetryLater

log = logging.getLogger(__name__)

Obj = dict[str, Any]
REQUEST_TIMEOUT = 30


@dataclass(frozen=True)
class Kind:
    """Where a resource lives in the API."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, *, namespace: str | None = None, name: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        return f"{base}/{name}" if name else base


IAM, TENANT, DEVOPS, RBAC = (
    "iam.kubesphere.io",
    "tenant.kubesphere.io",
    "devops.kubesphere.io",
    "rbac.authorization.k8s.io",
)
USERS = Kind(IAM, "v1alpha2", "users", "User")
LOGIN_RECORDS = Kind(IAM, "v1alpha2", "loginrecords", "LoginRecord")
GLOBAL_ROLE_BINDINGS = Kind(IAM, "v1alpha2", "globalrolebindings", "GlobalRoleBinding")
WORKSPACE_ROLES = Kind(IAM, "v1alpha2", "workspaceroles", "WorkspaceRole")
WORKSPACE_ROLE_BINDINGS = Kind(IAM, "v1alpha2", "workspacerolebindings", "WorkspaceRoleBinding")
GROUP_BINDINGS = Kind(IAM, "v1alpha2", "groupbindings", "GroupBinding")
ROLE_BASES = Kind(IAM, "v1alpha2", "rolebases", "RoleBase")
WORKSPACES = Kind(TENANT, "v1alpha1", "workspaces", "Workspace")
WORKSPACE_TEMPLATES = Kind(TENANT, "v1alpha2", "workspacetemplates", "WorkspaceTemplate")
DEVOPS_PROJECTS = Kind(DEVOPS, "v1alpha3", "devopsprojects", "DevOpsProject")
NAMESPACES = Kind("", "v1", "namespaces", "Namespace")
CONFIG_MAPS = Kind("", "v1", "configmaps", "ConfigMap", namespaced=True)
ROLES = Kind(RBAC, "v1", "roles", "Role", namespaced=True)
ROLE_BINDINGS = Kind(RBAC, "v1", "rolebindings", "RoleBinding", namespaced=True)
CLUSTER_ROLE_BINDINGS = Kind(RBAC, "v1", "clusterrolebindings", "ClusterRoleBinding")
LEASES = Kind("coordination.k8s.io", "v1", "leases", "Lease", namespaced=True)

MERGE = "application/merge-patch+json"


def now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def owner_reference(obj: Obj, *, controller: bool = True) -> Obj:
    """An ownerReference to ``obj`` (which must carry apiVersion, kind, name and uid)."""
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
        "controller": controller,
        "blockOwnerDeletion": True,
    }


def load_client(kubeconfig: Path | None) -> client.ApiClient:
    """An API client from ``kubeconfig``; else ``$KUBECONFIG``, the service account, ``~/.kube/config``."""
    try:
        if kubeconfig is not None:
            return cast(client.ApiClient, config.new_client_from_config(config_file=str(kubeconfig)))  # type: ignore[no-untyped-call]
        try:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
        except config.ConfigException:
            config.load_kube_config()  # type: ignore[no-untyped-call]
        return client.ApiClient()
    except (config.ConfigException, OSError) as exc:
        raise GiveUp(f"cannot load Kubernetes credentials: {exc}") from exc


def connection_info(api: client.ApiClient) -> kopf.ConnectionInfo:
    """The same credentials, in the form kopf's login handler returns."""
    cfg = api.configuration
    scheme = token = None
    auth = (cfg.api_key or {}).get("authorization") or (cfg.api_key or {}).get("BearerToken")
    if auth:
        scheme, _, token = str(auth).partition(" ")
    return kopf.ConnectionInfo(
        server=cfg.host,
        ca_path=cfg.ssl_ca_cert or None,
        insecure=not cfg.verify_ssl,
        scheme=scheme or None,
        token=token or None,
        certificate_path=cfg.cert_file or None,
        private_key_path=cfg.key_file or None,
        default_namespace="default",
    )


class Kube:
    """Thread-safe: the handlers call it from kopf's worker threads."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api

    def _call(
        self,
        method: str,
        path: str,
        *,
        body: Obj | None = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
    ) -> Obj:
        verb = method.lower()
        try:
            m, url, headers, data, post = self.api.param_serialize(
                method,
                path,
                query_params=query or [],
                header_params={"Accept": "application/json", "Content-Type": content_type},
                body=body,
                auth_settings=["BearerToken"],
            )
            response = self.api.call_api(
                m, url, header_params=headers, body=data, post_params=post, _request_timeout=REQUEST_TIMEOUT
            )
            response.read()  # type: ignore[no-untyped-call]
        except (urllib3.exceptions.HTTPError, OSError, ApiException) as exc:
            metrics.API_REQUESTS.labels(verb=verb, code="error").inc()
            raise RetryLater(f"{method} {path}: {exc}", delay=2.0) from exc
        status = int(response.status)
        metrics.API_REQUESTS.labels(verb=verb, code=f"{status // 100}xx").inc()
        try:
            parsed = json.loads(response.data or b"{}")
        except ValueError:
            parsed = {}
        if 200 <= status < 300:
            return cast(Obj, parsed)
        message = parsed.get("message") if isinstance(parsed, dict) else None
        raise self._sorted(status, f"{method} {path}: {status} {message or response.reason}")

    @staticmethod
    def _sorted(status: int, text: str) -> Exception:
        if status == 404:
            return NotFound(text)
        if status == 409:
            return Conflict(text, delay=0.5)
        if status in (400, 422):
            return GiveUp(text)
        return RetryLater(text, delay=5.0 if status == 403 else 2.0)

    # -- reads ---------------------------------------------------------------------------------------

    def get(self, kind: Kind, name: str, *, namespace: str | None = None) -> Obj | None:
        try:
            return self._call("GET", kind.path(namespace=namespace, name=name))
        except NotFound:
            return None

    def list(self, kind: Kind, *, namespace: str | None = None, labels: str | None = None) -> list[Obj]:
        query = [("labelSelector", labels)] if labels else []
        items: list[Obj] = []
        cont = ""
        while True:
            page = self._call(
                "GET",
                kind.path(namespace=namespace),
                query=[*query, ("limit", "500"), *([("continue", cont)] if cont else [])],
            )
            for item in page.get("items") or []:
                item.setdefault("apiVersion", kind.api_version)
                item.setdefault("kind", kind.kind)
                items.append(item)
            cont = (page.get("metadata") or {}).get("continue") or ""
            if not cont:
                return items

    # -- writes --------------------------------------------------------------------------------------

    def create(self, kind: Kind, body: Obj, *, namespace: str | None = None) -> Obj | None:
        """Create ``body``; None if an object of that name already exists."""
        body = {"apiVersion": kind.api_version, "kind": kind.kind, **body}
        try:
            return self._call("POST", kind.path(namespace=namespace), body=body)
        except Conflict:
            return None

    def patch(self, kind: Kind, name: str, patch: Obj, *, namespace: str | None = None) -> Obj:
        """A JSON merge patch; include ``metadata.resourceVersion`` to make it conditional."""
        return self._call("PATCH", kind.path(namespace=namespace, name=name), body=patch, content_type=MERGE)

    def replace(self, kind: Kind, body: Obj, *, namespace: str | None = None) -> Obj:
        return self._call("PUT", kind.path(namespace=namespace, name=body["metadata"]["name"]), body=body)

    def delete(self, kind: Kind, name: str, *, namespace: str | None = None) -> bool:
        """Delete (background propagation); False if it was already gone."""
        try:
            self._call(
                "DELETE", kind.path(namespace=namespace, name=name), body={"propagationPolicy": "Background"}
            )
            return True
        except NotFound:
            return False

    def delete_labelled(self, kind: Kind, labels: str) -> int:
        """Delete every object of ``kind`` (in every namespace) carrying ``labels``."""
        count = 0
        for item in self.list(kind, labels=labels):
            meta = item["metadata"]
            count += self.delete(kind, meta["name"], namespace=meta.get("namespace"))
        return count

    # -- finalizers ----------------------------------------------------------------------------------

    def add_finalizer(self, kind: Kind, obj: Obj, finalizer: str) -> Obj:
        meta = obj["metadata"]
        current = list(meta.get("finalizers") or [])
        if finalizer in current or meta.get("deletionTimestamp"):
            return obj
        patch = {
            "metadata": {"finalizers": [*current, finalizer], "resourceVersion": meta["resourceVersion"]}
        }
        return self.patch(kind, meta["name"], patch, namespace=meta.get("namespace"))

    def remove_finalizer(
        self, kind: Kind, name: str, finalizer: str, *, namespace: str | None = None
    ) -> None:
        obj = self.get(kind, name, namespace=namespace)
        if obj is None:
            return
        meta = obj["metadata"]
        current = list(meta.get("finalizers") or [])
        if finalizer not in current:
            return
        rest = [f for f in current if f != finalizer]
        try:
            patch = {"metadata": {"finalizers": rest, "resourceVersion": meta["resourceVersion"]}}
            self.patch(kind, name, patch, namespace=namespace)
        except NotFound:
            return

    # -- leader election -----------------------------------------------------------------------------

    def namespace_exists(self, name: str) -> bool:
        return self.get(NAMESPACES, name) is not None

    def read_lease(self, name: str, namespace: str) -> Obj | None:
        return self.get(LEASES, name, namespace=namespace)

    def write_lease(self, lease: Obj, *, namespace: str, create: bool) -> bool:
        """Create or replace (conditionally, by resourceVersion); False if another replica won the race."""
        try:
            if create:
                return self.create(LEASES, lease, namespace=namespace) is not None
            self.replace(LEASES, lease, namespace=namespace)
            return True
        except Conflict:
            return False

"""A small multi-tenant world on the local cluster for the /kapis and RBAC tests, and an HTTP helper.

``World`` holds two workspaces (WorkspaceTemplates with their WorkspaceRoles),
namespaces in each and one without a workspace, Roles in the namespaces, and
users bound at each scope.  Every object has a unique name and is deleted
afterwards (finalizers a running controller adds are taken away, so cleanup
never hangs).  Objects a controller would also create (``<ws>-admin``, Role
``admin``) are created if absent, with the same rules.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml
from kubernetes import client

from tests.apiserver.conftest import ApiServer
from tests.conftest import Cluster
from tests.helpers import wait_for

PASSWORD = "P@88w0rd-Kapis1"
IAM_GV = ("iam.kubesphere.io", "v1alpha2")
TENANT_GV = ("tenant.kubesphere.io", "v1alpha2")
IAM = "/kapis/iam.kubesphere.io/v1alpha2"
TENANT = "/kapis/tenant.kubesphere.io/v1alpha2"
RESOURCES = "/kapis/resources.kubesphere.io/v1alpha3"
WS_LABEL = "kubesphere.io/workspace"
ROLEBASES = Path(__file__).resolve().parents[2] / "roles" / "ks_core" / "files" / "iam" / "rolebases.yaml"


def rolebase_rules() -> dict[str, list[dict[str, Any]]]:
    """The rules of the built-in RoleBases, by role name (``admin``, ``viewer``... for both kinds)."""
    found: dict[str, list[dict[str, Any]]] = {}
    for doc in yaml.safe_load_all(ROLEBASES.read_text()):
        if doc:
            role = doc["role"]
            found[f"{role['kind']}/{role['metadata']['name']}"] = role["rules"]
    return found


def call(
    server: ApiServer, method: str, path: str, *, token: str | None = None, **kwargs: Any
) -> requests.Response:
    headers = dict(kwargs.pop("headers", None) or {})
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return requests.request(method, server.url + path, headers=headers, timeout=30, **kwargs)


def ignore_conflict(fn: Callable[[], Any]) -> None:
    try:
        fn()
    except client.ApiException as exc:
        if exc.status != 409:
            raise


@dataclass
class World:
    cluster: Cluster
    server: ApiServer
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    cleanup: list[Callable[[], None]] = field(default_factory=list)
    tokens: dict[str, str] = field(default_factory=dict)
    users: dict[str, str] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.cluster.api)

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.cluster.api)

    @property
    def rbac(self) -> client.RbacAuthorizationV1Api:
        return client.RbacAuthorizationV1Api(self.cluster.api)

    def name(self, base: str) -> str:
        return f"{base}-{self.tag}"

    # -- objects -----------------------------------------------------------------------------
    def cluster_object(self, group_version: tuple[str, str], plural: str, body: dict[str, Any]) -> None:
        body = {"apiVersion": "/".join(group_version), **body}
        ignore_conflict(lambda: self.custom.create_cluster_custom_object(*group_version, plural, body))
        name = body["metadata"]["name"]

        def remove() -> None:
            try:
                self.custom.delete_cluster_custom_object(*group_version, plural, name)
                self.custom.patch_cluster_custom_object(
                    *group_version, plural, name, {"metadata": {"finalizers": None}}
                )
            except client.ApiException as exc:
                if exc.status != 404:
                    raise

        self.cleanup.append(remove)

    def workspace(self, base: str) -> str:
        ws = self.name(base)
        self.cluster_object(
            TENANT_GV,
            "workspacetemplates",
            {
                "kind": "WorkspaceTemplate",
                "metadata": {"name": ws},
                "spec": {"template": {"spec": {"manager": "nobody"}}},
            },
        )
        rules = rolebase_rules()
        for role in ("admin", "regular", "viewer"):
            self.cluster_object(
                IAM_GV,
                "workspaceroles",
                {
                    "kind": "WorkspaceRole",
                    "metadata": {"name": f"{ws}-{role}", "labels": {WS_LABEL: ws}},
                    "rules": rules[f"WorkspaceRole/{role}"],
                },
            )
        return ws

    def namespace(self, base: str, workspace: str | None) -> str:
        ns = self.name(base)
        labels = {WS_LABEL: workspace} if workspace else {}
        ignore_conflict(lambda: self.core.create_namespace({"metadata": {"name": ns, "labels": labels}}))

        def remove() -> None:
            try:
                self.core.delete_namespace(ns)
                self.core.patch_namespace(ns, {"metadata": {"finalizers": None}})
            except client.ApiException as exc:
                if exc.status != 404:
                    raise

        self.cleanup.append(remove)
        rules = rolebase_rules()
        for role in ("admin", "viewer"):
            ignore_conflict(
                lambda role=role: self.rbac.create_namespaced_role(
                    ns,
                    {  # type: ignore[misc]
                        "metadata": {"name": role},
                        "rules": rules[f"Role/{role}"],
                    },
                )
            )
        return ns

    def user(self, key: str, *, globalrole: str | None = "platform-regular") -> str:
        name = self.server.make_user(self.name(key), PASSWORD, globalrole=globalrole)
        self.users[key] = name
        self.tokens[key] = self.server.login(name, PASSWORD)
        return name

    def workspace_member(self, user: str, workspace: str, role: str) -> None:
        self.cluster_object(
            IAM_GV,
            "workspacerolebindings",
            {
                "kind": "WorkspaceRoleBinding",
                "metadata": {
                    "name": f"{user}-{role}",
                    "labels": {WS_LABEL: workspace, "iam.kubesphere.io/user-ref": user},
                },
                "roleRef": {
                    "apiGroup": "iam.kubesphere.io",
                    "kind": "WorkspaceRole",
                    "name": f"{workspace}-{role}",
                },
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
            },
        )

    def namespace_member(self, user: str, namespace: str, role: str, *, kind: str = "User") -> None:
        ignore_conflict(
            lambda: self.rbac.create_namespaced_role_binding(
                namespace,
                {
                    "metadata": {"name": f"{user}-{role}", "labels": {"iam.kubesphere.io/user-ref": user}},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
                    "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": user}],
                },
            )
        )

    def close(self) -> None:
        errors = []
        for remove in reversed(self.cleanup):
            try:
                remove()
            except client.ApiException as exc:  # keep cleaning; report at the end
                errors.append(exc)
        if errors:
            raise errors[0]

    # -- waiting for the server's caches ----------------------------------------------------
    def until(self, key: str, method: str, path: str, status: int, *, timeout: float = 20, **kw: Any) -> None:
        """Until ``key``'s request gets ``status`` (the server's informers have caught up)."""
        wait_for(
            lambda: call(self.server, method, path, token=self.tokens.get(key), **kw).status_code == status,
            timeout=timeout,
            what=f"{key}: {method} {path} -> {status}",
        )

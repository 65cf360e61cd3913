"""The globalrolebinding controller: platform admins get Kubernetes ``cluster-admin``.

For a GlobalRoleBinding to ``platform-admin``, each User subject gets the
ClusterRoleBinding ``<user>-cluster-admin`` to the ClusterRole
``cluster-admin``, owned by the GlobalRoleBinding (several owners when several
bindings grant it), so it is garbage-collected with the last of them.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from controllers import metrics
from controllers.context import Context
from controllers.kube import CLUSTER_ROLE_BINDINGS, GLOBAL_ROLE_BINDINGS, Obj, owner_reference

log = logging.getLogger(__name__)

PLATFORM_ADMIN = "platform-admin"
USER_REF = "iam.kubesphere.io/user-ref"


def admin_users(binding: Obj) -> list[str]:
    if (binding.get("roleRef") or {}).get("name") != PLATFORM_ADMIN:
        return []
    return sorted(
        {s["name"] for s in binding.get("subjects") or [] if s.get("kind") == "User" and s.get("name")}
    )


def reconcile(ctx: Context, name: str) -> None:
    binding = ctx.kube.get(GLOBAL_ROLE_BINDINGS, name)
    if binding is None or binding["metadata"].get("deletionTimestamp"):
        return
    owner = owner_reference(
        {**binding, "apiVersion": GLOBAL_ROLE_BINDINGS.api_version, "kind": GLOBAL_ROLE_BINDINGS.kind},
        controller=False,
    )
    for user in admin_users(binding):
        crb_name = f"{user}-cluster-admin"
        existing = ctx.kube.get(CLUSTER_ROLE_BINDINGS, crb_name)
        if existing is None:
            rbac = "rbac.authorization.k8s.io"
            body = {
                "metadata": {"name": crb_name, "labels": {USER_REF: user}, "ownerReferences": [owner]},
                "roleRef": {"apiGroup": rbac, "kind": "ClusterRole", "name": "cluster-admin"},
                "subjects": [{"apiGroup": rbac, "kind": "User", "name": user}],
            }
            ctx.kube.create(CLUSTER_ROLE_BINDINGS, body)
            log.info("globalrolebinding %s: ClusterRoleBinding %s created", name, crb_name)
            continue
        owners = existing["metadata"].get("ownerReferences") or []
        if not any(o.get("uid") == owner["uid"] for o in owners):
            version = existing["metadata"]["resourceVersion"]
            patch = {"metadata": {"ownerReferences": [*owners, owner], "resourceVersion": version}}
            ctx.kube.patch(CLUSTER_ROLE_BINDINGS, crb_name, patch)


def register(registry: kopf.OperatorRegistry, ctx: Context) -> None:
    g, v, p = GLOBAL_ROLE_BINDINGS.group, GLOBAL_ROLE_BINDINGS.version, GLOBAL_ROLE_BINDINGS.plural

    @kopf.on.resume(g, v, p, registry=registry, backoff=5)
    @kopf.on.create(g, v, p, registry=registry, backoff=5)
    @kopf.on.update(g, v, p, registry=registry, backoff=5)
    @metrics.instrument("globalrolebinding")
    def globalrolebinding_reconcile(name: str, **_: Any) -> None:
        reconcile(ctx, name)

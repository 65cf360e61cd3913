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
from kubesphere.resources import CLUSTERROLEBINDINGS, GLOBALROLEBINDINGS, Obj, owner_reference

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
    binding = ctx.kube.get(GLOBALROLEBINDINGS, name)
    if binding is None or binding["metadata"].get("deletionTimestamp"):
        return
    owner = owner_reference(
        {**binding, "apiVersion": GLOBALROLEBINDINGS.api_version, "kind": GLOBALROLEBINDINGS.kind},
        controller=False,
    )
    for user in admin_users(binding):
        crb_name = f"{user}-cluster-admin"
        existing = ctx.kube.get(CLUSTERROLEBINDINGS, crb_name)
        if existing is None:
            rbac = "rbac.authorization.k8s.io"
            body = {
                "metadata": {"name": crb_name, "labels": {USER_REF: user}, "ownerReferences": [owner]},
                "roleRef": {"apiGroup": rbac, "kind": "ClusterRole", "name": "cluster-admin"},
                "subjects": [{"apiGroup": rbac, "kind": "User", "name": user}],
            }
            ctx.kube.create(CLUSTERROLEBINDINGS, body)
            log.info("globalrolebinding %s: ClusterRoleBinding %s created", name, crb_name)
            continue
        owners = existing["metadata"].get("ownerReferences") or []
        if not any(o.get("uid") == owner["uid"] for o in owners):
            version = existing["metadata"]["resourceVersion"]
            patch = {"metadata": {"ownerReferences": [*owners, owner], "resourceVersion": version}}
            ctx.kube.patch(CLUSTERROLEBINDINGS, crb_name, patch)


def register(registry: kopf.OperatorRegistry, ctx: Context) -> None:
    g, v, p = GLOBALROLEBINDINGS.group, GLOBALROLEBINDINGS.version, GLOBALROLEBINDINGS.plural

    @kopf.on.resume(g, v, p, registry=registry, backoff=5)
    @kopf.on.create(g, v, p, registry=registry, backoff=5)
    @kopf.on.update(g, v, p, registry=registry, backoff=5)
    @metrics.instrument("globalrolebinding")
    def globalrolebinding_reconcile(name: str, **_: Any) -> None:
        reconcile(ctx, name)

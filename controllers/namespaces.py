"""The namespace controller: KubeSphere's label, finalizer, default roles, creator binding, workspace owner.

For every namespace not being deleted:

* label ``kubesphere.io/namespace=<ns>`` and finalizer ``finalizers.kubesphere.io/namespaces``;
* for a workspace's or a DevOps project's namespace only (label ``kubesphere.io/workspace``
  or ``kubesphere.io/devopsproject``, as KubeSphere decides), the Roles ``admin``,
  ``operator`` and ``viewer`` copied from the ``project-*`` RoleBases;
* when ``kubesphere.io/creator`` names a user, the RoleBinding ``<creator>-admin`` to ``admin``;
* a controller ownerReference to the Workspace named by ``kubesphere.io/workspace``,
  added, repaired (wrong uid or name) or removed (no label, workspace gone).

Each step reads first and writes only what differs, so a repeated reconcile
makes no writes at all.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from controllers import metrics
from controllers.context import Context
from kubesphere.resources import NAMESPACES, ROLEBINDINGS, ROLES, WORKSPACES, Obj, owner_reference

log = logging.getLogger(__name__)

FINALIZER = "finalizers.kubesphere.io/namespaces"
NAMESPACE_LABEL = "kubesphere.io/namespace"
WORKSPACE_LABEL = "kubesphere.io/workspace"
DEVOPS_LABEL = "kubesphere.io/devopsproject"
CREATOR = "kubesphere.io/creator"
USER_REF = "iam.kubesphere.io/user-ref"
ROLE_REF = "iam.kubesphere.io/role-ref"
DEFAULT_ROLES = ("admin", "operator", "viewer")


def owners_for(ns: Obj, workspace: Obj | None) -> list[Obj] | None:
    """The ownerReferences ``ns`` should have, or None when they are right already."""
    owners = list(ns["metadata"].get("ownerReferences") or [])
    keep = [
        o
        for o in owners
        if o.get("kind") != WORKSPACES.kind or o.get("apiVersion", "").split("/")[0] != WORKSPACES.group
    ]
    want = [*keep]
    if workspace is not None:
        # A controller reference is exclusive: another controller owner loses that flag.
        want = [{**o, "controller": False} if o.get("controller") else o for o in keep]
        want.append(owner_reference(workspace))
    return None if want == owners else want


def sync_owner(ctx: Context, ns: Obj, *, workspace: Obj | bool | None = True) -> int:
    """Make ``ns``'s Workspace ownerReference match its label; 1 if it was patched.

    ``workspace`` is the Workspace when the caller has it, or True to look it up.
    """
    meta = ns["metadata"]
    if meta.get("deletionTimestamp"):
        return 0
    ws_name = (meta.get("labels") or {}).get(WORKSPACE_LABEL)
    target: Obj | None = None
    if ws_name:
        if isinstance(workspace, dict) and workspace["metadata"]["name"] == ws_name:
            target = workspace
        else:
            found = ctx.kube.get(WORKSPACES, ws_name)
            target = (
                {**found, "apiVersion": WORKSPACES.api_version, "kind": WORKSPACES.kind} if found else None
            )
    if target is None and ws_name and _workspace_owned(ns, ws_name):
        # Keep the reference while the workspace is being deleted: the garbage collector needs it.
        return 0
    want = owners_for(ns, target)
    if want is None:
        return 0
    patch = {"metadata": {"ownerReferences": want, "resourceVersion": meta["resourceVersion"]}}
    ctx.kube.patch(NAMESPACES, meta["name"], patch)
    log.info(
        "namespace %s: workspace owner %s", meta["name"], target["metadata"]["name"] if target else "removed"
    )
    return 1


def _workspace_owned(ns: Obj, ws_name: str) -> bool:
    return any(
        o.get("kind") == WORKSPACES.kind and o.get("name") == ws_name
        for o in ns["metadata"].get("ownerReferences") or []
    )


def reconcile(ctx: Context, name: str) -> None:
    ns = ctx.kube.get(NAMESPACES, name)
    if ns is None or ns["metadata"].get("deletionTimestamp"):
        return
    meta = ns["metadata"]
    patch: Obj = {}
    if (meta.get("labels") or {}).get(NAMESPACE_LABEL) != name:
        patch["labels"] = {NAMESPACE_LABEL: name}
    if FINALIZER not in (meta.get("finalizers") or []):
        patch["finalizers"] = [*(meta.get("finalizers") or []), FINALIZER]
    if patch:
        patch["resourceVersion"] = meta["resourceVersion"]
        ns = ctx.kube.patch(NAMESPACES, name, {"metadata": patch})
    labels = meta.get("labels") or {}
    if WORKSPACE_LABEL in labels or DEVOPS_LABEL in labels:
        ensure_roles(ctx, name)
    creator = (meta.get("annotations") or {}).get(CREATOR)
    if creator:
        ensure_creator_binding(ctx, name, creator)
    sync_owner(ctx, ns)


def ensure_roles(ctx: Context, namespace: str) -> None:
    present = {r["metadata"]["name"] for r in ctx.kube.list(ROLES, namespace=namespace)}
    bases = ctx.role_bases()
    for role in DEFAULT_ROLES:
        if role in present:
            continue
        base = bases.get(f"project-{role}")
        if base is None:
            log.warning("RoleBase project-%s is missing; Role %s/%s not created", role, namespace, role)
            continue
        template = base.get("role") or {}
        body = {
            "metadata": {
                "name": role,
                "namespace": namespace,
                "annotations": dict((template.get("metadata") or {}).get("annotations") or {}),
            },
            "rules": template.get("rules") or [],
        }
        ctx.kube.create(ROLES, body, namespace=namespace)


def ensure_creator_binding(ctx: Context, namespace: str, creator: str) -> None:
    name = f"{creator}-admin"
    if ctx.kube.get(ROLEBINDINGS, name, namespace=namespace) is not None:
        return
    body = {
        "metadata": {"name": name, "namespace": namespace, "labels": {USER_REF: creator, ROLE_REF: "admin"}},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "admin"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": creator}],
    }
    ctx.kube.create(ROLEBINDINGS, body, namespace=namespace)


def register(registry: kopf.OperatorRegistry, ctx: Context) -> None:
    @kopf.on.resume("", "v1", "namespaces", registry=registry, backoff=5)
    @kopf.on.create("", "v1", "namespaces", registry=registry, backoff=5)
    @kopf.on.update("", "v1", "namespaces", registry=registry, backoff=5)
    @metrics.instrument("namespace")
    def namespace_reconcile(name: str, **_: Any) -> None:
        reconcile(ctx, name)

    # kopf compares only spec, labels and annotations; this makes a hand-edited owner count as a change.
    @kopf.on.update("", "v1", "namespaces", field="metadata.ownerReferences", registry=registry, backoff=5)
    @metrics.instrument("namespace")
    def namespace_owner_changed(name: str, **_: Any) -> None:
        reconcile(ctx, name)

    @kopf.on.delete("", "v1", "namespaces", registry=registry, backoff=5)
    @metrics.instrument("namespace-cleanup")
    def namespace_cleanup(name: str, **_: Any) -> None:
        ctx.kube.remove_finalizer(NAMESPACES, name, FINALIZER)

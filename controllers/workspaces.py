"""The workspacetemplate and workspace controllers.

A WorkspaceTemplate (``tenant.kubesphere.io/v1alpha2``) yields, all owned by it:

* the Workspace (``v1alpha1``) of the same name, with the template's labels and spec;
* the WorkspaceRoles ``<ws>-admin|regular|viewer|self-provisioner`` copied from
  the ``workspace-*`` RoleBases, labelled ``kubesphere.io/workspace=<ws>``;
* the WorkspaceRoleBinding ``<ws>-admin`` giving ``spec.template.spec.manager``
  the admin role (labelled with the user, so it goes when the user does).

A Workspace puts a controller ownerReference to itself on every namespace
labelled ``kubesphere.io/workspace=<ws>`` (the namespace controller does the
same from the other side), so deleting a workspace garbage-collects its
namespaces.  Both carry KubeSphere's finalizers; on delete the template deletes
its Workspace first.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from controllers import metrics, namespaces
from controllers.context import Context
from controllers.users import USER_REF
from kubesphere.resources import (
    NAMESPACES,
    WORKSPACEROLEBINDINGS,
    WORKSPACEROLES,
    WORKSPACES,
    WORKSPACETEMPLATES,
    Obj,
    Resource,
    owner_reference,
)

log = logging.getLogger(__name__)

TEMPLATE_FINALIZER = "finalizers.workspacetemplate.kubesphere.io"
WORKSPACE_FINALIZER = "finalizers.tenant.kubesphere.io"
WORKSPACE_LABEL = "kubesphere.io/workspace"
ROLE_REF = "iam.kubesphere.io/role-ref"
WORKSPACE_ROLES_FROM = ("admin", "regular", "viewer", "self-provisioner")


def _typed(kind: Resource, obj: Obj) -> Obj:
    return {**obj, "apiVersion": kind.api_version, "kind": kind.kind}


def ensure(ctx: Context, kind: Resource, want: Obj, *, compare: tuple[str, ...]) -> Obj:
    """Create ``want``, or bring an existing one's ``compare`` fields, labels, annotations, owners to it."""
    name = want["metadata"]["name"]
    existing = ctx.kube.get(kind, name)
    if existing is None:
        created = ctx.kube.create(kind, want)
        return created if created is not None else want
    patch: Obj = {k: want[k] for k in compare if existing.get(k) != want.get(k)}
    meta, have = want["metadata"], existing["metadata"]
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if (have.get("labels") or {}).get(k) != v}
    if labels:
        patch["metadata"] = {"labels": labels}
    notes = {
        k: v
        for k, v in (meta.get("annotations") or {}).items()
        if (have.get("annotations") or {}).get(k) != v
    }
    if notes:
        patch.setdefault("metadata", {})["annotations"] = notes
    owners = have.get("ownerReferences") or []
    for ref in meta.get("ownerReferences") or []:
        if not any(o.get("uid") == ref["uid"] for o in owners):
            others = [o for o in owners if not o.get("controller")]
            patch.setdefault("metadata", {})["ownerReferences"] = [*others, ref]
    if not patch:
        return existing
    patch.setdefault("metadata", {})["resourceVersion"] = have["resourceVersion"]
    return ctx.kube.patch(kind, name, patch)


def reconcile_template(ctx: Context, name: str) -> None:
    template = ctx.kube.get(WORKSPACETEMPLATES, name)
    if template is None or template["metadata"].get("deletionTimestamp"):
        return
    template = ctx.kube.add_finalizer(WORKSPACETEMPLATES, template, TEMPLATE_FINALIZER)
    owner = owner_reference(_typed(WORKSPACETEMPLATES, template))
    tpl = (template.get("spec") or {}).get("template") or {}
    spec = tpl.get("spec") or {}
    labels = dict((tpl.get("metadata") or {}).get("labels") or {})
    workspace = {"metadata": {"name": name, "labels": labels, "ownerReferences": [owner]}, "spec": spec}
    ensure(ctx, WORKSPACES, workspace, compare=("spec",))
    bases = ctx.role_bases()
    for role in WORKSPACE_ROLES_FROM:
        base = bases.get(f"workspace-{role}")
        if base is None:
            log.warning("RoleBase workspace-%s is missing; WorkspaceRole %s-%s not created", role, name, role)
            continue
        template_role = base.get("role") or {}
        want = {
            "metadata": {
                "name": f"{name}-{role}",
                "labels": {WORKSPACE_LABEL: name},
                "annotations": dict((template_role.get("metadata") or {}).get("annotations") or {}),
                "ownerReferences": [owner],
            },
            "rules": template_role.get("rules") or [],
        }
        ensure(ctx, WORKSPACEROLES, want, compare=("rules",))
    manager = spec.get("manager")
    if manager:
        role = f"{name}-admin"
        binding = {
            "metadata": {
                "name": role,
                "labels": {WORKSPACE_LABEL: name, USER_REF: manager, ROLE_REF: role},
                "ownerReferences": [owner],
            },
            "roleRef": {"apiGroup": WORKSPACEROLES.group, "kind": WORKSPACEROLES.kind, "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": manager}],
        }
        ensure(ctx, WORKSPACEROLEBINDINGS, binding, compare=("subjects", "roleRef"))
    else:
        # No manager any more: the binding this template made for one goes.
        existing = ctx.kube.get(WORKSPACEROLEBINDINGS, f"{name}-admin")
        owners = (existing or {}).get("metadata", {}).get("ownerReferences") or []
        if existing is not None and any(o.get("uid") == owner["uid"] for o in owners):
            ctx.kube.delete(WORKSPACEROLEBINDINGS, f"{name}-admin")


def cleanup_template(ctx: Context, name: str) -> None:
    ctx.kube.delete(WORKSPACES, name)
    ctx.kube.remove_finalizer(WORKSPACETEMPLATES, name, TEMPLATE_FINALIZER)


def reconcile_workspace(ctx: Context, name: str) -> int:
    """Finalizer, then the ownerReference on every labelled namespace; returns how many were fixed."""
    workspace = ctx.kube.get(WORKSPACES, name)
    if workspace is None or workspace["metadata"].get("deletionTimestamp"):
        return 0
    workspace = ctx.kube.add_finalizer(WORKSPACES, workspace, WORKSPACE_FINALIZER)
    fixed = 0
    for ns in ctx.kube.list(NAMESPACES, labels=f"{WORKSPACE_LABEL}={name}"):
        fixed += namespaces.sync_owner(ctx, ns, workspace=_typed(WORKSPACES, workspace))
    return fixed


def cleanup_workspace(ctx: Context, name: str) -> None:
    ctx.kube.remove_finalizer(WORKSPACES, name, WORKSPACE_FINALIZER)


def register(registry: kopf.OperatorRegistry, ctx: Context) -> None:
    tg, tv, tp = WORKSPACETEMPLATES.group, WORKSPACETEMPLATES.version, WORKSPACETEMPLATES.plural
    wg, wv, wp = WORKSPACES.group, WORKSPACES.version, WORKSPACES.plural

    @kopf.on.resume(tg, tv, tp, registry=registry, backoff=5)
    @kopf.on.create(tg, tv, tp, registry=registry, backoff=5)
    @kopf.on.update(tg, tv, tp, registry=registry, backoff=5)
    @metrics.instrument("workspacetemplate")
    def workspacetemplate_reconcile(name: str, **_: Any) -> None:
        reconcile_template(ctx, name)

    @kopf.on.delete(tg, tv, tp, registry=registry, backoff=5)
    @metrics.instrument("workspacetemplate-cleanup")
    def workspacetemplate_cleanup(name: str, **_: Any) -> None:
        cleanup_template(ctx, name)

    @kopf.on.resume(wg, wv, wp, registry=registry, backoff=5)
    @kopf.on.create(wg, wv, wp, registry=registry, backoff=5)
    @kopf.on.update(wg, wv, wp, registry=registry, backoff=5)
    @metrics.instrument("workspace")
    def workspace_reconcile(name: str, **_: Any) -> None:
        reconcile_workspace(ctx, name)

    @kopf.on.delete(wg, wv, wp, registry=registry, backoff=5)
    @metrics.instrument("workspace-cleanup")
    def workspace_cleanup(name: str, **_: Any) -> None:
        cleanup_workspace(ctx, name)

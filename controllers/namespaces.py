"""The namespace controller: KubeSphere's label, finalizer, default roles, creator binding, workspace owner.

For every namespace not being deleted:

* label ``kubesphere.io/namespace=<ns>`` and finalizer ``finalizers.kubesphere.io/namespaces``;
* for a workspace's or a DevOps project's namespace only (label ``kubesphere.io/workspace``
  or ``kubesphere.io/devopsproject``, as KubeSphere decides), a Role for every RoleBase
  of the namespace's scope (``scope.kubesphere.io/namespace`` or ``.../devops``): the
  built-in ``admin``, ``operator``, ``viewer`` and the project role templates, kept
  equal to their RoleBase (labels, annotations, rules);
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
#: RoleBases labelled ``scope.kubesphere.io/namespace`` or ``.../devops`` become Roles in those namespaces.
SCOPE_LABEL = "scope.kubesphere.io/{}"


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


def owner_mismatch(ns: Obj) -> bool:
    """Whether ``ns``'s Workspace ownerReference may not match its label (no reads: a cheap test)."""
    meta = ns["metadata"]
    if meta.get("deletionTimestamp") or protected(meta.get("name") or ""):
        return False
    ws_name = (meta.get("labels") or {}).get(WORKSPACE_LABEL)
    owned = [o.get("name") for o in meta.get("ownerReferences") or [] if o.get("kind") == WORKSPACES.kind]
    return owned != ([ws_name] if ws_name else [])


def protected(name: str) -> bool:
    """The cluster's and the platform's own namespaces: in system-workspace, never owned by it.

    An ownerReference would let the garbage collector delete ``kube-system`` with the workspace.
    """
    return name in ("default", "kube-system", "kube-public", "kube-node-lease") or name.startswith(
        "kubesphere-"
    )


def sync_owner(ctx: Context, ns: Obj, *, workspace: Obj | bool | None = True) -> int:
    """Make ``ns``'s Workspace ownerReference match its label; 1 if it was patched.

    ``workspace`` is the Workspace when the caller has it, or True to look it up.
    """
    meta = ns["metadata"]
    if meta.get("deletionTimestamp"):
        return 0
    ws_name = None if protected(meta["name"]) else (meta.get("labels") or {}).get(WORKSPACE_LABEL)
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
    """Bring namespace ``name`` in line; again while its workspace or DevOps label moved meanwhile.

    kopf records the object as handled once the handler returns, as it then is: a label
    moved while the handler ran (the roles take a while) would otherwise never be seen.
    """
    for _ in range(3):
        acted_on = _reconcile_once(ctx, name)
        latest = ctx.kube.get(NAMESPACES, name) if acted_on is not None else None
        if latest is None or _deciding(latest) == acted_on:
            return


def _deciding(ns: Obj) -> tuple[str | None, str | None]:
    """The labels that decide a namespace's owner and roles."""
    labels = ns["metadata"].get("labels") or {}
    return labels.get(WORKSPACE_LABEL), labels.get(DEVOPS_LABEL)


def _reconcile_once(ctx: Context, name: str) -> tuple[str | None, str | None] | None:
    """One pass; the deciding labels it acted on (None: the namespace is gone or going)."""
    ns = ctx.kube.get(NAMESPACES, name)
    if ns is None or ns["metadata"].get("deletionTimestamp"):
        return None
    acted_on = _deciding(ns)
    meta = ns["metadata"]
    patch: Obj = {}
    if (meta.get("labels") or {}).get(NAMESPACE_LABEL) != name:
        patch["labels"] = {NAMESPACE_LABEL: name}
    if FINALIZER not in (meta.get("finalizers") or []):
        patch["finalizers"] = [*(meta.get("finalizers") or []), FINALIZER]
    if patch:
        patch["resourceVersion"] = meta["resourceVersion"]
        ns = ctx.kube.patch(NAMESPACES, name, {"metadata": patch})
    # The owner and the creator's binding first: the role set (some thirty Roles) takes longest.
    sync_owner(ctx, ns)
    creator = (meta.get("annotations") or {}).get(CREATOR)
    if creator:
        ensure_creator_binding(ctx, name, creator)
    labels = meta.get("labels") or {}
    if WORKSPACE_LABEL in labels or DEVOPS_LABEL in labels:
        ensure_roles(ctx, name, scope_of(labels))
    return acted_on


def scope_of(labels: dict[str, str]) -> str:
    """``devops`` for a DevOps project's namespace, else ``namespace`` (the RoleBase scope label)."""
    return "devops" if labels.get(DEVOPS_LABEL) else "namespace"


def roles_for(bases: dict[str, Obj], scope: str) -> list[Obj]:
    """The Roles the RoleBases of ``scope`` make: the built-in roles and the role templates."""
    found = []
    for base in bases.values():
        if SCOPE_LABEL.format(scope) not in ((base.get("metadata") or {}).get("labels") or {}):
            continue
        role = base.get("role") or {}
        if role.get("kind") != ROLES.kind or not (role.get("metadata") or {}).get("name"):
            continue
        found.append(role)
    return found


def ensure_roles(ctx: Context, namespace: str, scope: str) -> None:
    """Create the scope's Roles, and bring back labels, annotations and rules that differ."""
    present = {r["metadata"]["name"]: r for r in ctx.kube.list(ROLES, namespace=namespace)}
    wanted = roles_for(ctx.role_bases(), scope)
    if not any(r["metadata"]["name"] == "admin" for r in wanted):
        log.warning("no RoleBase of scope %s makes the Role admin; namespace %s gets none", scope, namespace)
    for template in wanted:
        meta = template["metadata"]
        want_labels: dict[str, str] = dict(meta.get("labels") or {})
        want_notes: dict[str, str] = dict(meta.get("annotations") or {})
        want_rules: list[Obj] = list(template.get("rules") or [])
        have = present.get(meta["name"])
        if have is None:
            body = {
                "metadata": {
                    "name": meta["name"],
                    "namespace": namespace,
                    "labels": want_labels,
                    "annotations": want_notes,
                },
                "rules": want_rules,
            }
            ctx.kube.create(ROLES, body, namespace=namespace)
            continue
        hmeta = have["metadata"]
        labels = {k: v for k, v in want_labels.items() if (hmeta.get("labels") or {}).get(k) != v}
        notes = {k: v for k, v in want_notes.items() if (hmeta.get("annotations") or {}).get(k) != v}
        patch: Obj = {}
        if labels or notes:
            patch["metadata"] = {"labels": labels, "annotations": notes}
        if (have.get("rules") or []) != want_rules:
            patch["rules"] = want_rules
        if patch:
            patch.setdefault("metadata", {})["resourceVersion"] = hmeta["resourceVersion"]
            ctx.kube.patch(ROLES, meta["name"], patch, namespace=namespace)


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

    # Level-triggered, on every watch event: the owner follows the workspace label even when
    # kopf's change detection folds a label move into a pass that already ran (a move during or
    # right after another handler). Cheap: only a mismatch reads the Workspace and patches.
    @kopf.on.event("", "v1", "namespaces", registry=registry)
    def namespace_owner_follows_label(body: Any, type: str | None, **_: Any) -> None:
        ns = {"metadata": dict(body.get("metadata") or {})}
        if type in (None, "DELETED") or not owner_mismatch(ns):
            return
        try:
            sync_owner(ctx, ns)
        except Exception as exc:  # a newer version is on its way: its event tries again
            log.debug("namespace %s: owner not synced yet: %s", ns["metadata"].get("name"), exc)

    @kopf.on.delete("", "v1", "namespaces", registry=registry, backoff=5)
    @metrics.instrument("namespace-cleanup")
    def namespace_cleanup(name: str, **_: Any) -> None:
        ctx.kube.remove_finalizer(NAMESPACES, name, FINALIZER)

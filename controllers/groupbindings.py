"""The groupbinding controller: a GroupBinding puts its group into its users' ``spec.groups``.

RBAC reads ``User.spec.groups`` for Group subjects (ks-apiserver gives an authenticated user those
groups), so a group's workspace or project role reaches its members only through this.

* A GroupBinding (``groupRef.name`` = G, ``users``) gets KubeSphere's finalizer
  ``finalizers.kubesphere.io/groupsbindings`` and the label ``iam.kubesphere.io/group-ref=G``;
  every listed user that exists and is not being deleted gets G in ``spec.groups``.
* When it is deleted, G is taken out of each listed user's groups, unless another GroupBinding of G
  that is not being deleted still lists that user; then the finalizer goes.

User writes are merge patches conditional on ``resourceVersion`` (a concurrent change conflicts
and is retried), and only when the groups would change, so a repeated reconcile writes nothing.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from controllers import metrics
from controllers.context import Context
from controllers.errors import NotFound
from kubesphere.resources import GROUPBINDINGS, USERS, Obj

log = logging.getLogger(__name__)

FINALIZER = "finalizers.kubesphere.io/groupsbindings"
GROUP_REF = "iam.kubesphere.io/group-ref"


def group_of(binding: Obj) -> str:
    return str((binding.get("groupRef") or {}).get("name") or "")


def users_of(binding: Obj) -> list[str]:
    return [str(u) for u in binding.get("users") or [] if isinstance(u, str) and u]


def _set_groups(ctx: Context, name: str, change: Any) -> None:
    """Apply ``change(groups) -> groups`` to the user's groups, when it changes them."""
    user = ctx.kube.get(USERS, name)
    if user is None or user["metadata"].get("deletionTimestamp"):
        return
    groups = [str(g) for g in (user.get("spec") or {}).get("groups") or []]
    wanted = change(groups)
    if wanted == groups:
        return
    patch = {"metadata": {"resourceVersion": user["metadata"]["resourceVersion"]}, "spec": {"groups": wanted}}
    try:
        ctx.kube.patch(USERS, name, patch)
    except NotFound:
        return
    log.info("user %s: groups %s", name, wanted)


def reconcile(ctx: Context, name: str) -> None:
    binding = ctx.kube.get(GROUPBINDINGS, name)
    if binding is None or binding["metadata"].get("deletionTimestamp"):
        return
    group = group_of(binding)
    meta = binding["metadata"]
    patch: Obj = {}
    if FINALIZER not in (meta.get("finalizers") or []):
        patch["finalizers"] = [*(meta.get("finalizers") or []), FINALIZER]
    if group and (meta.get("labels") or {}).get(GROUP_REF) != group:
        patch["labels"] = {GROUP_REF: group}
    if patch:
        patch["resourceVersion"] = meta["resourceVersion"]
        ctx.kube.patch(GROUPBINDINGS, name, {"metadata": patch})
    if not group:
        return
    for user in users_of(binding):
        _set_groups(ctx, user, lambda groups: groups if group in groups else [*groups, group])


def still_bound(ctx: Context, group: str, user: str, *, besides: str) -> bool:
    """Whether another live GroupBinding of ``group`` lists ``user``."""
    for other in ctx.kube.list(GROUPBINDINGS):
        if other["metadata"]["name"] == besides or other["metadata"].get("deletionTimestamp"):
            continue
        if group_of(other) == group and user in users_of(other):
            return True
    return False


def cleanup(ctx: Context, name: str) -> None:
    binding = ctx.kube.get(GROUPBINDINGS, name)
    if binding is None:
        return
    group = group_of(binding)
    if group:
        for user in users_of(binding):
            if not still_bound(ctx, group, user, besides=name):
                _set_groups(ctx, user, lambda groups: [g for g in groups if g != group])
    ctx.kube.remove_finalizer(GROUPBINDINGS, name, FINALIZER)


def register(registry: kopf.OperatorRegistry, ctx: Context) -> None:
    g, v, p = GROUPBINDINGS.group, GROUPBINDINGS.version, GROUPBINDINGS.plural

    @kopf.on.resume(g, v, p, registry=registry, backoff=5)
    @kopf.on.create(g, v, p, registry=registry, backoff=5)
    @kopf.on.update(g, v, p, registry=registry, backoff=5)
    @metrics.instrument("groupbinding")
    def groupbinding_reconcile(name: str, **_: Any) -> None:
        reconcile(ctx, name)

    # kopf compares only spec, labels and annotations; a GroupBinding keeps its users at the top level.
    @kopf.on.update(g, v, p, field="users", registry=registry, backoff=5)
    @metrics.instrument("groupbinding")
    def groupbinding_users_changed(name: str, **_: Any) -> None:
        reconcile(ctx, name)

    @kopf.on.delete(g, v, p, registry=registry, backoff=5)
    @metrics.instrument("groupbinding-cleanup")
    def groupbinding_cleanup(name: str, **_: Any) -> None:
        cleanup(ctx, name)

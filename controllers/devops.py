"""The devopsproject controller: each DevOpsProject gets its admin namespace.

The namespace is named after the project, labelled
``kubesphere.io/devopsproject=<project>``, carries the project's
``kubesphere.io/creator`` annotation and a controller ownerReference to the
project; ``status.adminNamespace`` names it and the annotation
``devopsproject.devops.kubesphere.io/syncstatus`` says ``successful``.  If a
namespace of that name already exists and belongs to something else, the
project is marked ``failed`` with the reason (and a Warning Event) instead of
taking it over.  On delete the finalizer
``devopsproject.finalizers.kubesphere.io`` deletes the admin namespace first.
(The Jenkins folder of the original is not created here.)
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from controllers import metrics
from controllers.context import Context
from controllers.errors import GiveUp, RetryLater
from kubesphere.resources import DEVOPSPROJECTS, NAMESPACES, Obj, owner_reference

log = logging.getLogger(__name__)

FINALIZER = "devopsproject.finalizers.kubesphere.io"
PROJECT_LABEL = "kubesphere.io/devopsproject"
CREATOR = "kubesphere.io/creator"
SYNC_STATUS = "devopsproject.devops.kubesphere.io/syncstatus"


def _belongs(ns: Obj, project: Obj) -> bool:
    meta = ns["metadata"]
    if any(o.get("uid") == project["metadata"]["uid"] for o in meta.get("ownerReferences") or []):
        return True
    # Ours from an earlier life of a project of the same name, or made for it by hand: adopt it.
    labelled = (meta.get("labels") or {}).get(PROJECT_LABEL) == project["metadata"]["name"]
    return labelled and not any(o.get("controller") for o in meta.get("ownerReferences") or [])


def reconcile(ctx: Context, name: str) -> None:
    project = ctx.kube.get(DEVOPSPROJECTS, name)
    if project is None or project["metadata"].get("deletionTimestamp"):
        return
    project = ctx.kube.add_finalizer(DEVOPSPROJECTS, project, FINALIZER)
    typed = {**project, "apiVersion": DEVOPSPROJECTS.api_version, "kind": DEVOPSPROJECTS.kind}
    ns_name = str((project.get("status") or {}).get("adminNamespace") or name)
    creator = (project["metadata"].get("annotations") or {}).get(CREATOR)
    want_meta: Obj = {"labels": {PROJECT_LABEL: name}, "ownerReferences": [owner_reference(typed)]}
    if creator:
        want_meta["annotations"] = {CREATOR: creator}
    ns = ctx.kube.get(NAMESPACES, ns_name)
    if ns is None:
        ctx.kube.create(NAMESPACES, {"metadata": {"name": ns_name, **want_meta}})
        log.info("devopsproject %s: admin namespace %s created", name, ns_name)
    elif ns["metadata"].get("deletionTimestamp"):
        raise RetryLater(f"namespace {ns_name} is still terminating", delay=3.0)
    elif not _belongs(ns, project):
        fail(ctx, project, f"namespace {ns_name} already exists and does not belong to this project")
    else:
        meta = ns["metadata"]
        patch: Obj = {}
        if (meta.get("labels") or {}).get(PROJECT_LABEL) != name:
            patch["labels"] = want_meta["labels"]
        if creator and (meta.get("annotations") or {}).get(CREATOR) != creator:
            patch["annotations"] = want_meta["annotations"]
        owners = meta.get("ownerReferences") or []
        if not any(o.get("uid") == project["metadata"]["uid"] for o in owners):
            patch["ownerReferences"] = [*owners, *want_meta["ownerReferences"]]
        if patch:
            patch["resourceVersion"] = meta["resourceVersion"]
            ctx.kube.patch(NAMESPACES, ns_name, {"metadata": patch})
    status = project.get("status") or {}
    annotations = project["metadata"].get("annotations") or {}
    if (
        status.get("adminNamespace") != ns_name
        or status.get("reason")
        or annotations.get(SYNC_STATUS) != "successful"
    ):
        ctx.kube.patch(
            DEVOPSPROJECTS,
            name,
            {
                "metadata": {
                    "annotations": {SYNC_STATUS: "successful"},
                    "resourceVersion": project["metadata"]["resourceVersion"],
                },
                "status": {"adminNamespace": ns_name, "reason": None},
            },
        )


def fail(ctx: Context, project: Obj, reason: str) -> None:
    """Mark the project failed with ``reason`` and stop retrying it until it changes."""
    ctx.kube.patch(
        DEVOPSPROJECTS,
        project["metadata"]["name"],
        {"metadata": {"annotations": {SYNC_STATUS: "failed"}}, "status": {"reason": reason}},
    )
    raise GiveUp(reason)


def cleanup(ctx: Context, name: str) -> None:
    project = ctx.kube.get(DEVOPSPROJECTS, name)
    if project is None:
        return
    ns_name = (project.get("status") or {}).get("adminNamespace")
    if ns_name:
        ns = ctx.kube.get(NAMESPACES, ns_name)
        if ns is not None and _belongs(ns, project):
            ctx.kube.delete(NAMESPACES, ns_name)
    ctx.kube.remove_finalizer(DEVOPSPROJECTS, name, FINALIZER)


def register(registry: kopf.OperatorRegistry, ctx: Context) -> None:
    g, v, p = DEVOPSPROJECTS.group, DEVOPSPROJECTS.version, DEVOPSPROJECTS.plural

    @kopf.on.resume(g, v, p, registry=registry, backoff=5)
    @kopf.on.create(g, v, p, registry=registry, backoff=5)
    @kopf.on.update(g, v, p, registry=registry, backoff=5)
    @metrics.instrument("devopsproject")
    def devopsproject_reconcile(name: str, **_: Any) -> None:
        reconcile(ctx, name)

    @kopf.on.delete(g, v, p, registry=registry, backoff=5)
    @metrics.instrument("devopsproject-cleanup")
    def devopsproject_cleanup(name: str, **_: Any) -> None:
        cleanup(ctx, name)

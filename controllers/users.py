"""The user controller: password hashing, status, kubeconfig, LDAP, and clean-up on delete.

One level-based reconcile per User (on create, update and operator start):

1. the finalizer ``finalizers.kubesphere.io/users``;
2. a plain-text ``spec.password`` replaced by its bcrypt hash (cost 10) and the
   ``iam.kubesphere.io/last-password-change-time`` annotation set; a password
   that breaks the password rule is reported (Warning Event, ``Disabled`` with
   the reason) and not retried until the user changes;
3. ``status.state``: ``Active`` once the password is a hash, ``Disabled``
   without one, ``AuthLimitExceeded`` while too many failed logins are recent
   (see :mod:`controllers.ratelimit`); a timer brings it back to ``Active``;
4. the ConfigMap ``kubeconfig-<user>`` owned by the User, and a
   CertificateSigningRequest for its client certificate (``controllers.kubeconfigs``);
5. the LDAP entry, when LDAP is configured.

All of 1-3 is one conditional merge patch (the CRD has no status
subresource), so a concurrent change makes it conflict and retry.  Deleting a
User removes what is labelled ``iam.kubesphere.io/user-ref=<user>`` (role
bindings of every level, group bindings, login records) and its LDAP entry.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
from typing import Any

import kopf

from controllers import kubeconfigs, metrics, passwords, ratelimit
from controllers.context import Context
from controllers.errors import GiveUp
from kubesphere.resources import (
    CLUSTERROLEBINDINGS,
    CONFIGMAPS,
    CSRS,
    GLOBALROLEBINDINGS,
    GROUPBINDINGS,
    LOGINRECORDS,
    NAMESPACES,
    ROLEBINDINGS,
    USERS,
    WORKSPACEROLEBINDINGS,
    Obj,
    now_rfc3339,
    owner_reference,
    parse_time,
)

log = logging.getLogger(__name__)

FINALIZER = "finalizers.kubesphere.io/users"
PASSWORD_CHANGED = "iam.kubesphere.io/last-password-change-time"
USER_REF = "iam.kubesphere.io/user-ref"
IDP_LABEL = "iam.kubesphere.io/identify-provider"
INVALID = "Invalid password: "
GROUP, VERSION, PLURAL = USERS.group, USERS.version, USERS.plural


def _state(status: Obj) -> str:
    """The state as the rules see it: a Disabled set by us for a bad password is no decision."""
    state = str(status.get("state") or "")
    if state == ratelimit.DISABLED and str(status.get("reason") or "").startswith(INVALID):
        return ""
    return state


def desired_status(
    ctx: Context, user: Obj, *, password: str, now: dt.datetime, count_failures: bool = False
) -> ratelimit.Verdict:
    """The status ``user`` should have.

    Failed logins are counted only when asked (a new LoginRecord, from the loginrecord controller):
    an ``Active`` user can only become limited through one, so the user's own reconciles skip the
    list.  A limited user is released by time alone.
    """
    status = user.get("status") or {}
    state = _state(status)
    if state == ratelimit.DISABLED:
        return ratelimit.Verdict(ratelimit.DISABLED, reason=str(status.get("reason") or ""))
    if not password:
        idp = (user["metadata"].get("labels") or {}).get(IDP_LABEL)
        return ratelimit.Verdict(ratelimit.ACTIVE if idp else ratelimit.DISABLED)
    if state == "":
        return ratelimit.Verdict(ratelimit.ACTIVE)
    last_transition = parse_time(status.get("lastTransitionTime"))
    if state == ratelimit.ACTIVE and not count_failures:
        return ratelimit.Verdict(ratelimit.ACTIVE, reason=str(status.get("reason") or ""))
    counting = state == ratelimit.ACTIVE or last_transition is None
    selector = f"{USER_REF}={user['metadata']['name']}"
    records = ctx.kube.list(LOGINRECORDS, labels=selector) if counting else []
    auth = ctx.settings.authentication
    return ratelimit.verdict(
        state=state,
        last_transition=last_transition,
        records=records,
        now=now,
        max_tries=auth.rate_limiter_max_tries,
        window=auth.rate_limiter_duration,
        reason=str(status.get("reason") or ""),
    )


def status_patch(user: Obj, verdict: ratelimit.Verdict, *, now: str) -> Obj:
    """The status fields to change (empty when nothing changes)."""
    status = user.get("status") or {}
    if status.get("state") == verdict.state:
        if (status.get("reason") or "") == verdict.reason:
            return {}
        return {"reason": verdict.reason or None}
    return {"state": verdict.state, "reason": verdict.reason or None, "lastTransitionTime": now}


def reconcile(ctx: Context, name: str) -> None:
    user = ctx.kube.get(USERS, name)
    if user is None or user["metadata"].get("deletionTimestamp"):
        return
    meta, spec = user["metadata"], user.get("spec") or {}
    patch: Obj = {}
    if FINALIZER not in (meta.get("finalizers") or []):
        patch.setdefault("metadata", {})["finalizers"] = [*(meta.get("finalizers") or []), FINALIZER]
    now = now_rfc3339()
    password = str(spec.get("password") or "")
    if password and not passwords.is_bcrypt(password):
        try:
            passwords.check_plain(password)
        except passwords.WeakPassword as exc:
            _report_weak(ctx, user, patch, str(exc), now=now)
        password = passwords.hash_password(password)
        metrics.PASSWORDS_HASHED.inc()
        patch["spec"] = {"password": password}
        patch.setdefault("metadata", {})["annotations"] = {PASSWORD_CHANGED: now}
    verdict = desired_status(ctx, user, password=password, now=dt.datetime.now(dt.UTC))
    status = status_patch(user, verdict, now=now)
    if status:
        patch["status"] = status
    if patch:
        patch.setdefault("metadata", {})["resourceVersion"] = meta["resourceVersion"]
        user = ctx.kube.patch(USERS, name, patch)
        if status:
            log.info("user %s: %s %s", name, verdict.state, verdict.reason)
    ensure_kubeconfig(ctx, user)
    if ctx.ldap is not None:
        ctx.ldap.upsert(user)


def _report_weak(ctx: Context, user: Obj, patch: Obj, why: str, *, now: str) -> None:
    """Record a bad password in the status, then give up on this version of the object."""
    reason = INVALID + why
    status = user.get("status") or {}
    if status.get("reason") != reason:
        patch["status"] = {"state": ratelimit.DISABLED, "reason": reason, "lastTransitionTime": now}
    if patch:
        patch.setdefault("metadata", {})["resourceVersion"] = user["metadata"]["resourceVersion"]
        ctx.kube.patch(USERS, user["metadata"]["name"], patch)
    raise GiveUp(f"spec.password {why}; the password stays unusable until it is changed")


def ensure_kubeconfig(ctx: Context, user: Obj) -> None:
    """The ``kubeconfig-<user>`` ConfigMap, and a CSR for its certificate when it has none (or an old one)."""
    ns = ctx.settings.controls_namespace
    name = user["metadata"]["name"]
    if not ctx.namespace_known(ns):
        ctx.kube.create(NAMESPACES, {"metadata": {"name": ns}})
        ctx.namespace_seen(ns)
    cm_name = kubeconfigs.configmap_name(name)
    fresh = kubeconfigs.build(user=name, server=ctx.settings.kubeconfig_server, ca_data=_ca_data(ctx))
    owner = owner_reference({**user, "apiVersion": USERS.api_version, "kind": USERS.kind})
    labels = {USER_REF: name, kubeconfigs.USERNAME_LABEL: name}
    meta: Obj = {"name": cm_name, "namespace": ns, "labels": labels, "ownerReferences": [owner]}
    existing = ctx.kube.get(CONFIGMAPS, cm_name, namespace=ns)
    if existing is None:
        ctx.kube.create(CONFIGMAPS, {"metadata": meta, "data": {kubeconfigs.KEY: fresh}}, namespace=ns)
        _request_certificate(ctx, name)
        return
    text = (existing.get("data") or {}).get(kubeconfigs.KEY) or ""
    owners = existing["metadata"].get("ownerReferences") or []
    if not any(o.get("uid") == user["metadata"]["uid"] for o in owners):
        # Another user of that name had it: nothing of theirs may be handed to this one.
        text = fresh
        ctx.kube.patch(
            CONFIGMAPS, cm_name,
            {"metadata": {**meta, "resourceVersion": existing["metadata"]["resourceVersion"]},
             "data": {kubeconfigs.KEY: text}},
            namespace=ns,
        )  # fmt: skip
    if kubeconfigs.needs_certificate(text, name) and not _pending(ctx, name):
        _request_certificate(ctx, name)


def _ca_data(ctx: Context) -> str | None:
    """The CA this process trusts for the API server, base64 (what the kubeconfig's cluster carries)."""
    path = getattr(ctx.kube.api.configuration, "ssl_ca_cert", None)
    if not path:
        return None
    try:
        with open(path, "rb") as f:
            return base64.b64encode(f.read()).decode()
    except OSError:
        return None


def _pending(ctx: Context, name: str) -> bool:
    """A CSR for the user that is neither issued nor refused yet."""
    for csr in ctx.kube.list(CSRS, labels=f"{kubeconfigs.USERNAME_LABEL}={name}"):
        conditions = {c.get("type") for c in (csr.get("status") or {}).get("conditions") or []}
        if not (csr.get("status") or {}).get("certificate") and not conditions & {"Denied", "Failed"}:
            return True
    return False


def _request_certificate(ctx: Context, name: str) -> None:
    ctx.kube.create(CSRS, kubeconfigs.csr_object(name))
    log.info("user %s: certificate requested for the kubeconfig", name)


def record_login(ctx: Context, name: str, *, at: str) -> None:
    """A login attempt: set lastLoginTime, then apply the rate-limit rules (loginrecord controller)."""
    user = ctx.kube.get(USERS, name)
    if user is None or user["metadata"].get("deletionTimestamp"):
        return
    status = user.get("status") or {}
    patch: Obj = {}
    last = parse_time(status.get("lastLoginTime"))
    seen = parse_time(at)
    if seen is not None and (last is None or seen > last):
        patch["lastLoginTime"] = at
    password = str((user.get("spec") or {}).get("password") or "")
    if passwords.is_bcrypt(password) and _state(status) in (ratelimit.ACTIVE, ratelimit.LIMITED):
        now = dt.datetime.now(dt.UTC)
        verdict = desired_status(ctx, user, password=password, now=now, count_failures=True)
        patch.update(status_patch(user, verdict, now=now_rfc3339()))
        if verdict.state != status.get("state"):
            log.info("user %s: %s %s", name, verdict.state, verdict.reason)
    if patch:
        ctx.kube.patch(
            USERS,
            name,
            {"metadata": {"resourceVersion": user["metadata"]["resourceVersion"]}, "status": patch},
        )


def cleanup(ctx: Context, name: str) -> None:
    selector = f"{USER_REF}={name}"
    removed = 0
    for kind in (
        GLOBALROLEBINDINGS,
        WORKSPACEROLEBINDINGS,
        CLUSTERROLEBINDINGS,
        ROLEBINDINGS,
        GROUPBINDINGS,
        LOGINRECORDS,
    ):
        removed += ctx.kube.delete_labelled(kind, selector)
    ctx.kube.delete_labelled(CSRS, f"{kubeconfigs.USERNAME_LABEL}={name}")  # one not filed yet holds a key
    if ctx.ldap is not None:
        ctx.ldap.delete(name)
    ctx.kube.remove_finalizer(USERS, name, FINALIZER)
    log.info("user %s deleted: removed %d bindings and login records", name, removed)


def is_limited(status: kopf.Status, **_: Any) -> bool:
    return bool(status.get("state") == ratelimit.LIMITED)


def register(registry: kopf.OperatorRegistry, ctx: Context) -> None:
    window = ctx.settings.authentication.rate_limiter_duration

    @kopf.on.resume(GROUP, VERSION, PLURAL, registry=registry, backoff=5)
    @kopf.on.create(GROUP, VERSION, PLURAL, registry=registry, backoff=5)
    @kopf.on.update(GROUP, VERSION, PLURAL, registry=registry, backoff=5)
    @metrics.instrument("user")
    def user_reconcile(name: str, **_: Any) -> None:
        reconcile(ctx, name)

    @kopf.on.delete(GROUP, VERSION, PLURAL, registry=registry, backoff=5)
    @metrics.instrument("user-cleanup")
    def user_cleanup(name: str, **_: Any) -> None:
        cleanup(ctx, name)

    # Brings a rate-limited user back to Active once its window has passed.
    @kopf.timer(
        GROUP, VERSION, PLURAL, registry=registry, when=is_limited, interval=max(1.0, min(30.0, window / 4))
    )
    @metrics.instrument("user-unblock")
    def user_unblock(name: str, **_: Any) -> None:
        reconcile(ctx, name)

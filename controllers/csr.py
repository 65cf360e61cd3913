"""The CSR controller: approves the user controller's certificate requests and files the certificates.

A CertificateSigningRequest labelled ``kubesphere.io/username`` is approved
(condition ``Approved``, reason ``KubeSphereApprove``) when it is one of ours:
made by this controller's own account and asking for a certificate whose CN is
the labelled user (KubeSphere approves on the label alone, which would let
anyone who may create CSRs become any user).  Once kube-controller-manager has
signed it, the certificate and the key from the ``kubesphere.io/private-key``
annotation go into the user's ``kubeconfig-<user>`` ConfigMap and the CSR is
deleted.  Handled on every event (no progress is stored on the CSR).
"""

from __future__ import annotations

import base64
import logging
import threading
from typing import Any

import kopf

from controllers import kubeconfigs, metrics
from controllers.context import Context
from controllers.errors import RetryLater
from kubesphere.resources import CONFIGMAPS, CSRS, USERS, Obj

log = logging.getLogger(__name__)

REASON = "KubeSphereApprove"
MESSAGE = "This CSR was approved by KubeSphere"


class Identity:
    """This controller's own username, asked once (a SelfSubjectReview)."""

    def __init__(self) -> None:
        self._name = ""
        self._lock = threading.Lock()

    def name(self, ctx: Context) -> str:
        with self._lock:
            if not self._name:
                review = ctx.kube.call(
                    "POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                    body={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
                )  # fmt: skip
                self._name = str(((review.get("status") or {}).get("userInfo") or {}).get("username") or "")
            return self._name


def _condition(csr: Obj, kind: str) -> bool:
    return any(c.get("type") == kind for c in (csr.get("status") or {}).get("conditions") or [])


def ours(ctx: Context, csr: Obj, identity: Identity) -> bool:
    user = ((csr.get("metadata") or {}).get("labels") or {}).get(kubeconfigs.USERNAME_LABEL, "")
    spec = csr.get("spec") or {}
    return bool(user) and (
        spec.get("signerName") == kubeconfigs.SIGNER
        and kubeconfigs.request_subject(csr) == user
        and spec.get("username") == identity.name(ctx)
    )


def reconcile(ctx: Context, csr: Obj, identity: Identity) -> None:
    meta = csr["metadata"]
    if not ours(ctx, csr, identity) or _condition(csr, "Denied") or _condition(csr, "Failed"):
        return
    user = meta["labels"][kubeconfigs.USERNAME_LABEL]
    issued = (csr.get("status") or {}).get("certificate")
    if not issued:
        if not _condition(csr, "Approved"):
            approved = {**csr, "status": {**(csr.get("status") or {}), "conditions": [
                {"type": "Approved", "status": "True", "reason": REASON, "message": MESSAGE},
            ]}}  # fmt: skip
            ctx.kube.call("PUT", CSRS.path(name=meta["name"], subresource="approval"), body=approved)
            log.info("csr %s: approved for user %s", meta["name"], user)
        return
    ns = ctx.settings.controls_namespace
    name = kubeconfigs.configmap_name(user)
    cm = ctx.kube.get(CONFIGMAPS, name, namespace=ns)
    if cm is None:
        if ctx.kube.get(USERS, user) is None:  # the user is gone (and its ConfigMap with it)
            ctx.kube.delete(CSRS, meta["name"])
            return
        raise RetryLater(f"ConfigMap {ns}/{name} does not exist (yet)", delay=5)
    key = str((meta.get("annotations") or {}).get(kubeconfigs.PRIVATE_KEY_ANNOTATION) or "")
    text = kubeconfigs.with_credentials(
        (cm.get("data") or {}).get(kubeconfigs.KEY) or "", user=user, cert_pem=base64.b64decode(issued),
        key_pem=key.encode(),
    )  # fmt: skip
    ctx.kube.patch(
        CONFIGMAPS, name,
        {"metadata": {"resourceVersion": cm["metadata"]["resourceVersion"]}, "data": {kubeconfigs.KEY: text}},
        namespace=ns,
    )  # fmt: skip
    ctx.kube.delete(CSRS, meta["name"])
    log.info("csr %s: certificate filed in %s/%s", meta["name"], ns, name)


def register(registry: kopf.OperatorRegistry, ctx: Context) -> None:
    identity = Identity()

    @kopf.on.event(
        "certificates.k8s.io", "v1", "certificatesigningrequests", registry=registry,
        labels={kubeconfigs.USERNAME_LABEL: kopf.PRESENT},
    )  # fmt: skip
    @metrics.instrument("csr")
    def csr_event(type: str, body: kopf.Body, **_: Any) -> None:
        if type != "DELETED":
            reconcile(ctx, dict(body), identity)

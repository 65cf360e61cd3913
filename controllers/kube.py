"""The controllers' one contact with the Kubernetes API.

Every read and write the controllers make goes through :class:`Kube`: the
shared platform client (:class:`kubesphere.rest.Rest`: plain dicts, the
resource catalog's paths, a request timeout on every call) with its failures
turned into the controllers' hierarchy by the shared rule — 404 is
``NotFound``, 409 a ``Conflict`` (retried), what may pass (429, 5xx, no
answer) ``RetryLater``, anything else (400, 403, 422, ...) ``GiveUp``.
Writes that should not race carry ``metadata.resourceVersion`` so the server
refuses a stale one with a conflict, which is then retried.
"""

from __future__ import annotations

import logging
from pathlib import Path

import kopf
from kubernetes import client

from controllers import metrics
from controllers.errors import Conflict, GiveUp, NotFound, RetryLater
from kubesphere import kubeconfig
from kubesphere.errors import CredentialsError, KubeError
from kubesphere.resources import NAMESPACES, Obj, Resource
from kubesphere.rest import Rest

log = logging.getLogger(__name__)


def load_client(path: Path | None) -> client.ApiClient:
    """An API client from ``path``; else ``$KUBECONFIG``, the service account, ``~/.kube/config``."""
    try:
        return kubeconfig.api_client(path)
    except CredentialsError as exc:
        raise GiveUp(str(exc)) from exc


def connection_info(api: client.ApiClient) -> kopf.ConnectionInfo:
    """The same credentials, in the form kopf's login handler returns."""
    cfg = api.configuration
    scheme = token = None
    auth = kubeconfig.bearer_token(cfg)
    if auth:
        scheme, _, token = auth.partition(" ")
    return kopf.ConnectionInfo(
        server=cfg.host,
        ca_path=cfg.ssl_ca_cert or None,
        insecure=not cfg.verify_ssl,
        scheme=scheme or None,
        token=token or None,
        certificate_path=cfg.cert_file or None,
        private_key_path=cfg.key_file or None,
        default_namespace="default",
    )


def sorted_error(exc: KubeError) -> Exception:
    """The controllers' exception for an API failure (the shared rule decides retry or not)."""
    text = str(exc)
    if exc.status == 404:
        return NotFound(text)
    if exc.status == 409:
        return Conflict(text, delay=0.5)
    if exc.temporary:
        return RetryLater(text, delay=2.0)
    return GiveUp(text)


def _observe(verb: str, code: str) -> None:
    metrics.API_REQUESTS.labels(verb=verb, code=code).inc()


class Kube(Rest):
    """Thread-safe: the handlers call it from kopf's worker threads."""

    def __init__(self, api: client.ApiClient) -> None:
        super().__init__(api, translate=sorted_error, observe=_observe)

    def delete_labelled(self, res: Resource, labels: str) -> int:
        """Delete every object of ``res`` (in every namespace) carrying ``labels``."""
        count = 0
        for item in self.list(res, labels=labels):
            meta = item["metadata"]
            count += self.delete(res, meta["name"], namespace=meta.get("namespace"))
        return count

    # -- finalizers ----------------------------------------------------------------------------------

    def add_finalizer(self, res: Resource, obj: Obj, finalizer: str) -> Obj:
        meta = obj["metadata"]
        current = list(meta.get("finalizers") or [])
        if finalizer in current or meta.get("deletionTimestamp"):
            return obj
        patch = {
            "metadata": {"finalizers": [*current, finalizer], "resourceVersion": meta["resourceVersion"]}
        }
        return self.patch(res, meta["name"], patch, namespace=meta.get("namespace"))

    def remove_finalizer(
        self, res: Resource, name: str, finalizer: str, *, namespace: str | None = None
    ) -> None:
        obj = self.get(res, name, namespace=namespace)
        if obj is None:
            return
        meta = obj["metadata"]
        current = list(meta.get("finalizers") or [])
        if finalizer not in current:
            return
        rest = [f for f in current if f != finalizer]
        try:
            patch = {"metadata": {"finalizers": rest, "resourceVersion": meta["resourceVersion"]}}
            self.patch(res, name, patch, namespace=namespace)
        except NotFound:
            return

    def namespace_exists(self, name: str) -> bool:
        return self.get(NAMESPACES, name) is not None

"""The installer's one contact with the Kubernetes API.

Reads and watches the ClusterConfiguration, patches its status subresource,
posts Events about it; the leader-election Lease goes through the same client
(:mod:`kubesphere.leases`).  Calls are the shared platform client's
(:class:`kubesphere.rest.Rest`, a request timeout on each) and failures are
sorted by the shared rule into the installer's two kinds:
:class:`~installer.errors.TemporaryError` (409, 429, 5xx, no answer: retried
with backoff) and :class:`~installer.errors.PermanentError` (400, 403, 422:
retrying the same request cannot help).  Every write is counted by kind, so
benchmarks and metrics can tell a no-op reconcile from a busy one.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import urllib3
from kubernetes import client, watch
from kubernetes.client import ApiException

from installer.errors import ConfigurationError, InstallerError, PermanentError, TemporaryError
from kubesphere import kubeconfig
from kubesphere.errors import CredentialsError, KubeError
from kubesphere.resources import CLUSTERCONFIGURATIONS, EVENTS, NODES, Obj, now_rfc3339
from kubesphere.rest import Rest

log = logging.getLogger(__name__)

CC = CLUSTERCONFIGURATIONS
WATCH_SECONDS = 60


def connect(path: Path | None) -> client.ApiClient:
    """An API client from ``path``, else ``$KUBECONFIG``, the service account, ``~/.kube/config``."""
    try:
        return kubeconfig.api_client(path)
    except CredentialsError as exc:
        raise ConfigurationError(str(exc)) from exc


def sorted_error(exc: KubeError) -> InstallerError:
    """The installer's exception for an API failure, by the shared rule."""
    if exc.temporary:
        return TemporaryError(str(exc))
    return PermanentError(str(exc))


class Kube(Rest):
    def __init__(self, api: client.ApiClient, *, namespace: str, name: str) -> None:
        super().__init__(api, translate=sorted_error)
        self.namespace = namespace
        self.name = name
        self.custom = client.CustomObjectsApi(api)
        self.writes: Counter[str] = Counter()
        self._lock = threading.Lock()
        self.on_write: Callable[[str], None] | None = None

    def count(self, kind: str) -> None:
        """Count one write of ``kind`` (status, event, lease)."""
        with self._lock:
            self.writes[kind] += 1
        if self.on_write:
            self.on_write(kind)

    # -- the ClusterConfiguration ----------------------------------------------------
    def get_cc(self) -> Obj | None:
        return self.get(CC, self.name, namespace=self.namespace)

    def watch_cc(self, stop: threading.Event) -> Iterator[tuple[str, Obj]]:
        """Yield ``(event type, object)`` for our CR until ``stop`` is set.

        Each watch call is bounded (server-side timeout plus a client read
        timeout), restarted from the last resourceVersion, and re-listed when
        the server says the version is too old.
        """
        rv: str | None = None
        while not stop.is_set():
            if rv is None:
                obj = self.get_cc()
                yield ("SYNC", obj or {})
                rv = (obj or {}).get("metadata", {}).get("resourceVersion")
                if rv is None:
                    # No object yet: list to learn a resourceVersion to watch from.
                    _, rv = self.list_with_version(CC, namespace=self.namespace, page_size=1)
            w = watch.Watch()  # type: ignore[no-untyped-call]
            try:
                for event in w.stream(  # type: ignore[no-untyped-call]
                    self.custom.list_namespaced_custom_object,
                    CC.group,
                    CC.version,
                    self.namespace,
                    CC.plural,
                    field_selector=f"metadata.name={self.name}",
                    resource_version=rv,
                    allow_watch_bookmarks=True,
                    timeout_seconds=WATCH_SECONDS,
                    _request_timeout=WATCH_SECONDS + 15,
                ):
                    if stop.is_set():
                        w.stop()  # type: ignore[no-untyped-call]
                        return
                    kind, obj = event["type"], event["object"]
                    if kind == "ERROR":
                        rv = None  # "410 Gone" and friends: re-list
                        break
                    rv = obj.get("metadata", {}).get("resourceVersion", rv)
                    if kind != "BOOKMARK":
                        yield (kind, obj)
            except ApiException as exc:
                if exc.status == 410:
                    rv = None
                    continue
                log.warning("watch of %s/%s failed: %s; retrying", self.namespace, self.name, exc.reason)
                stop.wait(2)
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                log.warning("watch of %s/%s interrupted: %s; retrying", self.namespace, self.name, exc)
                stop.wait(2)

    def patch_status(self, patch: Obj) -> None:
        """Merge ``patch`` into the status subresource (``None`` values delete keys).

        A ClusterConfiguration that is gone is not an error (nothing to report
        to); a rejected patch raises :class:`PermanentError`.
        """
        written = self.call_unless(
            404,
            "PATCH",
            CC.path(namespace=self.namespace, name=self.name, subresource="status"),
            body={"status": patch},
            content_type="application/merge-patch+json",
        )
        if written is None:
            log.info("%s %s/%s is gone; status not written", CC.kind, self.namespace, self.name)
            return
        self.count("status")

    def post_event(self, cc: Obj, *, kind: str, reason: str, message: str) -> None:
        """A core/v1 Event about the ClusterConfiguration (shown by kubectl describe)."""
        meta = cc.get("metadata", {})
        stamp = now_rfc3339()
        body = {
            "metadata": {"generateName": f"{self.name}.", "namespace": self.namespace},
            "involvedObject": {
                "apiVersion": CC.api_version,
                "kind": CC.kind,
                "name": self.name,
                "namespace": self.namespace,
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "type": kind,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": "ks-installer"},
            "reportingComponent": "ks-installer",
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        try:
            self.create(EVENTS, body, namespace=self.namespace)
        except InstallerError as exc:
            # Events are best effort: never fail a reconcile because one could not be posted.
            log.warning("could not post event %s: %s", reason, exc)
            return
        self.count("event")

    def console_address(self, port: int) -> str:
        """``http://<first node's InternalIP>:<port>``, as ks-installer's banner says."""
        try:
            nodes = self.call("GET", NODES.path(), query=[("limit", "1")]).get("items") or []
        except InstallerError:
            nodes = []
        for node in nodes:
            for addr in (node.get("status") or {}).get("addresses") or []:
                if addr.get("type") == "InternalIP":
                    return f"http://{addr['address']}:{port}"
        return f"http://<node-ip>:{port}"

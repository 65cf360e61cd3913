"""The installer's one contact with the Kubernetes API.

Reads and watches the ClusterConfiguration, patches its status subresource,
posts Events about it, and reads and writes the leader-election Lease.
Every call is bounded by a request timeout; every write is counted by kind,
so benchmarks and metrics can tell a no-op reconcile from a busy one.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import urllib3
from kubernetes import client, config, watch
from kubernetes.client import ApiException

from installer.errors import TemporaryError

log = logging.getLogger(__name__)

GROUP = "installer.kubesphere.io"
VERSION = "v1alpha1"
PLURAL = "clusterconfigurations"
KIND = "ClusterConfiguration"
REQUEST_TIMEOUT = 30
WATCH_SECONDS = 60

Obj = dict[str, Any]


def now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def connect(kubeconfig: Path | None) -> client.ApiClient:
    """An API client from ``kubeconfig``, else the in-cluster service account."""
    if kubeconfig:
        api: client.ApiClient = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
        return api
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config()  # type: ignore[no-untyped-call]
    return client.ApiClient()


def _temporary(what: str, exc: Exception) -> TemporaryError:
    return TemporaryError(f"{what}: {exc}")


class Kube:
    def __init__(self, api: client.ApiClient, *, namespace: str, name: str) -> None:
        self.api = api
        self.namespace = namespace
        self.name = name
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        self.coordination = client.CoordinationV1Api(api)
        self.writes: Counter[str] = Counter()
        self._lock = threading.Lock()
        self.on_write: Callable[[str], None] | None = None

    def _count(self, kind: str) -> None:
        with self._lock:
            self.writes[kind] += 1
        if self.on_write:
            self.on_write(kind)

    # -- the ClusterConfiguration ----------------------------------------------------
    def get_cc(self) -> Obj | None:
        try:
            obj = cast(
                Obj,
                self.custom.get_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, PLURAL, self.name, _request_timeout=REQUEST_TIMEOUT
                ),
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise _temporary(f"reading {KIND} {self.namespace}/{self.name}", exc) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise _temporary(f"reading {KIND} {self.namespace}/{self.name}", exc) from exc
        return obj

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
                    listing: Obj = self.custom.list_namespaced_custom_object(  # type: ignore[assignment]
                        GROUP, VERSION, self.namespace, PLURAL, _request_timeout=REQUEST_TIMEOUT
                    )
                    rv = listing["metadata"]["resourceVersion"]
            w = watch.Watch()  # type: ignore[no-untyped-call]
            try:
                for event in w.stream(  # type: ignore[no-untyped-call]
                    self.custom.list_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    self.namespace,
                    PLURAL,
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
        """Merge ``patch`` into the status subresource (``None`` values delete keys)."""
        try:
            self.custom.patch_namespaced_custom_object_status(
                GROUP,
                VERSION,
                self.namespace,
                PLURAL,
                self.name,
                {"status": patch},
                _content_type="application/merge-patch+json",
                _request_timeout=REQUEST_TIMEOUT,
            )
        except ApiException as exc:
            if exc.status == 404:
                log.info("%s %s/%s is gone; status not written", KIND, self.namespace, self.name)
                return
            raise _temporary("patching status", exc) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise _temporary("patching status", exc) from exc
        self._count("status")

    def post_event(self, cc: Obj, *, kind: str, reason: str, message: str) -> None:
        """A core/v1 Event about the ClusterConfiguration (shown by kubectl describe)."""
        meta = cc.get("metadata", {})
        stamp = now_rfc3339()
        body = {
            "metadata": {"generateName": f"{self.name}.", "namespace": self.namespace},
            "involvedObject": {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": KIND,
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
            self.core.create_namespaced_event(
                self.namespace,
                body,  # type: ignore[arg-type]
                _request_timeout=REQUEST_TIMEOUT,
            )
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            # Events are best effort: never fail a reconcile because one could not be posted.
            log.warning("could not post event %s: %s", reason, exc)
            return
        self._count("event")

    def console_address(self, port: int) -> str:
        """``http://<first node's InternalIP>:<port>``, as ks-installer's banner says."""
        try:
            nodes = self.core.list_node(limit=1, _request_timeout=REQUEST_TIMEOUT).items
        except (ApiException, urllib3.exceptions.HTTPError, OSError):
            nodes = []
        for node in nodes:
            for addr in node.status.addresses if node.status and node.status.addresses else []:
                if addr.type == "InternalIP":
                    return f"http://{addr.address}:{port}"
        return f"http://<node-ip>:{port}"

    # -- leader election -----------------------------------------------------------
    def read_lease(self, name: str) -> client.V1Lease | None:
        try:
            return self.coordination.read_namespaced_lease(
                name, self.namespace, _request_timeout=REQUEST_TIMEOUT
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise _temporary("reading lease", exc) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise _temporary("reading lease", exc) from exc

    def write_lease(self, lease: client.V1Lease, *, create: bool) -> bool:
        """Create or replace ``lease``; False when another replica won the race."""
        try:
            if create:
                self.coordination.create_namespaced_lease(
                    self.namespace, lease, _request_timeout=REQUEST_TIMEOUT
                )
            else:
                assert lease.metadata is not None and lease.metadata.name
                self.coordination.replace_namespaced_lease(
                    lease.metadata.name, self.namespace, lease, _request_timeout=REQUEST_TIMEOUT
                )
        except ApiException as exc:
            if exc.status in (409, 422):
                return False
            raise _temporary("writing lease", exc) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise _temporary("writing lease", exc) from exc
        self._count("lease")
        return True

"""Watch-backed in-memory copies of Kubernetes resources (client-go's informer pattern).

An ``Informer`` lists one resource (paged), then watches from the list's
resourceVersion with bookmarks, applying each event to a dict keyed by
namespace/name plus label indexes.  A stream that ends or breaks is resumed
from the last version seen; ``410 Gone`` means that version left etcd's
window, so it lists again (and tells listeners what changed meanwhile).  A
resource whose CRD is not installed is empty and synced, and is retried.

``Caches`` owns the informers the server reads; requests never call the API
for reads.  Import these through ``apiserver.kube``.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import json
import logging
import random
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import aiohttp

from apiserver import kube

if TYPE_CHECKING:
    from apiserver.kube import KubeClient, Resource

log = logging.getLogger(__name__)

WORKSPACE_LABEL = "kubesphere.io/workspace"
USER_REF_LABEL = "iam.kubesphere.io/user-ref"
#: Labels ``Informer.list`` answers from an index rather than a scan.
INDEXED_LABELS = (WORKSPACE_LABEL, USER_REF_LABEL)

Key = tuple[str, str]
Listener = Callable[[str, dict[str, Any]], None]


class _Gone(Exception):
    """The watch's resourceVersion is too old: list again."""


def _key(obj: Mapping[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


class Informer:
    """One resource's objects in memory, kept current by list+watch."""

    def __init__(
        self,
        client: KubeClient,
        resource: Resource,
        *,
        indexed_labels: Iterable[str] = INDEXED_LABELS,
        retry_delay: float = 1.0,
        missing_retry: float = 30.0,
        watch_timeout: tuple[int, int] = (240, 420),
    ) -> None:
        self.resource = resource
        self.synced = asyncio.Event()
        self.resource_version = ""
        self.relists = 0
        self._client = client
        self._objects: dict[Key, dict[str, Any]] = {}
        self._by_namespace: dict[str, set[Key]] = {}
        self._indexed = tuple(indexed_labels)
        self._index: dict[str, dict[str, set[Key]]] = {label: {} for label in self._indexed}
        self._listeners: list[Listener] = []
        self._task: asyncio.Task[None] | None = None
        self._retry_delay = retry_delay
        self._missing_retry = missing_retry
        self._watch_timeout = watch_timeout
        self.watches = 0

    # -- reads -------------------------------------------------------------------------------
    def get(self, name: str, *, namespace: str | None = None) -> dict[str, Any] | None:
        return self._objects.get((namespace or "", name))

    def list(
        self, *, namespace: str | None = None, labels: Mapping[str, str] | None = None
    ) -> builtins.list[dict[str, Any]]:
        """Objects in ``namespace`` (all when None) whose labels equal ``labels``."""
        keys: set[Key] | None = None
        rest: dict[str, str] = {}
        for label, value in (labels or {}).items():
            if label in self._index:
                found = self._index[label].get(value, set())
                keys = set(found) if keys is None else keys & found
            else:
                rest[label] = value
        if namespace:
            in_ns = self._by_namespace.get(namespace, set())
            keys = set(in_ns) if keys is None else keys & in_ns
        objs = self._objects.values() if keys is None else (self._objects[k] for k in keys)
        if not rest:
            return list(objs)
        return [
            o for o in objs if all(((o["metadata"].get("labels") or {}).get(k)) == v for k, v in rest.items())
        ]

    def __len__(self) -> int:
        return len(self._objects)

    def add_listener(self, listener: Listener) -> None:
        """``listener(event_type, obj)`` for ADDED / MODIFIED / DELETED, called on the event loop."""
        self._listeners.append(listener)

    # -- store -------------------------------------------------------------------------------
    def _put(self, obj: dict[str, Any]) -> str:
        # managedFields is often the bulk of an object and nothing here reads it.
        (obj.get("metadata") or {}).pop("managedFields", None)
        key = _key(obj)
        old = self._objects.get(key)
        if old is not None:
            self._unindex(key, old)
        self._objects[key] = obj
        self._by_namespace.setdefault(key[0], set()).add(key)
        labels = (obj.get("metadata") or {}).get("labels") or {}
        for label in self._indexed:
            if label in labels:
                self._index[label].setdefault(str(labels[label]), set()).add(key)
        return "ADDED" if old is None else "MODIFIED"

    def _unindex(self, key: Key, obj: dict[str, Any]) -> None:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        for label in self._indexed:
            if label in labels:
                bucket = self._index[label].get(str(labels[label]))
                if bucket is not None:
                    bucket.discard(key)
                    if not bucket:
                        del self._index[label][str(labels[label])]

    def _remove(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        key = _key(obj)
        old = self._objects.pop(key, None)
        if old is not None:
            self._unindex(key, old)
            bucket = self._by_namespace.get(key[0])
            if bucket is not None:
                bucket.discard(key)
        return old

    def _notify(self, event: str, obj: dict[str, Any]) -> None:
        for listener in self._listeners:
            try:
                listener(event, obj)
            except Exception:
                log.exception("informer listener for %s failed", self.resource)

    def _replace(self, items: builtins.list[dict[str, Any]]) -> None:
        fresh = {_key(o) for o in items}
        for key in [k for k in self._objects if k not in fresh]:
            gone = self._remove(self._objects[key])
            if gone is not None:
                self._notify("DELETED", gone)
        for obj in items:
            old = self._objects.get(_key(obj))
            if old is not None and old.get("metadata", {}).get("resourceVersion") == obj["metadata"].get(
                "resourceVersion"
            ):
                continue
            self._notify(self._put(obj), obj)

    # -- list + watch ------------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"informer {self.resource}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        delay = self._retry_delay
        need_list = True
        while True:
            try:
                if need_list:
                    await self._list()
                    need_list = False
                await self._watch()
                delay = self._retry_delay
            except _Gone:
                log.info("watch of %s expired at %s; listing again", self.resource, self.resource_version)
                need_list = True
            except kube.KubeError as exc:
                if exc.status == 404:
                    # The CRD is not installed (yet): empty and synced, look again later.
                    self._replace([])
                    self.synced.set()
                    need_list = True
                    await asyncio.sleep(self._missing_retry)
                    continue
                log.warning("informer %s: %s; retrying in %.0fs", self.resource, exc.message, delay)
                need_list = need_list or exc.status != 503
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                log.warning(
                    "informer %s: watch broke (%s); resuming", self.resource, exc or type(exc).__name__
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def _list(self) -> None:
        items, version = await self._client.list_with_version(self.resource)
        self._replace(items)
        self.resource_version = version
        self.relists += 1
        self.synced.set()

    async def _watch(self) -> None:
        params = {
            "watch": "1",
            "resourceVersion": self.resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(random.randint(*self._watch_timeout)),
        }
        self.watches += 1
        async with self._client.open("GET", self.resource.path(), params=params, read_timeout=480.0) as resp:
            if resp.status == 410:
                raise _Gone()
            if resp.status >= 400:
                raise kube.KubeError.from_response(resp.status, await resp.read())
            buffer = b""
            async for chunk in resp.content.iter_any():
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        self._apply(json.loads(line))

    def _apply(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise _Gone()
            raise kube.KubeError(int(obj.get("code") or 500), obj)
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if kind == "BOOKMARK":
            if version:
                self.resource_version = str(version)
            return
        obj.setdefault("kind", self.resource.kind)
        obj.setdefault("apiVersion", self.resource.api_version)
        if kind in ("ADDED", "MODIFIED"):
            self._notify(self._put(obj), obj)
        elif kind == "DELETED":
            self._remove(obj)
            self._notify("DELETED", obj)
        if version:
            self.resource_version = str(version)


class Caches:
    """The informers the server reads, by Resource; ``start`` launches them."""

    def __init__(self, client: KubeClient, resources: Iterable[Resource]) -> None:
        self._client = client
        self._informers: dict[Resource, Informer] = {r: Informer(client, r) for r in resources}
        self._started = False
        self._lock = asyncio.Lock()

    def __getitem__(self, res: Resource) -> Informer:
        try:
            return self._informers[res]
        except KeyError:
            raise KeyError(f"{res} is not cached; use `await caches.informer(...)`") from None

    def __contains__(self, res: object) -> bool:
        return res in self._informers

    def __iter__(self) -> Any:
        return iter(self._informers.values())

    async def informer(self, res: Resource) -> Informer:
        """The informer for ``res``, started on first use and synced before it is returned."""
        async with self._lock:
            informer = self._informers.get(res)
            if informer is None:
                informer = self._informers[res] = Informer(self._client, res)
                if self._started:
                    informer.start()
        if not self._started:
            informer.start()
        await informer.synced.wait()
        return informer

    async def start(self) -> None:
        """Launch every informer; returns at once (``wait_synced`` / ``synced`` follow progress)."""
        self._started = True
        for informer in self._informers.values():
            informer.start()

    async def wait_synced(self, *, timeout: float | None = None) -> bool:
        waits = [i.synced.wait() for i in self._informers.values()]
        try:
            await asyncio.wait_for(asyncio.gather(*waits), timeout)
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        await asyncio.gather(*(i.stop() for i in self._informers.values()))
        self._started = False

    def synced(self) -> bool:
        return all(i.synced.is_set() for i in self._informers.values())

    def unsynced(self) -> builtins.list[str]:
        return [str(i.resource) for i in self._informers.values() if not i.synced.is_set()]

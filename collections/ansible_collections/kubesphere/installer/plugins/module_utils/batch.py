# Copyright: kubesphere-installer maintainers
# Apache License 2.0
"""Apply, patch or delete a batch of objects in one process, then wait for all of them.

The engine of the ``kubesphere.installer.apply`` action.  A role's task hands it every
object of a step (rendered templates, files, definitions) and it makes one server-side
apply per object in the given order, then waits for the whole batch at once: the
workloads of a step roll out side by side instead of one task (and one module start-up)
each.  Readiness follows kubernetes.core's ``wait: true`` rules, so a task converted
from ``kubernetes.core.k8s`` waits for the same thing.

Only plain dicts cross this module's edges; the client is kubernetes.core's (its auth
options and discovery cache), so this file holds no HTTP or configuration code.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.exceptions import CoreException
from kubernetes import watch
from kubernetes.dynamic.exceptions import DynamicApiError, NotFoundError, ResourceNotFoundError
from urllib3.util.retry import Retry

#: The wait options of the actions that wait (apply, info), and kubernetes.core's auth options.
COMMON_ARGS: dict[str, Any] = {
    "data": {"type": "bool", "default": False},
    "wait": {"type": "bool", "default": False},
    "wait_condition": {"type": "dict"},
    "wait_timeout": {"type": "int", "default": 600},
    "wait_sleep": {"type": "int", "default": 2},
    **AUTH_ARG_SPEC,
}

Obj = dict[str, Any]

#: Answers that say "ask again in a moment": a CRD's storage right after it is established
#: answers 429 (storage is (re)initializing) with Retry-After 1 for some 0.1 s.
_BUSY = (429, 503)
#: How long a request answered with one of _BUSY is tried again (quickly at first).
BUSY_RETRY_SECONDS = 60.0

#: Fields the server owns: two reads of an unchanged object may differ only in these.
_SERVER_FIELDS = ("resourceVersion", "managedFields", "generation", "uid", "creationTimestamp")


#: The host fact the apply action adds the objects it applied to; the inventory action writes it.
APPLIED_FACT = "ks_applied_objects"
#: In check mode, the host fact the apply action adds its results to (``ks-installer plan`` reads it
#: at the end of a run: tasks with ``no_log`` have their own results hidden). Paths, never values.
CHECKED_FACT = "ks_checked_objects"
_REF_FIELDS = ("apiVersion", "kind", "namespace", "name", "uid", "data")


def ref_of(obj: Obj) -> Obj:
    """The reference the record keeps of a live object."""
    meta = obj.get("metadata") or {}
    out = {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"), "name": meta.get("name")}
    out.update({k: meta[k] for k in ("namespace", "uid") if meta.get(k)})
    return out


def merge_refs(known: list[Obj], applied: list[Obj]) -> list[Obj]:
    """``known`` plus ``applied`` (references only), one entry per object, the latest uid kept.

    ``data: true`` marks an object that holds (or unlocks) the component's data: see removal.py.
    """
    out: dict[tuple[Any, ...], Obj] = {}
    for entry in list(known) + list(applied):
        ref_ = {k: entry[k] for k in _REF_FIELDS if entry.get(k)}
        out[(ref_.get("apiVersion"), ref_.get("kind"), ref_.get("namespace", ""), ref_.get("name"))] = ref_
    return list(out.values())


class BatchError(Exception):
    """A failure to report as the task's message (never with object data in it)."""


def ref(obj: Obj) -> str:
    """``Kind namespace/name`` (or ``Kind name``) for messages."""
    meta = obj.get("metadata") or {}
    where = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{obj.get('kind')} {where}{meta.get('name')}"


def documents(loaded: Iterable[Any]) -> list[Obj]:
    """The objects of parsed YAML documents: empty documents dropped, ``List`` kinds opened."""
    out: list[Obj] = []
    for doc in loaded:
        if doc is None:
            continue
        if isinstance(doc, list):
            out.extend(documents(doc))
        elif not isinstance(doc, dict):
            raise BatchError(f"a manifest document is a {type(doc).__name__}, not an object")
        elif doc.get("kind", "").endswith("List") and isinstance(doc.get("items"), list):
            out.extend(documents(doc["items"]))
        else:
            for field in ("apiVersion", "kind"):
                if not doc.get(field):
                    raise BatchError(f"an object has no {field}: {(doc.get('metadata') or {}).get('name')!r}")
            if not (doc.get("metadata") or {}).get("name"):
                raise BatchError(f"a {doc['kind']} has no metadata.name")
            out.append(doc)
    return out


# -- readiness (kubernetes.core's wait rules, on plain dicts) ---------------------------------------
def _status(obj: Obj) -> Obj:
    return obj.get("status") or {}


def _generation_seen(obj: Obj) -> bool:
    return _status(obj).get("observedGeneration") == (obj.get("metadata") or {}).get("generation")


def deployment_ready(obj: Obj) -> str | None:
    st, want = _status(obj), (obj.get("spec") or {}).get("replicas", 1)
    if not _generation_seen(obj):
        return "the controller has not seen the latest spec"
    if (st.get("replicas") or 0) != want or (st.get("availableReplicas") or 0) != want or st.get("unavailableReplicas"):
        return f"{st.get('availableReplicas') or 0}/{want} replicas available"
    return None


def statefulset_ready(obj: Obj) -> str | None:
    st, spec = _status(obj), obj.get("spec") or {}
    want = spec.get("replicas", 1)
    if not _generation_seen(obj):
        return "the controller has not seen the latest spec"
    if (spec.get("updateStrategy") or {}).get("type") == "OnDelete":
        return None if st.get("replicas") == want else f"{st.get('replicas') or 0}/{want} replicas"
    if st.get("updateRevision") != st.get("currentRevision") or (st.get("updatedReplicas") or 0) != want:
        return f"{st.get('updatedReplicas') or 0}/{want} replicas updated"
    if (st.get("readyReplicas") or 0) != want or st.get("replicas") != want:
        return f"{st.get('readyReplicas') or 0}/{want} replicas ready"
    return None


def daemonset_ready(obj: Obj) -> str | None:
    st = _status(obj)
    want = st.get("desiredNumberScheduled")
    if want is None or not _generation_seen(obj):
        return "the controller has not seen the latest spec"
    if (st.get("updatedNumberScheduled") or 0) != want or st.get("numberReady") != want or st.get("numberUnavailable"):
        return f"{st.get('numberReady') or 0}/{want} pods ready"
    return None


def pod_ready(obj: Obj) -> str | None:
    containers = _status(obj).get("containerStatuses")
    if containers is None or not all(c.get("ready") for c in containers):
        return f"phase {_status(obj).get('phase') or 'Pending'}, containers not ready"
    return None


def condition_met(condition: Obj) -> Callable[[Obj], str | None]:
    """A custom ``wait_condition``: ``{type, status (default "True"), reason (optional)}``."""
    want_status = str(condition.get("status", "True"))
    want_status = {"true": "True", "false": "False", "unknown": "Unknown"}.get(want_status.lower(), want_status)

    def check(obj: Obj) -> str | None:
        for cond in _status(obj).get("conditions") or []:
            if cond.get("type") == condition["type"]:
                if cond.get("status") == want_status and (
                    not condition.get("reason") or cond.get("reason") == condition["reason"]
                ):
                    return None
                detail = ": ".join(x for x in (cond.get("reason"), cond.get("message")) if x)
                return f"condition {condition['type']} is {cond.get('status')}" + (f" ({detail})" if detail else "")
        return f"no condition {condition['type']} yet"

    return check


READY: dict[str, Callable[[Obj], str | None]] = {
    "Deployment": deployment_ready,
    "StatefulSet": statefulset_ready,
    "DaemonSet": daemonset_ready,
    "Pod": pod_ready,
    "CustomResourceDefinition": condition_met({"type": "Established"}),
    "Job": condition_met({"type": "Complete"}),
}


def not_ready(obj: Obj, condition: Obj | None = None) -> str | None:
    """Why ``obj`` is not ready yet, or None when it is (kinds without a rule: once it exists)."""
    check = condition_met(condition) if condition else READY.get(obj.get("kind", ""))
    return check(obj) if check else None


def job_failed(obj: Obj) -> str | None:
    """A Job that failed for good will never become ready: say so instead of waiting it out."""
    if obj.get("kind") != "Job":
        return None
    for cond in _status(obj).get("conditions") or []:
        if cond.get("type") == "Failed" and cond.get("status") == "True":
            return f"failed: {cond.get('reason') or ''} {cond.get('message') or ''}".strip()
    return None


def _strip(obj: Obj) -> Obj:
    """``obj`` without what the server owns: ``status`` and the server's metadata fields."""
    out = {k: v for k, v in obj.items() if k != "status"}
    out["metadata"] = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in _SERVER_FIELDS}
    return out


def same_object(before: Obj | None, after: Obj) -> bool:
    """Whether ``after`` (the answer to a dry run) leaves ``before`` as it was."""
    if before is None:
        return False
    return _strip(before) == _strip(after)


def _key(path: str, key: Any) -> str:
    text = str(key)
    if text.replace("_", "").replace("-", "").isalnum():
        return f"{path}.{text}" if path else text
    return f"{path}[{json.dumps(text)}]"


def _diff(before: Any, after: Any, path: str, out: list[str]) -> None:
    if isinstance(before, dict) and isinstance(after, dict):
        for key in sorted(before.keys() | after.keys(), key=str):
            if before.get(key) != after.get(key) or (key in before) != (key in after):
                _diff(before.get(key), after.get(key), _key(path, key), out)
    elif isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        for i, (b, a) in enumerate(zip(before, after)):
            if a != b:
                _diff(b, a, f"{path}[{i}]", out)
    else:
        out.append(path)


def diff_paths(before: Any, after: Any, path: str = "") -> list[str]:
    """The paths (below ``path``) at which ``after`` differs from ``before``; never values."""
    if before == after:
        return []
    out: list[str] = []
    _diff(before, after, path, out)
    return out


def changed_fields(before: Obj | None, after: Obj) -> list[str]:
    """The field paths in which ``after`` differs from ``before`` (``spec.replicas``,
    ``metadata.labels["app.kubernetes.io/name"]``, ``data.password``), the server's own fields
    and ``status`` left out.  Paths only, never values: a Secret's data stays out of results."""
    if before is None:
        return []
    return diff_paths(_strip(before), _strip(after))


def backoff(first: float, cap: float) -> Iterator[float]:
    """Poll intervals: quick at first (KWOK and small workloads are ready in a second), then ``cap``."""
    delay = first
    while True:
        yield delay
        delay = min(cap, delay * 2)


def wait_all(
    pending: dict[str, Callable[[], str | None]],
    *,
    timeout: float,
    sleep: float,
    clock: Callable[[], float] = time.monotonic,
    pause: Callable[[float], None] = time.sleep,
    intervals: Iterator[float] | None = None,
) -> None:
    """Call every check until each returns None; raise BatchError naming the laggards on timeout.

    A check raises BatchError itself for a state that cannot get better (a failed Job).
    Between rounds it pauses for the next of ``intervals`` (default: :func:`backoff` from
    0.2 s to ``sleep``); a ``pause`` that returns early, when something changed, is fine.
    """
    deadline = clock() + timeout
    reasons: dict[str, str] = {}
    if intervals is None:
        intervals = backoff(min(0.2, sleep), max(sleep, 0.2))
    while True:
        for key in list(pending):
            why = pending[key]()
            if why is None:
                del pending[key]
                reasons.pop(key, None)
            else:
                reasons[key] = why
        if not pending:
            return
        if clock() >= deadline:
            laggards = "; ".join(f"{key}: {reasons[key]}" for key in pending)
            raise BatchError(f"not ready after {timeout:g} s: {laggards}")
        pause(min(next(intervals), max(0.0, deadline - clock())))


# -- the calls ---------------------------------------------------------------------------------
class Batch:
    """Server-side apply, merge patch and delete through kubernetes.core's client.

    ``client`` is what ``kubernetes.core``'s ``get_api_client`` returns (its ``resource``
    discovery and the dynamic client under it).  Every method takes and returns plain dicts.
    """

    def __init__(
        self,
        client: Any,
        *,
        field_manager: str,
        force_conflicts: bool = True,
        dry_run: bool = False,
        namespace: str | None = None,
        timeout: float = 600,
        sleep: float = 2,
    ) -> None:
        self.client = client
        self.field_manager = field_manager
        self.force_conflicts = force_conflicts
        self.dry_run = dry_run
        self.namespace = namespace
        self.timeout = timeout
        self.sleep = sleep
        # CRDs this batch applied, by (group, kind): their objects may follow in the same batch.
        self._crds: dict[tuple[str, str], Obj] = {}
        # Live objects read ahead by one list call per kind and namespace (see prefetch).
        self._known: dict[tuple[str, str, str], dict[str, Obj]] = {}

    @classmethod
    def connect(cls, params: dict[str, Any], *, dry_run: bool, field_manager: str = "ks-installer",
                force_conflicts: bool = True) -> Batch:
        """A batch over a client built from kubernetes.core's auth options in ``params``."""
        auth = {k: params[k] for k in AUTH_ARG_SPEC if params.get(k) is not None}
        try:
            client = get_api_client(**auth)
        except CoreException as exc:
            raise BatchError(f"Kubernetes client: {exc}") from None
        _no_retry_after(client)
        return cls(
            client, field_manager=field_manager, force_conflicts=force_conflicts, dry_run=dry_run,
            namespace=params.get("namespace"), timeout=params.get("wait_timeout", 600),
            sleep=params.get("wait_sleep", 2),
        )

    # -- discovery -------------------------------------------------------------------------------
    def resource(self, obj: Obj) -> Any:
        api_version, kind = obj["apiVersion"], obj["kind"]
        group = api_version.rpartition("/")[0]
        crd = self._crds.get((group, kind))
        if crd is not None and not self.dry_run:
            # Served once Established; discovery may lag a moment behind that.
            wait_all({ref(crd): lambda: self._established(crd)}, timeout=self.timeout, sleep=self.sleep)
        try:
            found = [self.client.resource(kind, api_version)]
        except ResourceNotFoundError:
            if crd is None or self.dry_run:
                raise BatchError(f"{ref(obj)}: the cluster serves no {kind} in {api_version}") from None
            found = []
        if found:
            self._crds.pop((group, kind), None)
            return found[0]

        def served() -> str | None:
            self.client.client.resources.invalidate_cache()
            try:
                found.append(self.client.resource(kind, api_version))
                return None
            except ResourceNotFoundError:
                return f"{kind} is not served yet"

        wait_all({ref(obj): served}, timeout=self.timeout, sleep=self.sleep)
        self._crds.pop((group, kind), None)
        return found[-1]

    def _established(self, crd: Obj) -> str | None:
        live = self.get(crd)
        return "not created" if live is None else not_ready(live)

    def _place(self, res: Any, obj: Obj) -> tuple[str, str | None]:
        meta = obj.get("metadata") or {}
        namespace = meta.get("namespace") if res.namespaced else None
        if res.namespaced and not namespace:
            namespace = self.namespace
            if not namespace:
                raise BatchError(f"{ref(obj)}: a namespaced object needs metadata.namespace (or the task's namespace)")
            obj.setdefault("metadata", {})["namespace"] = namespace
        return meta["name"], namespace

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, missing_ok: bool = False, **kwargs: Any) -> Obj | None:
        deadline = time.monotonic() + BUSY_RETRY_SECONDS
        pauses = backoff(0.05, 1.0)
        while True:
            try:
                answer = fn(*args, **kwargs)
            except NotFoundError:
                if missing_ok:
                    return None
                raise BatchError(f"{what}: not found") from None
            except DynamicApiError as exc:
                if getattr(exc, "status", None) in _BUSY and time.monotonic() < deadline:
                    time.sleep(next(pauses))
                    continue
                raise BatchError(f"{what}: {describe(exc)}") from None
            return answer.to_dict() if hasattr(answer, "to_dict") else dict(answer)

    def _must(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Obj:
        answer = self._call(what, fn, *args, **kwargs)
        assert answer is not None
        return answer

    # -- reads -----------------------------------------------------------------------------------
    def get(self, obj: Obj) -> Obj | None:
        res = self.resource(obj)
        name, namespace = self._place(res, obj)
        return self._call(ref(obj), self.client.client.get, res, name=name, namespace=namespace, missing_ok=True)

    def prefetch(self, objs: list[Obj], *, at_least: int = 3) -> None:
        """Read the live state of many objects of one kind with one list call instead of a get each.

        Only kinds the cluster serves already (a CRD of the same batch is not there yet) and
        groups of ``at_least`` objects; ``apply`` falls back to a get for the rest.
        """
        groups: dict[tuple[str, str, str], int] = {}
        for obj in objs:
            key = (obj["apiVersion"], obj["kind"], (obj.get("metadata") or {}).get("namespace") or self.namespace or "")
            groups[key] = groups.get(key, 0) + 1
        for (api_version, kind, namespace), count in groups.items():
            if count < at_least:
                continue
            res = self.served(kind, api_version)
            if res is None:
                continue
            items = self.list(api_version, kind, namespace=namespace or None, selectors=[])
            ns_key = namespace if res.namespaced else ""
            self._known[(api_version, kind, ns_key)] = {i["metadata"]["name"]: i for i in items}

    def kinds(self) -> list[tuple[str, str]]:
        """``(apiVersion, kind)`` of every kind the cluster serves that can be listed and deleted,
        at its preferred version (Events, Namespaces and subresources left out)."""
        out: dict[tuple[str, str], str] = {}
        for res in self.client.client.resources.search():
            name, verbs = getattr(res, "name", None) or "", set(getattr(res, "verbs", None) or [])
            if not name or "/" in name or not {"list", "delete"} <= verbs or res.kind in ("Event", "Namespace"):
                continue
            if getattr(res, "preferred", True) or (res.group, res.kind) not in out:
                out[(res.group, res.kind)] = res.group_version
        return sorted((api_version, kind) for (_, kind), api_version in out.items())

    def served(self, kind: str, api_version: str) -> Any:
        """The kind's resource, re-reading discovery once when the cached copy lacks it (a new CRD)."""
        for attempt in range(2):
            try:
                return self.client.resource(kind, api_version)
            except ResourceNotFoundError:
                if attempt == 0:
                    self.client.client.resources.invalidate_cache()
        return None

    def _before(self, res: Any, obj: Obj) -> Obj | None:
        meta = obj.get("metadata") or {}
        ns_key = (meta.get("namespace") or "") if res.namespaced else ""
        known = self._known.get((obj["apiVersion"], obj["kind"], ns_key))
        if known is not None:
            return known.get(meta["name"])
        return self.get(obj)

    # -- writes ----------------------------------------------------------------------------------
    def apply(self, obj: Obj) -> tuple[str, Obj]:
        """Server-side apply; (method, object as the server answered)."""
        method, after, _ = self.apply_fields(obj)
        return method, after

    def apply_fields(self, obj: Obj) -> tuple[str, Obj, list[str]]:
        """:meth:`apply`, plus the field paths it changes (see :func:`changed_fields`)."""
        res = self.resource(obj)
        self._place(res, obj)  # the namespace first: the read-ahead is keyed by it
        answer = self._write(res, obj, self._before(res, obj), self.client.client.server_side_apply,
                             force_conflicts=self.force_conflicts)
        if obj["kind"] == "CustomResourceDefinition":
            spec = obj.get("spec") or {}
            self._crds[(spec.get("group", ""), (spec.get("names") or {}).get("kind", ""))] = obj
        return answer

    def patch(self, obj: Obj) -> tuple[str, Obj]:
        """JSON merge patch of an existing object (fields the patch names; nothing else)."""
        method, after, _ = self.patch_fields(obj)
        return method, after

    def patch_fields(self, obj: Obj) -> tuple[str, Obj, list[str]]:
        """:meth:`patch`, plus the field paths it changes."""
        res = self.resource(obj)
        before = self.get(obj)
        if before is None:
            raise BatchError(f"{ref(obj)}: not found, nothing to patch")
        return self._write(res, obj, before, self.client.client.patch, content_type="application/merge-patch+json")

    def _write(self, res: Any, obj: Obj, before: Obj | None, call: Callable[..., Any],
               **kwargs: Any) -> tuple[str, Obj, list[str]]:
        name, namespace = self._place(res, obj)
        after = self._must(
            ref(obj), call, res, body=obj, name=name, namespace=namespace, field_manager=self.field_manager,
            dry_run="All" if self.dry_run else None, **kwargs,
        )
        method = _method(before, after, dry_run=self.dry_run)
        return method, after, changed_fields(before, after) if method == "changed" else []

    def delete(self, obj: Obj, *, propagation: str | None = None, uid: str | None = None) -> str:
        """``deleted``, or ``absent`` when there was nothing to delete.

        With ``uid``, only that very object: one re-created under the name since is refused (409).
        """
        res = self.resource(obj)
        name, namespace = self._place(res, obj)
        body: Obj = {}
        if propagation:
            body["propagationPolicy"] = propagation
        if uid:
            body["preconditions"] = {"uid": uid}
        if body and self.dry_run:
            # A DELETE with a body takes its options from the body alone: the dryRun query
            # parameter would be ignored, and the object deleted for real.
            body["dryRun"] = ["All"]
        gone = self._call(
            ref(obj),
            self.client.client.delete,
            res,
            name=name,
            namespace=namespace,
            body=body or None,
            dry_run="All" if self.dry_run else None,
            missing_ok=True,
        )
        return "absent" if gone is None else "deleted"

    def list(self, api_version: str, kind: str, *, namespace: str | None, selectors: list[str]) -> list[Obj]:
        res = self.resource({"apiVersion": api_version, "kind": kind, "metadata": {"name": "*"}})
        listed = self._must(
            f"{kind} list",
            self.client.client.get,
            res,
            namespace=namespace if res.namespaced else None,
            label_selector=",".join(selectors) or None,
        )
        items = listed.get("items") or []
        for item in items:
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", kind)
        return items

    # -- waits -----------------------------------------------------------------------------------
    def wait_ready(self, objs: list[Obj], *, condition: Obj | None = None) -> None:
        """Wait for every object at once, each by its kind's rule (or ``condition``)."""
        # Between rounds, a watch on one object still pending ends the pause as soon as it
        # changes: the wait ends when the last object is ready, not at the next poll after.
        seen: dict[str, tuple[Obj, str]] = {}

        def check(obj: Obj) -> Callable[[], str | None]:
            def probe() -> str | None:
                live = self.get(obj)
                if live is None:
                    seen.pop(ref(obj), None)
                    return "not found"
                # A failed Job never completes: unless the wait is for that very failure, stop.
                failed = None if (condition or {}).get("type") == "Failed" else job_failed(live)
                if failed:
                    raise BatchError(f"{ref(obj)}: {failed}")
                version = (live.get("metadata") or {}).get("resourceVersion")
                if version:
                    seen[ref(obj)] = (obj, str(version))
                return not_ready(live, condition)

            return probe

        pending = {ref(o): check(o) for o in objs}
        wait_all(
            pending, timeout=self.timeout, sleep=self.sleep,
            pause=lambda seconds: self.until_changed([seen[k] for k in pending if k in seen], seconds),
            intervals=itertools.repeat(max(self.sleep, 0.2)),
        )

    def until_changed(self, watched: list[tuple[Obj, str]], seconds: float) -> None:
        """Return when the first of ``watched`` (object, resourceVersion read) changes, or after ``seconds``.

        Only the first: the others are read again in the next round anyway, and the wait ends
        once the last one is ready, which is then the one watched. Without an object to watch
        (none found yet), or when the watch is refused or cut, it sleeps a short poll instead.
        """
        started = time.monotonic()
        if watched and seconds > 0:
            obj, version = watched[0]
            watcher = watch.Watch()
            try:
                res = self.resource(obj)
                name, namespace = self._place(res, obj)
                for event in self.client.client.watch(
                    res, namespace=namespace, name=name, resource_version=version,
                    timeout=max(1, math.ceil(seconds)), watcher=watcher,
                ):
                    if event.get("type") == "ERROR":  # e.g. 410 Gone: that version is too old
                        break
                    return
                else:
                    if time.monotonic() - started >= seconds:
                        return  # the server ended the watch at its timeout: nothing changed
            except Exception:  # any failure of the watch falls back to polling
                pass
            finally:
                watcher.stop()
        time.sleep(max(0.0, min(0.2, seconds - (time.monotonic() - started))))

    def wait_gone(self, objs: list[Obj]) -> None:
        def check(obj: Obj) -> Callable[[], str | None]:
            return lambda: None if self.get(obj) is None else "still there (finalizers or dependents)"

        wait_all({ref(o): check(o) for o in objs}, timeout=self.timeout, sleep=self.sleep)


def _no_retry_after(client: Any) -> None:
    """Leave answers that say "retry after" to :meth:`Batch._call` (which asks again within 0.05 s).

    urllib3 otherwise sleeps the whole Retry-After (1 s, where the server needs about 0.1 s)
    up to three times per request. Connection errors are still retried by urllib3.
    """
    try:
        pool_manager = client.client.client.rest_client.pool_manager
    except AttributeError:  # not the kubernetes client's layout: leave it as it is
        return
    retries = pool_manager.connection_pool_kw.get("retries")
    if isinstance(retries, Retry) and not retries.respect_retry_after_header:
        return
    pool_manager.connection_pool_kw["retries"] = Retry(total=3, respect_retry_after_header=False)
    pool_manager.clear()  # pools made before this take their retries from the old setting


def _method(before: Obj | None, after: Obj, *, dry_run: bool) -> str:
    if before is None:
        return "created"
    if dry_run:
        return "unchanged" if same_object(before, after) else "changed"
    same = (before.get("metadata") or {}).get("resourceVersion") == (after.get("metadata") or {}).get("resourceVersion")
    return "unchanged" if same else "changed"


def describe(exc: Any) -> str:
    """``422 Invalid: <the server's message>`` from a dynamic client error (no request body in it)."""
    status, reason, message = getattr(exc, "status", None), getattr(exc, "reason", ""), ""
    body = getattr(exc, "body", None)
    if body:
        try:
            parsed = json.loads(body)
            message = parsed.get("message") or ""
            reason = parsed.get("reason") or reason
        except (TypeError, ValueError):
            message = str(body)[:500]
    return " ".join(str(x) for x in (status, reason) if x) + (f": {message}" if message else "")

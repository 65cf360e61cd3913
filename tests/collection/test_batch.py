"""The apply action's engine, pure parts: documents, readiness rules, change detection, waits."""

from __future__ import annotations

from typing import Any

import pytest
from ansible_collections.kubesphere.installer.plugins.action.apply import _masked
from ansible_collections.kubesphere.installer.plugins.module_utils import batch
from ansible_collections.kubesphere.installer.plugins.module_utils.batch import BatchError
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic.exceptions import DynamicApiError


def deployment(want: int = 2, **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d", "namespace": "n", "generation": 3},
        "spec": {"replicas": want},
        "status": status,
    }


def test_documents_open_lists_and_drop_empty_documents() -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}
    sa = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "b"}}
    listed = {"apiVersion": "v1", "kind": "List", "items": [sa]}
    assert batch.documents([None, cm, listed, [cm]]) == [cm, sa, cm]


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"kind": "ConfigMap", "metadata": {"name": "a"}}, "no apiVersion"),
        ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}, "ConfigMap has no metadata.name"),
        ("text", "is a str, not an object"),
    ],
)
def test_documents_refuse_what_is_not_an_object(doc: Any, message: str) -> None:
    with pytest.raises(BatchError, match=message):
        batch.documents([doc])


def test_deployment_is_ready_once_every_replica_of_the_latest_spec_is_available() -> None:
    assert batch.not_ready(deployment(observedGeneration=2, replicas=2, availableReplicas=2)) == (
        "the controller has not seen the latest spec"
    )
    assert batch.not_ready(deployment(observedGeneration=3, replicas=2, availableReplicas=1)) == (
        "1/2 replicas available"
    )
    assert batch.not_ready(deployment(observedGeneration=3, replicas=2, availableReplicas=2)) is None
    # Scaled to zero: ready with no replicas at all.
    assert batch.not_ready(deployment(0, observedGeneration=3)) is None


def test_statefulset_rolling_update_waits_for_the_update_revision() -> None:
    sts = {
        "kind": "StatefulSet",
        "metadata": {"generation": 1},
        "spec": {"replicas": 1, "updateStrategy": {"type": "RollingUpdate"}},
        "status": {"observedGeneration": 1, "replicas": 1, "readyReplicas": 1, "updatedReplicas": 1,
                   "currentRevision": "a", "updateRevision": "b"},
    }  # fmt: skip
    assert batch.not_ready(sts) == "1/1 replicas updated"
    sts["status"]["currentRevision"] = "b"
    assert batch.not_ready(sts) is None


def test_daemonset_and_pod_rules() -> None:
    ds = {"kind": "DaemonSet", "metadata": {"generation": 1},
          "status": {"observedGeneration": 1, "desiredNumberScheduled": 3, "updatedNumberScheduled": 3,
                     "numberReady": 2}}  # fmt: skip
    assert batch.not_ready(ds) == "2/3 pods ready"
    ds["status"]["numberReady"] = 3
    assert batch.not_ready(ds) is None
    pod = {
        "kind": "Pod",
        "status": {"phase": "Running", "containerStatuses": [{"ready": True}, {"ready": False}]},
    }
    assert batch.not_ready(pod) == "phase Running, containers not ready"


def test_conditions_crds_and_custom_ones() -> None:
    crd = {
        "kind": "CustomResourceDefinition",
        "status": {
            "conditions": [
                {"type": "Established", "status": "False", "reason": "Installing", "message": "not yet"}
            ]
        },
    }
    assert batch.not_ready(crd) == "condition Established is False (Installing: not yet)"
    crd["status"]["conditions"][0]["status"] = "True"
    assert batch.not_ready(crd) is None
    # A custom condition replaces the kind's rule; "true" is accepted for "True".
    anything = {"kind": "Widget", "status": {"conditions": [{"type": "Synced", "status": "True"}]}}
    assert batch.not_ready(anything, {"type": "Synced", "status": "true"}) is None
    assert batch.not_ready(anything, {"type": "Healthy"}) == "no condition Healthy yet"
    assert batch.not_ready({"kind": "ConfigMap"}) is None  # exists: ready


def test_a_failed_job_is_reported_not_waited_out() -> None:
    job = {
        "kind": "Job",
        "status": {
            "conditions": [
                {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "6 tries"}
            ]
        },
    }
    assert batch.job_failed(job) == "failed: BackoffLimitExceeded 6 tries"
    assert batch.job_failed({"kind": "Job", "status": {}}) is None


def test_a_dry_run_answer_equal_but_for_server_fields_is_no_change() -> None:
    before = {"kind": "ConfigMap", "metadata": {"name": "a", "resourceVersion": "1", "managedFields": [1]},
              "data": {"x": "1"}}  # fmt: skip
    same = {"kind": "ConfigMap", "metadata": {"name": "a", "resourceVersion": "1", "managedFields": [2]},
            "data": {"x": "1"}}  # fmt: skip
    other = {**same, "data": {"x": "2"}}
    assert batch.same_object(before, same)
    assert not batch.same_object(before, other)
    assert not batch.same_object(None, same)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.pauses: list[float] = []

    def __call__(self) -> float:
        return self.now

    def pause(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds


def test_wait_all_polls_quickly_first_then_at_the_cap_and_names_the_laggards() -> None:
    clock = FakeClock()
    ready_at = {"a": 0.5, "b": 1e9}
    checks = {k: (lambda k=k: None if clock.now >= ready_at[k] else f"{k} not yet") for k in ready_at}
    with pytest.raises(BatchError, match=r"not ready after 5 s: b: b not yet$"):
        batch.wait_all(dict(checks), timeout=5, sleep=2, clock=clock, pause=clock.pause)
    assert clock.pauses[:4] == [0.2, 0.4, 0.8, 1.6]
    assert max(clock.pauses) == 2


def test_wait_all_returns_once_every_check_passes() -> None:
    clock = FakeClock()
    calls = {"a": 0}

    def a() -> str | None:
        calls["a"] += 1
        return None if calls["a"] >= 3 else "no"

    batch.wait_all({"a": a}, timeout=60, sleep=2, clock=clock, pause=clock.pause)
    assert calls["a"] == 3
    assert clock.now == pytest.approx(0.6)


def test_recorded_secrets_carry_no_values() -> None:
    secret = {
        "kind": "Secret",
        "metadata": {"name": "s"},
        "data": {"k": "c2VjcmV0"},
        "stringData": {"p": "pw"},
    }
    masked = _masked(secret)
    assert "c2VjcmV0" not in str(masked) and "pw" not in str(masked.get("stringData"))
    assert masked["data"].keys() == {"k"} and secret["data"]["k"] == "c2VjcmV0"


def test_wait_all_takes_the_pause_schedule_it_is_given() -> None:
    clock = FakeClock()
    calls = {"a": 0}

    def a() -> str | None:
        calls["a"] += 1
        return None if calls["a"] >= 4 else "no"

    intervals = iter([1.0, 1.0, 1.0])
    batch.wait_all({"a": a}, timeout=60, sleep=2, clock=clock, pause=clock.pause, intervals=intervals)
    assert clock.pauses == [1.0, 1.0, 1.0]


class _Resource:
    namespaced = True


class _Dynamic:
    """What until_changed uses of the dynamic client: watch, answering with ``events`` (or raising)."""

    def __init__(self, events: list[dict[str, Any]] | Exception) -> None:
        self.events = events
        self.watched: list[dict[str, Any]] = []

    def watch(self, res: Any, **kwargs: Any) -> Any:
        self.watched.append(kwargs)
        if isinstance(self.events, Exception):
            raise self.events
        yield from self.events


class _Client:
    def __init__(self, dynamic: _Dynamic) -> None:
        self.client = dynamic

    def resource(self, kind: str, api_version: str) -> _Resource:
        return _Resource()


@pytest.mark.parametrize(
    ("events", "polls"),
    [
        ([{"type": "MODIFIED", "object": {}}], False),  # a change ends the pause at once
        ([{"type": "ERROR", "object": {"code": 410}}], True),  # a version too old: poll instead
        (RuntimeError("the watch was cut"), True),
    ],
)
def test_until_changed_watches_the_first_pending_object_and_polls_when_it_cannot(
    monkeypatch: pytest.MonkeyPatch, events: Any, polls: bool
) -> None:
    slept: list[float] = []
    monkeypatch.setattr(batch.time, "sleep", slept.append)
    dynamic = _Dynamic(events)
    b = batch.Batch(_Client(dynamic), field_manager="t")
    first, second = deployment(), {**deployment(), "metadata": {"name": "e", "namespace": "n"}}
    b.until_changed([(first, "41"), (second, "42")], 2.0)
    [watched] = dynamic.watched
    assert {k: v for k, v in watched.items() if k != "watcher"} == {
        "namespace": "n",
        "name": "d",
        "resource_version": "41",
        "timeout": 2,
    }
    assert bool(slept) is polls and all(0 < s <= 0.2 for s in slept)


def test_until_changed_without_an_object_to_watch_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(batch.time, "sleep", slept.append)
    dynamic = _Dynamic([])
    batch.Batch(_Client(dynamic), field_manager="t").until_changed([], 2.0)
    assert dynamic.watched == [] and len(slept) == 1 and 0 < slept[0] <= 0.2


@pytest.mark.parametrize("status", [429, 503])
def test_a_busy_answer_is_asked_again_at_once_not_after_its_retry_after(
    monkeypatch: pytest.MonkeyPatch, status: int
) -> None:
    slept: list[float] = []
    monkeypatch.setattr(batch.time, "sleep", slept.append)
    answers: list[Any] = [status, status, {"kind": "ConfigMap"}]

    def call() -> Any:
        answer = answers.pop(0)
        if isinstance(answer, int):
            raise DynamicApiError(ApiException(status=answer, reason="storage is (re)initializing"))
        return answer

    b = batch.Batch(None, field_manager="t")
    assert b._call("ConfigMap n/c", call) == {"kind": "ConfigMap"}
    assert slept == [0.05, 0.1]


def test_a_refusal_is_not_asked_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batch.time, "sleep", lambda _s: pytest.fail("slept"))

    def call() -> Any:
        raise DynamicApiError(ApiException(status=422, reason="Invalid"))

    with pytest.raises(BatchError, match=r"^ConfigMap n/c: 422 Invalid$"):
        batch.Batch(None, field_manager="t")._call("ConfigMap n/c", call)


def test_changed_fields_are_paths_without_server_fields_or_values() -> None:
    before = deployment(2, replicas=2)
    before["metadata"].update(resourceVersion="7", uid="u", managedFields=[{"manager": "x"}])
    before["metadata"]["labels"] = {"app.kubernetes.io/name": "a", "keep": "1"}
    before["spec"]["template"] = {"spec": {"containers": [{"name": "c", "image": "i:1"}, {"name": "d"}]}}
    after = {**before, "metadata": {**before["metadata"], "resourceVersion": "8", "generation": 4}}
    after["metadata"]["labels"] = {"app.kubernetes.io/name": "b", "keep": "1"}
    after["spec"] = {"replicas": 3, "template": {"spec": {"containers": [{"name": "c", "image": "i:2"}]}}}
    after["status"] = {"replicas": 3}
    assert batch.changed_fields(before, after) == [
        'metadata.labels["app.kubernetes.io/name"]',
        "spec.replicas",
        "spec.template.spec.containers",  # a list that changed length is one path
    ]
    same_length = {**after, "spec": {**after["spec"], "template": {"spec": {"containers": [
        {"name": "c", "image": "i:3"}]}}}}  # fmt: skip
    assert batch.changed_fields(after, same_length) == ["spec.template.spec.containers[0].image"]
    assert batch.changed_fields(None, after) == []
    assert batch.changed_fields(before, before) == []


def test_changed_fields_of_a_secret_name_keys_only() -> None:
    before = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"password": "b2xk"}}
    after = {**before, "data": {"password": "bmV3", "token": "dA=="}}
    fields = batch.changed_fields(before, after)
    assert fields == ["data.password", "data.token"]
    assert not any("bmV3" in f or "b2xk" in f for f in fields)
    assert batch.diff_paths({"a": {"b": 1}}, {"a": {"b": 2}}, 'data["k.yaml"]') == ['data["k.yaml"].a.b']

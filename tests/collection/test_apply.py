"""The apply and info actions against the local cluster, through real ansible-playbook runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible_collections.kubesphere.installer.plugins.module_utils.batch import Batch
from kubernetes import client

from tests.conftest import Cluster

pytestmark = pytest.mark.cluster
REPO = Path(__file__).resolve().parents[2]


def play(
    cluster: Cluster, tmp_path: Path, tasks: list[dict[str, Any]], *, check: bool = False
) -> dict[str, Any]:
    """Run ``tasks`` against the cluster; the json callback's record of the run."""
    path = tmp_path / f"play-{uuid.uuid4().hex[:6]}.yml"
    path.write_text(
        yaml.safe_dump(
            [
                {
                    "hosts": "localhost",
                    "gather_facts": False,
                    "tasks": tasks,
                    "module_defaults": {
                        "group/kubesphere.installer.k8s": {"kubeconfig": str(cluster.kubeconfig)}
                    },
                }
            ]
        )
    )
    env = dict(
        os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_CONFIG=str(REPO / "ansible.cfg")
    )
    cmd = [
        str(Path(sys.executable).with_name("ansible-playbook")),
        "-i",
        "localhost,",
        "-c",
        "local",
        str(path),
    ]
    done = subprocess.run(
        cmd + (["--check"] if check else []), capture_output=True, text=True, env=env, cwd=REPO
    )
    record: dict[str, Any] = json.loads(done.stdout)
    return record


def task_results(record: dict[str, Any]) -> list[dict[str, Any]]:
    return [t["hosts"]["localhost"] for p in record["plays"] for t in p["tasks"]]


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    name = f"batch-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(cluster.api)
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


def deployment(ns: str, name: str, image: str = "busybox") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [{"name": "c", "image": image}],
                    "tolerations": [{"operator": "Exists"}],
                },
            },
        },
    }


def test_a_batch_is_applied_in_order_waited_for_and_then_unchanged(
    cluster: Cluster, tmp_path: Path, namespace: str
) -> None:
    objs = [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "a", "namespace": namespace},
            "data": {"x": "1"},
        },
        deployment(namespace, "web"),
        deployment(namespace, "api"),
    ]
    apply = {"kubesphere.installer.apply": {"definition": objs, "wait": True, "wait_timeout": 120}}
    first = task_results(play(cluster, tmp_path, [apply]))[0]
    assert first["changed"] is True
    assert [(r["kind"], r["name"], r["method"]) for r in first["results"]] == [
        ("ConfigMap", "a", "created"),
        ("Deployment", "web", "created"),
        ("Deployment", "api", "created"),
    ]
    apps = client.AppsV1Api(cluster.api)
    for name in ("web", "api"):  # the wait covered both Deployments
        assert apps.read_namespaced_deployment(name, namespace).status.available_replicas == 2
    again = task_results(play(cluster, tmp_path, [apply]))[0]
    assert again["changed"] is False
    assert {r["method"] for r in again["results"]} == {"unchanged"}
    # Server-side apply with our field manager: a field dropped from the manifest goes.
    objs[0]["data"] = {"y": "2"}
    changed = task_results(play(cluster, tmp_path, [apply]))[0]
    assert [r["method"] for r in changed["results"]] == ["changed", "unchanged", "unchanged"]
    cm = client.CoreV1Api(cluster.api).read_namespaced_config_map("a", namespace)
    assert cm.data == {"y": "2"}
    assert any(f.manager == "ks-installer" and f.operation == "Apply" for f in cm.metadata.managed_fields)


def test_check_mode_changes_nothing_and_says_what_would(
    cluster: Cluster, tmp_path: Path, namespace: str
) -> None:
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "dry", "namespace": namespace},
        "data": {"x": "1"},
    }
    result = task_results(
        play(cluster, tmp_path, [{"kubesphere.installer.apply": {"definition": cm}}], check=True)
    )[0]
    assert result["changed"] is True and result["method"] == "created"
    with pytest.raises(client.ApiException) as err:
        client.CoreV1Api(cluster.api).read_namespaced_config_map("dry", namespace)
    assert err.value.status == 404


def test_check_mode_deletes_nothing_even_with_delete_options(
    cluster: Cluster, tmp_path: Path, namespace: str
) -> None:
    """A DELETE with a body (propagation, preconditions) takes dryRun from the body, not the query."""
    core = client.CoreV1Api(cluster.api)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "kept"}, "data": {"x": "1"}})
    task = {
        "kubesphere.installer.apply": {
            "state": "absent", "kind": "ConfigMap", "name": ["kept"], "namespace": namespace,
            "delete_options": {"propagationPolicy": "Foreground"},
        }
    }  # fmt: skip
    result = task_results(play(cluster, tmp_path, [task], check=True))[0]
    assert result["changed"] is True and result["method"] == "deleted"  # would be
    assert core.read_namespaced_config_map("kept", namespace).data == {"x": "1"}


def test_check_mode_names_the_changed_fields_and_never_a_secret_value(
    cluster: Cluster, tmp_path: Path, namespace: str
) -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s", "namespace": namespace, "labels": {"app.kubernetes.io/name": "a"}},
        "stringData": {"password": "old-value-1", "user": "admin"},
    }
    play(cluster, tmp_path, [{"kubesphere.installer.apply": {"definition": secret}}])
    core = client.CoreV1Api(cluster.api)
    before = core.read_namespaced_secret("s", namespace).metadata.resource_version
    secret["stringData"] = {"password": "new-value-2", "user": "admin"}
    secret["metadata"]["labels"] = {"app.kubernetes.io/name": "b"}
    out = play(cluster, tmp_path, [{"kubesphere.installer.apply": {"definition": secret}}], check=True)
    entry = task_results(out)[0]["results"][0]
    assert entry["method"] == "changed"
    assert entry["fields"] == ["data.password", 'metadata.labels["app.kubernetes.io/name"]']
    assert "new-value-2" not in json.dumps(entry) and "old-value-1" not in json.dumps(entry)
    assert core.read_namespaced_secret("s", namespace).metadata.resource_version == before


def test_objects_of_a_crd_in_the_same_batch_wait_until_it_is_served(cluster: Cluster, tmp_path: Path) -> None:
    group = f"t{uuid.uuid4().hex[:6]}.batch.kubesphere.io"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Cluster",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                    },
                }
            ],
        },
    }
    widget = {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w"}, "size": 3}
    try:
        result = task_results(
            play(cluster, tmp_path, [{"kubesphere.installer.apply": {"definition": [crd, widget]}}])
        )[0]
        assert [r["method"] for r in result["results"]] == ["created", "created"], result
        got = client.CustomObjectsApi(cluster.api).get_cluster_custom_object(group, "v1", "widgets", "w")
        assert got["size"] == 3
    finally:
        client.ApiextensionsV1Api(cluster.api).delete_custom_resource_definition(f"widgets.{group}")


def test_a_refused_object_fails_the_task_with_the_object_and_the_servers_reason(
    cluster: Cluster, tmp_path: Path, namespace: str
) -> None:
    bad = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "bad", "namespace": namespace},
        "spec": {"ports": [{"port": 99999}]},
    }
    result = task_results(play(cluster, tmp_path, [{"kubesphere.installer.apply": {"definition": bad}}]))[0]
    assert result["failed"] is True
    assert result["msg"].startswith(f"Service {namespace}/bad: 422 Invalid:")
    assert "spec.ports[0].port" in result["msg"]


def test_a_failed_job_ends_the_wait_at_once(cluster: Cluster, tmp_path: Path, namespace: str) -> None:
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "j", "namespace": namespace},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "c", "image": "busybox"}],
                    "tolerations": [{"operator": "Exists"}],
                }
            },
        },
    }
    batch = client.BatchV1Api(cluster.api)
    # KWOK runs no pod to failure: the Job stays suspended (no pods, no controller updates) and
    # its status says what the Job controller writes when the backoff limit is reached.
    job["spec"]["suspend"] = True
    batch.create_namespaced_job(namespace, job)
    now = "2026-01-01T00:00:00Z"
    failed = [
        {
            "type": "FailureTarget",
            "status": "True",
            "reason": "BackoffLimitExceeded",
            "lastTransitionTime": now,
        },
        {
            "type": "Failed",
            "status": "True",
            "reason": "BackoffLimitExceeded",
            "message": "too many tries",
            "lastTransitionTime": now,
        },
    ]
    batch.patch_namespaced_job_status("j", namespace, {"status": {"startTime": now, "conditions": failed}})
    wait = {
        "kubesphere.installer.info": {
            "api_version": "batch/v1",
            "kind": "Job",
            "name": "j",
            "namespace": namespace,
            "wait": True,
            "wait_condition": {"type": "Complete", "status": "True"},
            "wait_timeout": 600,
        }
    }
    waits = [
        {**wait, "ignore_errors": True},
        {"kubesphere.installer.apply": {"definition": job, "wait": True, "wait_timeout": 600}},
    ]
    for result in task_results(play(cluster, tmp_path, waits)):
        # Both the wait for Complete and the kind's own rule know a failed Job will not complete.
        assert result["failed"] is True and "BackoffLimitExceeded too many tries" in result["msg"], result


def test_absent_deletes_dependents_first_and_waits_until_gone(cluster: Cluster, tmp_path: Path) -> None:
    ns = f"batch-{uuid.uuid4().hex[:6]}"
    objs = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": ns}},
    ]
    task_results(play(cluster, tmp_path, [{"kubesphere.installer.apply": {"definition": objs}}]))
    gone = {
        "kubesphere.installer.apply": {
            "state": "absent",
            "definition": objs,
            "wait": True,
            "wait_timeout": 120,
        }
    }
    result = task_results(play(cluster, tmp_path, [gone]))[0]
    assert [(r["kind"], r["method"]) for r in result["results"]] == [
        ("ConfigMap", "deleted"),
        ("Namespace", "deleted"),
    ]
    with pytest.raises(client.ApiException) as err:
        client.CoreV1Api(cluster.api).read_namespace(ns)
    assert err.value.status == 404
    again = task_results(play(cluster, tmp_path, [gone]))[0]
    assert again["changed"] is False and {r["method"] for r in again["results"]} == {"absent"}


def test_patched_merges_only_the_given_fields_and_info_reads(
    cluster: Cluster, tmp_path: Path, namespace: str
) -> None:
    tasks = [
        {
            "kubesphere.installer.apply": {
                "state": "patched",
                "kind": "Namespace",
                "name": [namespace],
                "definition": {"metadata": {"labels": {"batch-test": "yes"}}},
            }
        },
        {"kubesphere.installer.info": {"kind": "Namespace", "name": namespace}},
        {"kubesphere.installer.info": {"kind": "Namespace", "label_selectors": ["batch-test=yes"]}},
    ]
    patched, one, listed = task_results(play(cluster, tmp_path, tasks))
    assert patched["changed"] is True and patched["method"] == "changed"
    labels = one["resources"][0]["metadata"]["labels"]
    assert labels["batch-test"] == "yes" and labels["kubernetes.io/metadata.name"] == namespace
    assert namespace in [r["metadata"]["name"] for r in listed["resources"]]


def test_a_wait_wakes_on_the_change_of_the_object_it_watches(cluster: Cluster, namespace: str) -> None:
    core = client.CoreV1Api(cluster.api)
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "w", "namespace": namespace}}
    version = core.create_namespaced_config_map(namespace, cm).metadata.resource_version
    b = Batch.connect({"kubeconfig": str(cluster.kubeconfig)}, dry_run=False)
    # Watching for up to 600 s: only the change below can end it before the join gives up.
    waiter = threading.Thread(target=b.until_changed, args=([(cm, version)], 600.0), daemon=True)
    waiter.start()
    time.sleep(0.5)  # the watch is open (a change before it opens is delivered all the same)
    core.patch_namespaced_config_map("w", namespace, {"data": {"k": "v"}})
    waiter.join(60)
    assert not waiter.is_alive()


def test_the_client_leaves_retry_after_answers_to_the_batch(cluster: Cluster) -> None:
    # urllib3 would sleep a whole Retry-After (1 s) per busy answer; the batch asks again sooner.
    b = Batch.connect({"kubeconfig": str(cluster.kubeconfig)}, dry_run=False)
    retries = b.client.client.client.rest_client.pool_manager.connection_pool_kw["retries"]
    assert retries.respect_retry_after_header is False and retries.total == 3

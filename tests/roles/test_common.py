"""common: the generate-once Secret every role writes through roles/common/tasks/generated_secret.yml.

The task file runs on its own here, the way a role includes it, in a throwaway namespace:
generated keys are made once and kept, given values are written as they are (data, never
Jinja), hand-set keys survive, and no value reaches the run's output.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from installer.runs import Runner, RunRequest, RunResult
from tests.conftest import Cluster
from tests.roles.support import artifacts_text, assert_not_leaked, run_request, secret_data

pytestmark = pytest.mark.cluster

NAME = "t-generated"
LABELS = {"app.kubernetes.io/managed-by": "ks-installer", "app.kubernetes.io/component": "test"}


def write_secret(
    role_runner: Runner,
    namespace: str,
    *,
    generate: dict[str, Any] | None = None,
    values: dict[str, str] | None = None,
    check: bool = False,
    keep_artifacts: bool = False,
) -> RunResult:
    """One run of common's generated_secret.yml, as a role's include_role makes it."""
    variables = {
        "ks_component": "common",
        "ks_action": "generated_secret",
        "ks_role": "common",
        "ks_spec": {},
        "ks_secret_name": NAME,
        "ks_secret_namespace": namespace,
        "ks_secret_labels": LABELS,
        "ks_secret_generate": generate or {},
        "ks_secret_values": values or {},
    }
    request = RunRequest("common", "generated_secret", "common", variables, timeout=300, check=check)
    return run_request(role_runner, request, keep_artifacts=keep_artifacts)


def ansible_changed(result: RunResult) -> int:
    """Changed tasks as Ansible's recap counts them, no_log ones included (their censored
    events do not say `changed`, so the runner's progress misses them); then the kept
    artifacts are removed."""
    assert result.artifacts is not None
    try:
        for path in Path(result.artifacts).rglob("job_events/*.json"):
            event = json.loads(path.read_text())
            if event.get("event") == "playbook_on_stats":
                return sum(event["event_data"].get("changed", {}).values())
        raise AssertionError("the run kept no playbook_on_stats event")
    finally:
        shutil.rmtree(result.artifacts, ignore_errors=True)


def test_generated_once_given_as_given_and_kept(
    cluster: Cluster, role_runner: Runner, namespace: str
) -> None:
    given = {"user": "admin", "copied": "not-{{ 1 + 1 }}-templated", "absent": ""}
    generate = {"password": 20, "admin": {"length": 12, "suffix": "aA1"}}
    first = write_secret(role_runner, namespace, generate=generate, values=given, keep_artifacts=True)
    assert ansible_changed(first) == 1
    data = secret_data(cluster, namespace, NAME)
    assert set(data) == {"password", "admin", "user", "copied"}  # an empty value is left out
    assert len(data["password"]) == 20 and data["password"].isalnum()
    assert len(data["admin"]) == 15 and data["admin"].endswith("aA1")
    assert data["user"] == "admin" and data["copied"] == "not-{{ 1 + 1 }}-templated"
    secret = client.CoreV1Api(cluster.api).read_namespaced_secret(NAME, namespace)
    assert LABELS.items() <= (secret.metadata.labels or {}).items()
    assert "kubectl.kubernetes.io/last-applied-configuration" not in (secret.metadata.annotations or {})

    for check in (False, True):
        again = write_secret(
            role_runner, namespace, generate=generate, values=given, check=check, keep_artifacts=True
        )
        assert ansible_changed(again) == 0
    assert secret_data(cluster, namespace, NAME) == data


def test_missing_keys_are_generated_present_ones_kept(
    cluster: Cluster, role_runner: Runner, namespace: str
) -> None:
    core = client.CoreV1Api(cluster.api)
    core.create_namespaced_secret(
        namespace,
        {"metadata": {"name": NAME}, "stringData": {"password": "set-by-hand", "extra": "mine"}},
    )
    write_secret(role_runner, namespace, generate={"password": 20, "token": 30})
    data = secret_data(cluster, namespace, NAME)
    assert data["password"] == "set-by-hand"  # kept, although shorter than 20
    assert len(data["token"]) == 30
    assert data["extra"] == "mine"  # a key the role does not name survives

    # A value given (as the spec's authentication.jwtSecret is) wins over the kept one.
    write_secret(
        role_runner, namespace, generate={"password": 20, "token": 30}, values={"password": "from-spec"}
    )
    after = secret_data(cluster, namespace, NAME)
    assert after == {**data, "password": "from-spec"}


def test_generated_values_never_reach_the_output(
    cluster: Cluster, role_runner: Runner, namespace: str
) -> None:
    runs = {
        "first run": write_secret(role_runner, namespace, generate={"password": 24}, keep_artifacts=True),
        "check run": write_secret(
            role_runner, namespace, generate={"password": 24}, check=True, keep_artifacts=True
        ),
    }
    texts = {where: artifacts_text(result) for where, result in runs.items()}
    assert f"Common | Write Secret {NAME}" in texts["first run"]  # the events were kept
    assert_not_leaked(secret_data(cluster, namespace, NAME).values(), texts)

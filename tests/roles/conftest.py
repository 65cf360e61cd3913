"""Run the real roles against the local cluster, the way the operator runs them.

``run_role("redis")`` runs playbooks/install.yml for one component through the
operator's own runner (ansible-runner, unsafe extra vars) and returns its result;
``spec`` starts from the sample ClusterConfiguration in deploy/.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from installer.components import load_table
from installer.planner import desired_components
from installer.roles import run_request
from installer.runs import Runner, RunRequest, RunResult
from tests.conftest import Cluster

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "deploy" / "cluster-configuration.yaml"
RoleRunner = Callable[..., RunResult]


def sample_spec() -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load(SAMPLE.read_text())["spec"]
    return copy.deepcopy(spec)


@pytest.fixture
def spec() -> dict[str, Any]:
    """The sample ClusterConfiguration spec, to adjust per test."""
    return sample_spec()


@pytest.fixture(scope="session")
def role_runner(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Runner:
    return Runner(
        project_dir=REPO,
        playbook=REPO / "playbooks" / "install.yml",
        kubeconfig=cluster.kubeconfig,
        work_dir=tmp_path_factory.mktemp("runs"),
    )


@pytest.fixture
def run_role(role_runner: Runner) -> RoleRunner:
    """``run_role(component, action="install", spec=None, check=False)`` → RunResult.

    Fails the test with the failed task and its message when the run fails,
    unless ``expect_failure=True``.
    """

    def run(
        component: str,
        action: str = "install",
        *,
        spec: dict[str, Any] | None = None,
        check: bool = False,
        expect_failure: bool = False,
        timeout: float = 900,
    ) -> RunResult:
        request = role_request(component, action, spec=spec, check=check, timeout=timeout)
        result = role_runner.run(request)
        if expect_failure:
            assert not result.ok, f"{component} {action} was expected to fail"
        else:
            assert result.ok, f"{component} {action}: {result.status}: {result.failed_task}: {result.message}"
        return result

    return run


def role_request(
    component: str,
    action: str = "install",
    *,
    spec: dict[str, Any] | None = None,
    check: bool = False,
    timeout: float = 900,
    extra: dict[str, Any] | None = None,
) -> RunRequest:
    """The request the operator would make for ``component`` with ``spec`` (default: the sample);
    ``extra`` adds or overrides variables."""
    table = load_table()
    spec = spec if spec is not None else sample_spec()
    request = run_request(
        table,
        component,
        action,
        spec,
        namespace="kubesphere-system",
        name="ks-installer",
        run_timeout=timeout,
        desired=desired_components(table, spec),
        check=check,
    )
    if extra:
        request = dataclasses.replace(request, variables={**request.variables, **extra})
    return request


@pytest.fixture
def core(cluster: Cluster) -> client.CoreV1Api:
    return client.CoreV1Api(cluster.api)


@pytest.fixture
def apps(cluster: Cluster) -> client.AppsV1Api:
    return client.AppsV1Api(cluster.api)

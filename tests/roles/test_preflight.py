"""preflight: fails before any change, with a message a user can act on."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from installer.runs import Runner
from tests.conftest import Cluster
from tests.roles.conftest import RoleRunner, role_request

pytestmark = pytest.mark.cluster


def test_sample_spec_passes(run_role: RoleRunner) -> None:
    result = run_role("preflight", "main")
    assert result.progress.changed == 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"persistence": {"storageClass": "fast-ssd"}}, 'persistence.storageClass is "fast-ssd"'),
        ({"multicluster": {"clusterRole": "member"}}, "must use the host cluster's jwtSecret"),
        (
            {"devops": {"jenkinsMemoryReq": "8Gi", "jenkinsMemoryLim": "4Gi"}},
            "jenkinsMemoryReq (8Gi) is larger",
        ),
        ({"devops": {"jenkinsCpuReq": 2, "jenkinsCpuLim": "1"}}, "jenkinsCpuReq (2) is larger"),
        ({"common": {"s3": {"endpoint": "http://s3.local:9000"}}}, "common.s3 is partly set"),
        ({"authentication": {"adminPassword": "short"}}, "adminPassword must be 8 to 64 characters"),
        # A spec from an inventory meets no CRD: the same formats, and keys no schema can check.
        (
            {"local_registry": "reg.io\n          workingDir: /"},
            "spec.local_registry: is not a registry host[:port][/path]",
        ),
        (
            {"authentication": {"oauthOptions": {"k" * 2000: "v"}}},
            "spec.authentication.oauthOptions: a key is longer than 253 characters",
        ),
        (
            {"common": {"core": {"nodeSelector": {"disk type": "ssd"}}}},
            "spec.common.core.nodeSelector: a key is not",
        ),
    ],
)
def test_bad_specs_fail_with_an_actionable_message(
    run_role: RoleRunner, spec: dict[str, Any], change: dict[str, Any], message: str
) -> None:
    for key, value in change.items():
        spec[key] = {**spec.get(key, {}), **value} if isinstance(value, dict) else value
    result = run_role("preflight", "main", spec=spec, expect_failure=True)
    assert message in (result.message or ""), result.message
    assert result.progress.changed == 0


def test_a_cluster_older_than_supported_fails_with_its_version(role_runner: Runner, cluster: Cluster) -> None:
    version = client.VersionApi(cluster.api).get_code().git_version
    newer = "99.0.0"
    result = role_runner.run(
        role_request("preflight", "main", extra={"preflight_min_kubernetes_version": newer})
    )
    assert not result.ok
    assert f"Kubernetes {version} is older than v{newer}" in (result.message or ""), result.message

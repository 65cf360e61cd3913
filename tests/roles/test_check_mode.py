"""Check mode on a cluster that has never seen the component's namespace.

Every role ensures its namespace through roles/common/tasks/namespace.yml and applies
the objects in it only when that namespace can take them: a --check run reports the
namespace it would create and skips the rest, where a server-side dry run would fail.
"""

from __future__ import annotations

import uuid

import pytest
from kubernetes import client

from installer.runs import Runner
from tests.conftest import Cluster
from tests.roles.support import exists, run_once

pytestmark = pytest.mark.cluster

# The variables that name the namespaces a component's objects go into, and whether the
# role applies cluster-scoped objects (CRDs) ahead of them, which a dry run also reports.
NAMESPACES: dict[str, tuple[list[str], bool]] = {
    "redis": (["redis_namespace"], False),
    "openldap": (["openldap_namespace"], False),
    "minio": (["minio_namespace"], False),
    "jenkins": (["jenkins_namespace"], False),
    "monitoring": (["ks_monitoring_namespace"], False),
    "devops": (["devops_namespace"], True),
    "core": (["ks_controls_namespace", "ks_system_namespace"], True),
}


@pytest.mark.parametrize("component", list(NAMESPACES))
def test_check_mode_before_the_namespace_exists(
    cluster: Cluster, role_runner: Runner, component: str
) -> None:
    # The API server dry-runs each change and cannot do so in a namespace that does not exist.
    variables, crds_first = NAMESPACES[component]
    namespaces = {variable: f"t-{uuid.uuid4().hex[:8]}" for variable in variables}
    result = run_once(role_runner, component, check=True, extra=namespaces)
    if crds_first:
        assert result.progress.changed >= len(namespaces)
    else:
        assert result.progress.changed == len(namespaces)  # "would create the namespace"
    for name in namespaces.values():
        assert not exists(client.CoreV1Api(cluster.api).read_namespace, name)

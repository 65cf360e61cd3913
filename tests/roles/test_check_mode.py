"""Check mode on a cluster that has never seen the component's namespace."""

from __future__ import annotations

import uuid

import pytest
from kubernetes import client

from installer.runs import Runner
from tests.conftest import Cluster
from tests.roles.support import exists, run_once

pytestmark = pytest.mark.cluster


@pytest.mark.parametrize("component", ["redis", "openldap", "minio"])
def test_check_mode_before_the_namespace_exists(
    cluster: Cluster, role_runner: Runner, component: str
) -> None:
    # The API server dry-runs each change and cannot do so in a namespace that does not exist.
    namespace = f"t-{uuid.uuid4().hex[:8]}"
    result = run_once(role_runner, component, check=True, extra={f"{component}_namespace": namespace})
    assert result.progress.changed == 1  # "would create the namespace"
    assert not exists(client.CoreV1Api(cluster.api).read_namespace, namespace)

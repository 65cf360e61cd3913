"""redis: a password generated once, one Deployment or an HA StatefulSet, data kept on uninstall."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from installer.runs import Runner
from tests.conftest import Cluster
from tests.roles.conftest import RoleRunner
from tests.roles.support import (
    artifacts_text,
    assert_not_leaked,
    config_maps_text,
    delete_data_spec,
    exists,
    pvc_bound,
    run_once,
    secret_data,
    uninstall_with_data,
)

pytestmark = pytest.mark.cluster

NS = "kubesphere-system"
HA_PVCS = {f"data-redis-ha-server-{i}" for i in range(3)}


@pytest.fixture(scope="module", autouse=True)
def clean_slate(role_runner: Runner) -> Iterator[None]:
    uninstall_with_data(role_runner, "redis")
    yield
    uninstall_with_data(role_runner, "redis")


def ha_spec(spec: dict[str, Any], on: bool = True) -> dict[str, Any]:
    spec["common"]["redis"]["enableHA"] = on
    return spec


def password(cluster: Cluster) -> str:
    return secret_data(cluster, NS, "redis-secret")["auth"]


def assert_single(cluster: Cluster) -> None:
    apps = client.AppsV1Api(cluster.api)
    deploy = apps.read_namespaced_deployment("redis", NS)
    assert deploy.spec.replicas == 1 and deploy.status.available_replicas == 1
    assert not exists(apps.read_namespaced_stateful_set, "redis-ha-server", NS)
    assert not exists(client.CoreV1Api(cluster.api).read_namespaced_service, "redis-ha", NS)
    pvc_bound(cluster, NS, "redis-pvc")


def assert_ha(cluster: Cluster) -> None:
    apps = client.AppsV1Api(cluster.api)
    sts = apps.read_namespaced_stateful_set("redis-ha-server", NS)
    assert sts.spec.replicas == 3 and sts.status.ready_replicas == 3
    assert not exists(apps.read_namespaced_deployment, "redis", NS)
    headless = client.CoreV1Api(cluster.api).read_namespaced_service("redis-ha", NS)
    assert headless.spec.cluster_ip == "None"
    for name in HA_PVCS:
        pvc_bound(cluster, NS, name)
    # The Service follows the primary.
    service = client.CoreV1Api(cluster.api).read_namespaced_service("redis", NS)
    assert service.spec.selector["statefulset.kubernetes.io/pod-name"] == "redis-ha-server-0"


def test_check_mode_before_install_changes_nothing(cluster: Cluster, run_role: RoleRunner) -> None:
    run_role("redis", check=True)
    assert not exists(client.AppsV1Api(cluster.api).read_namespaced_deployment, "redis", NS)
    assert not exists(client.CoreV1Api(cluster.api).read_namespaced_secret, "redis-secret", NS)


def test_install_runs_redis_with_a_generated_password(cluster: Cluster, run_role: RoleRunner) -> None:
    run_role("redis")
    assert_single(cluster)
    assert len(password(cluster)) == 32

    container = (
        client.AppsV1Api(cluster.api).read_namespaced_deployment("redis", NS).spec.template.spec.containers[0]
    )
    assert container.image == "library/redis:7.2.4-alpine"
    assert container.args[:3] == ["redis-server", "--requirepass", "$(REDIS_PASSWORD)"]
    env = {e.name: e.value_from.secret_key_ref for e in container.env}
    assert (env["REDIS_PASSWORD"].name, env["REDIS_PASSWORD"].key) == ("redis-secret", "auth")
    assert container.readiness_probe.tcp_socket and container.liveness_probe.tcp_socket

    service = client.CoreV1Api(cluster.api).read_namespaced_service("redis", NS)
    assert [p.port for p in service.spec.ports] == [6379]
    assert service.metadata.labels["app.kubernetes.io/component"] == "redis"
    assert service.metadata.labels["app.kubernetes.io/managed-by"] == "ks-installer"


def test_second_run_and_check_mode_change_nothing(cluster: Cluster, run_role: RoleRunner) -> None:
    run_role("redis")
    before = password(cluster)
    assert run_role("redis").progress.changed == 0
    assert password(cluster) == before
    assert run_role("redis", check=True).progress.changed == 0


def test_password_never_reaches_the_output(
    cluster: Cluster, run_role: RoleRunner, role_runner: Runner
) -> None:
    run_role("redis")
    old = password(cluster)
    texts = {
        # With the data: a kept volume keeps its credentials, and this test wants new ones.
        "uninstall run": artifacts_text(
            run_once(role_runner, "redis", "uninstall", spec=delete_data_spec(), keep_artifacts=True)
        )
    }
    texts["install run"] = artifacts_text(run_once(role_runner, "redis", keep_artifacts=True))  # a new one
    texts["check run"] = artifacts_text(run_once(role_runner, "redis", check=True, keep_artifacts=True))
    new = password(cluster)
    assert new != old
    assert "Common | Write Secret redis-secret" in texts["install run"]  # the events were kept
    texts["ConfigMaps"] = config_maps_text(cluster, NS)
    texts["Deployment"] = str(client.AppsV1Api(cluster.api).read_namespaced_deployment("redis", NS).to_dict())
    assert_not_leaked([old, new], texts)


def test_ha_on_and_off_switch_cleanly(cluster: Cluster, run_role: RoleRunner, spec: dict[str, Any]) -> None:
    run_role("redis")
    before = password(cluster)

    run_role("redis", spec=ha_spec(spec))
    assert_ha(cluster)
    assert exists(client.CoreV1Api(cluster.api).read_namespaced_persistent_volume_claim, "redis-pvc", NS)
    assert run_role("redis", spec=spec).progress.changed == 0
    assert run_role("redis", spec=spec, check=True).progress.changed == 0

    run_role("redis", spec=ha_spec(spec, on=False))
    assert_single(cluster)
    core = client.CoreV1Api(cluster.api)
    assert all(exists(core.read_namespaced_persistent_volume_claim, name, NS) for name in HA_PVCS)
    assert password(cluster) == before

    # Switching with deleteDataOnDisable removes the PVCs of the shape switched off.
    spec["persistence"]["deleteDataOnDisable"] = True
    run_role("redis", spec=ha_spec(spec))
    assert_ha(cluster)
    assert not exists(core.read_namespaced_persistent_volume_claim, "redis-pvc", NS)
    run_role("redis", spec=ha_spec(spec, on=False))
    assert_single(cluster)
    assert not any(exists(core.read_namespaced_persistent_volume_claim, name, NS) for name in HA_PVCS)


def test_uninstall_keeps_the_data_and_its_credentials(cluster: Cluster, run_role: RoleRunner) -> None:
    run_role("redis")
    before = secret_data(cluster, NS, "redis-secret")
    run_role("redis", "uninstall")
    apps, core = client.AppsV1Api(cluster.api), client.CoreV1Api(cluster.api)
    assert not exists(apps.read_namespaced_deployment, "redis", NS)
    assert not exists(apps.read_namespaced_stateful_set, "redis-ha-server", NS)
    assert not exists(core.read_namespaced_service, "redis", NS)
    assert secret_data(cluster, NS, "redis-secret") == before  # the kept data was initialised with it
    assert exists(core.read_namespaced_persistent_volume_claim, "redis-pvc", NS)
    assert exists(core.read_namespace, NS)
    assert run_role("redis", "uninstall").progress.changed == 0
    run_role("redis")  # enabled again: the same credentials for the same data
    assert secret_data(cluster, NS, "redis-secret") == before


def test_uninstall_with_delete_data_removes_the_pvcs(
    cluster: Cluster, run_role: RoleRunner, spec: dict[str, Any]
) -> None:
    run_role("redis", spec=ha_spec(spec))
    before = secret_data(cluster, NS, "redis-secret")
    run_role("redis")  # back to one instance; the HA PVCs stay
    spec["persistence"]["deleteDataOnDisable"] = True
    run_role("redis", "uninstall", spec=spec)
    core = client.CoreV1Api(cluster.api)
    for name in {"redis-pvc", *HA_PVCS}:
        assert not exists(core.read_namespaced_persistent_volume_claim, name, NS)
    assert not exists(client.AppsV1Api(cluster.api).read_namespaced_deployment, "redis", NS)
    assert not exists(client.CoreV1Api(cluster.api).read_namespaced_secret, "redis-secret", NS)
    run_role("redis")  # enabled again on new data: new credentials
    assert secret_data(cluster, NS, "redis-secret") != before

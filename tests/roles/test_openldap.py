"""openldap: the directory StatefulSet with an admin password generated once, data kept on uninstall."""

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
PVC = "openldap-pvc-openldap-0"  # the name ks-installer's chart gave it


@pytest.fixture(scope="module", autouse=True)
def clean_slate(role_runner: Runner) -> Iterator[None]:
    uninstall_with_data(role_runner, "openldap")
    yield
    uninstall_with_data(role_runner, "openldap")


def admin_password(cluster: Cluster) -> str:
    return secret_data(cluster, NS, "openldap-secret")["password"]


def test_check_mode_before_install_changes_nothing(cluster: Cluster, run_role: RoleRunner) -> None:
    run_role("openldap", check=True)
    assert not exists(client.AppsV1Api(cluster.api).read_namespaced_stateful_set, "openldap", NS)
    assert not exists(client.CoreV1Api(cluster.api).read_namespaced_secret, "openldap-secret", NS)


def test_install_runs_the_directory(cluster: Cluster, run_role: RoleRunner) -> None:
    run_role("openldap")
    sts = client.AppsV1Api(cluster.api).read_namespaced_stateful_set("openldap", NS)
    assert sts.spec.replicas == 1 and sts.status.ready_replicas == 1
    pvc_bound(cluster, NS, PVC)
    pvc = client.CoreV1Api(cluster.api).read_namespaced_persistent_volume_claim(PVC, NS)
    assert pvc.spec.resources.requests["storage"] == "2Gi"  # common.openldap.volumeSize
    assert pvc.metadata.labels["app.kubernetes.io/component"] == "openldap"

    secret = secret_data(cluster, NS, "openldap-secret")
    assert len(secret["password"]) == 32 and len(secret["config-password"]) == 32
    assert secret["password"] != secret["config-password"]

    container = sts.spec.template.spec.containers[0]
    assert container.image == "osixia/openldap:1.3.0"
    env = {e.name: e for e in container.env}
    assert env["LDAP_ORGANISATION"].value == "kubesphere"
    assert env["LDAP_DOMAIN"].value == "kubesphere.io"
    ref = env["LDAP_ADMIN_PASSWORD"].value_from.secret_key_ref
    assert (ref.name, ref.key) == ("openldap-secret", "password")
    assert {m.mount_path for m in container.volume_mounts} == {"/var/lib/ldap", "/etc/ldap/slapd.d"}

    service = client.CoreV1Api(cluster.api).read_namespaced_service("openldap", NS)
    assert service.spec.cluster_ip == "None"
    assert [p.port for p in service.spec.ports] == [389]


def test_second_run_and_check_mode_change_nothing(cluster: Cluster, run_role: RoleRunner) -> None:
    run_role("openldap")
    before = secret_data(cluster, NS, "openldap-secret")
    assert run_role("openldap").progress.changed == 0
    assert secret_data(cluster, NS, "openldap-secret") == before
    assert run_role("openldap", check=True).progress.changed == 0


def test_a_new_volume_size_fails_with_a_clear_message(run_role: RoleRunner, spec: dict[str, Any]) -> None:
    run_role("openldap")
    spec["common"]["openldap"]["volumeSize"] = "5Gi"  # the StatefulSet was created with 2Gi
    result = run_role("openldap", spec=spec, expect_failure=True)
    assert "volume claim templates of a StatefulSet cannot change" in (result.message or "")
    assert result.progress.changed == 0


def test_passwords_never_reach_the_output(
    cluster: Cluster, run_role: RoleRunner, role_runner: Runner
) -> None:
    run_role("openldap")
    old = secret_data(cluster, NS, "openldap-secret")
    texts = {
        # With the data: a kept volume keeps its credentials, and this test wants new ones.
        "uninstall run": artifacts_text(
            run_once(role_runner, "openldap", "uninstall", spec=delete_data_spec(), keep_artifacts=True)
        )
    }
    texts["install run"] = artifacts_text(run_once(role_runner, "openldap", keep_artifacts=True))  # new ones
    texts["check run"] = artifacts_text(run_once(role_runner, "openldap", check=True, keep_artifacts=True))
    new = secret_data(cluster, NS, "openldap-secret")
    assert new["password"] != old["password"]
    assert "Common | Write Secret openldap-secret" in texts["install run"]  # the events were kept
    texts["ConfigMaps"] = config_maps_text(cluster, NS)
    texts["StatefulSet"] = str(
        client.AppsV1Api(cluster.api).read_namespaced_stateful_set("openldap", NS).to_dict()
    )
    assert_not_leaked([*old.values(), *new.values()], texts)


def test_uninstall_keeps_the_data_and_its_credentials(cluster: Cluster, run_role: RoleRunner) -> None:
    run_role("openldap")
    before = secret_data(cluster, NS, "openldap-secret")
    run_role("openldap", "uninstall")
    apps, core = client.AppsV1Api(cluster.api), client.CoreV1Api(cluster.api)
    assert not exists(apps.read_namespaced_stateful_set, "openldap", NS)
    assert not exists(core.read_namespaced_service, "openldap", NS)
    assert secret_data(cluster, NS, "openldap-secret") == before  # the kept data was initialised with it
    assert exists(core.read_namespaced_persistent_volume_claim, PVC, NS)
    assert exists(core.read_namespace, NS)
    assert run_role("openldap", "uninstall").progress.changed == 0
    run_role("openldap")  # enabled again: the same credentials for the same data
    assert secret_data(cluster, NS, "openldap-secret") == before


def test_uninstall_with_delete_data_removes_the_pvc(
    cluster: Cluster, run_role: RoleRunner, spec: dict[str, Any]
) -> None:
    run_role("openldap")
    before = secret_data(cluster, NS, "openldap-secret")
    spec["persistence"]["deleteDataOnDisable"] = True
    run_role("openldap", "uninstall", spec=spec)
    core = client.CoreV1Api(cluster.api)
    assert not exists(core.read_namespaced_persistent_volume_claim, PVC, NS)
    assert not exists(client.AppsV1Api(cluster.api).read_namespaced_stateful_set, "openldap", NS)
    assert not exists(client.CoreV1Api(cluster.api).read_namespaced_secret, "openldap-secret", NS)
    run_role("openldap")  # enabled again on new data: new credentials
    assert secret_data(cluster, NS, "openldap-secret") != before

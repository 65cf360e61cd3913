"""jenkins: devops-jenkins sized by devops.jenkins*, its admin password generated once, its data kept."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from installer.runs import Runner
from tests.conftest import Cluster
from tests.helpers import wait_for
from tests.roles.conftest import REPO, RoleRunner, role_request, sample_spec
from tests.roles.support import devops_on, drop_devops_namespace_if_empty, exists

pytestmark = pytest.mark.cluster

NS = "kubesphere-devops-system"
NAME = "devops-jenkins"
GI = 2**30


@pytest.fixture(scope="module", autouse=True)
def devops_namespace(cluster: Cluster) -> Iterator[None]:
    yield
    drop_devops_namespace_if_empty(cluster.api)


@pytest.fixture(autouse=True)
def clean_slate(run_role: RoleRunner) -> Iterator[None]:
    """Each test starts and ends with jenkins uninstalled, data included."""
    spec = devops_on(sample_spec())
    spec["persistence"]["deleteDataOnDisable"] = True
    run_role("jenkins", "uninstall", spec=spec)
    yield
    run_role("jenkins", "uninstall", spec=spec)


def container(apps: client.AppsV1Api) -> Any:
    return apps.read_namespaced_deployment(NAME, NS).spec.template.spec.containers[0]


def env(apps: client.AppsV1Api) -> dict[str, Any]:
    return {e.name: e for e in container(apps).env}


def admin_password(core: client.CoreV1Api) -> str:
    return base64.b64decode(core.read_namespaced_secret(NAME, NS).data["jenkins-admin-password"]).decode()


def assert_available(apps: client.AppsV1Api) -> None:
    deployment = apps.read_namespaced_deployment(NAME, NS)
    conditions = {c.type: c.status for c in deployment.status.conditions or []}
    assert conditions.get("Available") == "True", deployment.status


def test_check_mode_before_install_creates_nothing(
    cluster: Cluster, run_role: RoleRunner, spec: dict[str, Any], apps: client.AppsV1Api
) -> None:
    drop_devops_namespace_if_empty(
        cluster.api
    )  # so the dry run meets a missing namespace, as on a new cluster
    result = run_role("jenkins", spec=devops_on(spec), check=True)
    assert result.progress.failed == 0
    assert not exists(apps.read_namespaced_deployment, NAME, NS)


def test_install_sizes_jenkins_from_the_spec(
    run_role: RoleRunner, spec: dict[str, Any], core: client.CoreV1Api, apps: client.AppsV1Api
) -> None:
    spec = devops_on(
        spec, jenkinsCpuReq=0.5, jenkinsCpuLim="1500m", jenkinsMemoryReq="2Gi", jenkinsMemoryLim="4Gi"
    )
    run_role("jenkins", spec=spec)

    assert_available(apps)
    jenkins = container(apps)
    assert jenkins.resources.requests == {"cpu": "500m", "memory": "2Gi"}
    assert jenkins.resources.limits == {"cpu": "1500m", "memory": "4Gi"}
    assert f"-XX:MaxRAM={4 * GI} " in env(apps)["JAVA_TOOL_OPTIONS"].value
    assert jenkins.readiness_probe.http_get.path == "/login"
    assert {p.name: p.container_port for p in jenkins.ports}["http"] == 8080
    assert jenkins.image.endswith("kubesphere/ks-jenkins:v3.4.0-2.319.3-1")

    pvc = wait_for(
        lambda: (p := core.read_namespaced_persistent_volume_claim(NAME, NS)).status.phase == "Bound" and p,
        timeout=60,
        what="PVC devops-jenkins to be Bound",
    )
    assert pvc.spec.resources.requests["storage"] == "16Gi"
    service = core.read_namespaced_service(NAME, NS)
    assert {(p.port, p.target_port) for p in service.spec.ports} >= {(80, "http")}

    casc = core.read_namespaced_config_map("jenkins-casc-config", NS).data["jenkins.yaml"]
    assert "ldap://openldap.kubesphere-system.svc:389" in casc
    assert 'rootDN: "dc=kubesphere,dc=io"' in casc
    assert "${LDAP_MANAGER_PASSWORD}" in casc
    password = admin_password(core)
    assert len(password) == 32
    assert password not in casc

    for obj in (apps.read_namespaced_deployment(NAME, NS), service, pvc):
        assert obj.metadata.labels["app.kubernetes.io/component"] == "jenkins"
        assert obj.metadata.labels["app.kubernetes.io/managed-by"] == "ks-installer"

    again = run_role("jenkins", spec=spec)
    assert again.progress.changed == 0
    assert admin_password(core) == password

    check = run_role("jenkins", spec=spec, check=True)
    assert check.progress.changed == 0


def test_a_new_memory_limit_is_applied(
    run_role: RoleRunner, spec: dict[str, Any], core: client.CoreV1Api, apps: client.AppsV1Api
) -> None:
    run_role("jenkins", spec=devops_on(spec, jenkinsMemoryReq="4Gi", jenkinsMemoryLim="4Gi"))
    password = admin_password(core)
    assert f"-XX:MaxRAM={4 * GI} " in env(apps)["JAVA_TOOL_OPTIONS"].value

    result = run_role("jenkins", spec=devops_on(spec, jenkinsMemoryLim="6Gi"))
    assert result.progress.changed > 0
    assert_available(apps)
    assert container(apps).resources.limits["memory"] == "6Gi"
    assert f"-XX:MaxRAM={6 * GI} " in env(apps)["JAVA_TOOL_OPTIONS"].value
    assert admin_password(core) == password


def test_uninstall_keeps_the_volume_unless_asked(
    run_role: RoleRunner, spec: dict[str, Any], core: client.CoreV1Api, apps: client.AppsV1Api
) -> None:
    spec = devops_on(spec)
    run_role("jenkins", spec=spec)
    password = admin_password(core)

    run_role("jenkins", "uninstall", spec=spec)
    assert not exists(apps.read_namespaced_deployment, NAME, NS)
    assert not exists(core.read_namespaced_service, NAME, NS)
    assert not exists(core.read_namespaced_config_map, "jenkins-casc-config", NS)
    assert exists(core.read_namespaced_persistent_volume_claim, NAME, NS)

    # Enabled again: the same volume, the same admin password.
    run_role("jenkins", spec=spec)
    assert admin_password(core) == password

    spec["persistence"]["deleteDataOnDisable"] = True
    run_role("jenkins", "uninstall", spec=spec)
    assert not exists(apps.read_namespaced_deployment, NAME, NS)
    wait_for(
        lambda: not exists(core.read_namespaced_persistent_volume_claim, NAME, NS),
        timeout=60,
        what="PVC devops-jenkins to be deleted",
    )
    assert not exists(core.read_namespaced_secret, NAME, NS)
    assert exists(core.read_namespace, NS), "roles never delete namespaces"


def test_the_admin_password_never_reaches_the_output(
    cluster: Cluster, core: client.CoreV1Api, tmp_path: Path
) -> None:
    runner = Runner(
        project_dir=REPO,
        playbook=REPO / "playbooks" / "install.yml",
        kubeconfig=cluster.kubeconfig,
        work_dir=tmp_path,
        keep_artifacts=True,
    )
    spec = devops_on(sample_spec())
    for check in (False, True):
        result = runner.run(role_request("jenkins", spec=spec, check=check))
        assert result.ok, result.message
    password = admin_password(core)
    outputs = {
        str(path.relative_to(tmp_path)): path.read_text(errors="replace")
        for path in tmp_path.rglob("*")
        if path.is_file()
    }
    assert any("Write Secret devops-jenkins" in text for text in outputs.values()), "no run output kept"
    leaks = [name for name, text in outputs.items() if password in text]
    assert not leaks, f"the admin password is in {leaks}"

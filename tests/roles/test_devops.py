"""devops: the devops CRDs, devops-config, devops-apiserver and devops-controller; CRDs kept unless asked."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from kubernetes import client

from tests.conftest import Cluster
from tests.helpers import wait_for
from tests.roles.conftest import RoleRunner, sample_spec
from tests.roles.support import devops_on, drop_devops_namespace_if_empty, exists

pytestmark = pytest.mark.cluster

NS = "kubesphere-devops-system"
CRDS = (
    "pipelines.devops.kubesphere.io",
    "pipelineruns.devops.kubesphere.io",
    "s2ibinaries.devops.kubesphere.io",
)
DEPLOYMENTS = ("devops-apiserver", "devops-controller")


@pytest.fixture(scope="module", autouse=True)
def devops_namespace(cluster: Cluster) -> Iterator[None]:
    yield
    drop_devops_namespace_if_empty(cluster.api)


@pytest.fixture(autouse=True)
def clean_slate(run_role: RoleRunner) -> Iterator[None]:
    """Each test starts and ends with devops uninstalled, data included."""
    spec = devops_on(sample_spec())
    spec["persistence"]["deleteDataOnDisable"] = True
    run_role("devops", "uninstall", spec=spec)
    yield
    run_role("devops", "uninstall", spec=spec)


@pytest.fixture
def ext(cluster: Cluster) -> client.ApiextensionsV1Api:
    return client.ApiextensionsV1Api(cluster.api)


def devops_config(core: client.CoreV1Api) -> tuple[str, dict[str, Any]]:
    text = core.read_namespaced_config_map("devops-config", NS).data["kubesphere.yaml"]
    return text, yaml.safe_load(text)


def credentials(core: client.CoreV1Api) -> dict[str, str]:
    data = core.read_namespaced_secret("devops-credentials", NS).data or {}
    return {key: base64.b64decode(value).decode() for key, value in data.items()}


def test_check_mode_before_install_creates_nothing(
    cluster: Cluster,
    run_role: RoleRunner,
    spec: dict[str, Any],
    apps: client.AppsV1Api,
    ext: client.ApiextensionsV1Api,
) -> None:
    drop_devops_namespace_if_empty(
        cluster.api
    )  # so the dry run meets a missing namespace, as on a new cluster
    result = run_role("devops", spec=devops_on(spec), check=True)
    assert result.progress.failed == 0
    for name in DEPLOYMENTS:
        assert not exists(apps.read_namespaced_deployment, name, NS)
    assert not exists(ext.read_custom_resource_definition, CRDS[0])


def test_install_deploys_crds_config_and_workloads(
    run_role: RoleRunner,
    spec: dict[str, Any],
    core: client.CoreV1Api,
    apps: client.AppsV1Api,
    ext: client.ApiextensionsV1Api,
) -> None:
    spec = devops_on(spec)
    run_role("devops", spec=spec)

    for name in CRDS:
        crd = ext.read_custom_resource_definition(name)
        assert {c.type: c.status for c in crd.status.conditions}["Established"] == "True"
        assert crd.metadata.labels["app.kubernetes.io/component"] == "devops"
    for name in DEPLOYMENTS:
        deployment = apps.read_namespaced_deployment(name, NS)
        assert {c.type: c.status for c in deployment.status.conditions}["Available"] == "True"
        assert deployment.metadata.labels["app.kubernetes.io/component"] == "devops"
        assert deployment.spec.template.spec.service_account_name == "devops-controller"
    images = {
        name: apps.read_namespaced_deployment(name, NS).spec.template.spec.containers[0].image
        for name in DEPLOYMENTS
    }
    assert images["devops-apiserver"].endswith("kubesphere/devops-apiserver:ks-v3.4.1")
    assert images["devops-controller"].endswith("kubesphere/devops-controller:ks-v3.4.1")
    service = core.read_namespaced_service("devops-apiserver", NS)
    assert [p.port for p in service.spec.ports] == [9090]

    _, config = devops_config(core)
    assert config["devops"]["host"] == "http://devops-jenkins.kubesphere-devops-system.svc/"
    assert config["s3"]["endpoint"] == "http://minio.kubesphere-system.svc:9000"
    assert config["s3"]["bucket"] == "s2i-binaries"
    assert "password" not in config["devops"]
    assert not {"accessKeyID", "secretAccessKey"} & set(config["s3"])

    rbac = client.RbacAuthorizationV1Api(core.api_client)
    binding = rbac.read_cluster_role_binding("devops-controller")
    assert [(s.name, s.namespace) for s in binding.subjects] == [("devops-controller", NS)]

    again = run_role("devops", spec=spec)
    assert again.progress.changed == 0
    check = run_role("devops", spec=spec, check=True)
    assert check.progress.changed == 0


def test_external_s3_is_configured_without_secrets_in_the_configmap(
    run_role: RoleRunner, spec: dict[str, Any], core: client.CoreV1Api
) -> None:
    spec = devops_on(spec)
    spec["common"]["s3"] = {
        "endpoint": "https://s3.example.test",
        "region": "eu-west-1",
        "bucket": "ci-binaries",
        "accessKeyID": "AKIDEXAMPLE",
        "secretAccessKey": "not-in-any-configmap-{{ 1 + 1 }}",
    }
    run_role("devops", spec=spec)

    text, config = devops_config(core)
    assert config["s3"] == {
        "endpoint": "https://s3.example.test",
        "region": "eu-west-1",
        "disableSSL": False,
        "forcePathStyle": True,
        "bucket": "ci-binaries",
    }
    assert "AKIDEXAMPLE" not in text and "not-in-any-configmap" not in text
    keys = credentials(core)
    assert keys["s3-access-key-id"] == "AKIDEXAMPLE"
    assert keys["s3-secret-access-key"] == "not-in-any-configmap-{{ 1 + 1 }}", (
        "Jinja in the spec is never evaluated"
    )
    assert run_role("devops", spec=spec).progress.changed == 0


def test_uninstall_keeps_the_crds_unless_asked(
    run_role: RoleRunner,
    spec: dict[str, Any],
    core: client.CoreV1Api,
    apps: client.AppsV1Api,
    ext: client.ApiextensionsV1Api,
) -> None:
    spec = devops_on(spec)
    run_role("devops", spec=spec)
    custom = client.CustomObjectsApi(core.api_client)
    custom.create_namespaced_custom_object(
        "devops.kubesphere.io",
        "v1alpha3",
        NS,
        "pipelines",
        {
            "apiVersion": "devops.kubesphere.io/v1alpha3",
            "kind": "Pipeline",
            "metadata": {"name": "users-pipeline"},
            "spec": {"type": "pipeline", "pipeline": {"name": "users-pipeline", "jenkinsfile": "node {}"}},
        },
    )

    run_role("devops", "uninstall", spec=spec)
    for name in DEPLOYMENTS:
        assert not exists(apps.read_namespaced_deployment, name, NS)
    assert not exists(core.read_namespaced_service, "devops-apiserver", NS)
    assert not exists(core.read_namespaced_config_map, "devops-config", NS)
    assert exists(ext.read_custom_resource_definition, CRDS[0])
    pipeline = custom.get_namespaced_custom_object(
        "devops.kubesphere.io", "v1alpha3", NS, "pipelines", "users-pipeline"
    )
    assert pipeline["spec"]["type"] == "pipeline", "users' pipelines survive a disable"

    spec["persistence"]["deleteDataOnDisable"] = True
    run_role("devops", "uninstall", spec=spec)
    for name in CRDS:
        wait_for(
            lambda name=name: not exists(ext.read_custom_resource_definition, name),
            timeout=60,
            what=f"CRD {name} to be deleted",
        )
    assert exists(core.read_namespace, NS), "roles never delete namespaces"

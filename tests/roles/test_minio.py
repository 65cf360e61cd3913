"""minio: the server with keys generated once, a bucket Job re-created only when it changes."""

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
JOB = "minio-make-bucket-job"


@pytest.fixture(scope="module", autouse=True)
def clean_slate(role_runner: Runner) -> Iterator[None]:
    uninstall_with_data(role_runner, "minio")
    yield
    uninstall_with_data(role_runner, "minio")


def job_uid(cluster: Cluster) -> str:
    return str(client.BatchV1Api(cluster.api).read_namespaced_job(JOB, NS).metadata.uid)


def test_check_mode_before_install_changes_nothing(cluster: Cluster, run_role: RoleRunner) -> None:
    run_role("minio", check=True)
    assert not exists(client.AppsV1Api(cluster.api).read_namespaced_deployment, "minio", NS)
    assert not exists(client.BatchV1Api(cluster.api).read_namespaced_job, JOB, NS)


def test_install_runs_minio_and_makes_the_buckets(cluster: Cluster, run_role: RoleRunner) -> None:
    run_role("minio")
    deploy = client.AppsV1Api(cluster.api).read_namespaced_deployment("minio", NS)
    assert deploy.status.available_replicas == 1
    pvc_bound(cluster, NS, "minio")
    pvc = client.CoreV1Api(cluster.api).read_namespaced_persistent_volume_claim("minio", NS)
    assert pvc.spec.resources.requests["storage"] == "20Gi"  # common.minio.volumeSize

    keys = secret_data(cluster, NS, "minio-secret")
    assert len(keys["accesskey"]) == 20 and len(keys["secretkey"]) == 40

    container = deploy.spec.template.spec.containers[0]
    assert container.image == "minio/minio:RELEASE.2019-08-07T01-59-21Z"
    assert container.args[0] == "server" and container.args[-1] == "/data"
    refs = {
        e.name: (e.value_from.secret_key_ref.name, e.value_from.secret_key_ref.key) for e in container.env
    }
    assert refs == {
        "MINIO_ACCESS_KEY": ("minio-secret", "accesskey"),
        "MINIO_SECRET_KEY": ("minio-secret", "secretkey"),
    }
    service = client.CoreV1Api(cluster.api).read_namespaced_service("minio", NS)
    assert [p.port for p in service.spec.ports] == [9000]

    job = client.BatchV1Api(cluster.api).read_namespaced_job(JOB, NS)
    assert job.status.succeeded == 1
    mc = job.spec.template.spec.containers[0]
    assert mc.image == "minio/mc:RELEASE.2019-08-07T23-14-43Z"
    assert 'for bucket in "$@"' in mc.command[2]  # the names are arguments, not script text
    assert mc.args == ["s2i-binaries", "devops"]


def test_second_run_and_check_mode_change_nothing(cluster: Cluster, run_role: RoleRunner) -> None:
    run_role("minio")
    keys, uid = secret_data(cluster, NS, "minio-secret"), job_uid(cluster)
    assert run_role("minio").progress.changed == 0
    assert secret_data(cluster, NS, "minio-secret") == keys
    assert job_uid(cluster) == uid  # the finished Job was left alone
    assert run_role("minio", check=True).progress.changed == 0


def test_the_bucket_job_is_recreated_when_it_changes(cluster: Cluster, role_runner: Runner) -> None:
    run_once(role_runner, "minio")
    uid = job_uid(cluster)
    run_once(role_runner, "minio", extra={"minio_buckets": ["s2i-binaries", "devops", "app-store"]})
    job = client.BatchV1Api(cluster.api).read_namespaced_job(JOB, NS)
    assert job.metadata.uid != uid and job.status.succeeded == 1
    assert "app-store" in job.spec.template.spec.containers[0].args
    run_once(role_runner, "minio")
    job = client.BatchV1Api(cluster.api).read_namespaced_job(JOB, NS)
    assert "app-store" not in job.spec.template.spec.containers[0].args


def test_keys_never_reach_the_output(cluster: Cluster, run_role: RoleRunner, role_runner: Runner) -> None:
    run_role("minio")
    old = secret_data(cluster, NS, "minio-secret")
    texts = {
        # With the data: a kept volume keeps its credentials, and this test wants new ones.
        "uninstall run": artifacts_text(
            run_once(role_runner, "minio", "uninstall", spec=delete_data_spec(), keep_artifacts=True)
        )
    }
    texts["install run"] = artifacts_text(run_once(role_runner, "minio", keep_artifacts=True))  # new ones
    texts["check run"] = artifacts_text(run_once(role_runner, "minio", check=True, keep_artifacts=True))
    new = secret_data(cluster, NS, "minio-secret")
    assert new["secretkey"] != old["secretkey"]
    assert "Common | Write Secret minio-secret" in texts["install run"]  # the events were kept
    texts["ConfigMaps"] = config_maps_text(cluster, NS)
    texts["Deployment"] = str(client.AppsV1Api(cluster.api).read_namespaced_deployment("minio", NS).to_dict())
    texts["Job"] = str(client.BatchV1Api(cluster.api).read_namespaced_job(JOB, NS).to_dict())
    assert_not_leaked([*old.values(), *new.values()], texts)


def test_uninstall_keeps_the_data_and_its_credentials(cluster: Cluster, run_role: RoleRunner) -> None:
    run_role("minio")
    before = secret_data(cluster, NS, "minio-secret")
    run_role("minio", "uninstall")
    apps, core = client.AppsV1Api(cluster.api), client.CoreV1Api(cluster.api)
    assert not exists(apps.read_namespaced_deployment, "minio", NS)
    assert not exists(client.BatchV1Api(cluster.api).read_namespaced_job, JOB, NS)
    assert not exists(core.read_namespaced_service, "minio", NS)
    assert secret_data(cluster, NS, "minio-secret") == before  # the kept data was initialised with it
    assert exists(core.read_namespaced_persistent_volume_claim, "minio", NS)
    assert exists(core.read_namespace, NS)
    assert run_role("minio", "uninstall").progress.changed == 0
    run_role("minio")  # enabled again: the same credentials for the same data
    assert secret_data(cluster, NS, "minio-secret") == before


def test_uninstall_with_delete_data_removes_the_pvc(
    cluster: Cluster, run_role: RoleRunner, spec: dict[str, Any]
) -> None:
    run_role("minio")
    before = secret_data(cluster, NS, "minio-secret")
    spec["persistence"]["deleteDataOnDisable"] = True
    run_role("minio", "uninstall", spec=spec)
    assert not exists(client.CoreV1Api(cluster.api).read_namespaced_persistent_volume_claim, "minio", NS)
    assert not exists(client.AppsV1Api(cluster.api).read_namespaced_deployment, "minio", NS)
    assert not exists(client.CoreV1Api(cluster.api).read_namespaced_secret, "minio-secret", NS)
    run_role("minio")  # enabled again on new data: new credentials
    assert secret_data(cluster, NS, "minio-secret") != before

"""What the component role tests share beyond ``run_role``.

``run_once`` runs a role outside a test function (module-scoped clean-up), with extra
variables, or keeping the run's artifacts so a test can prove a generated secret never
reached the output; the rest reads objects of the local cluster.
"""

from __future__ import annotations

import base64
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from kubernetes import client

from installer.runs import Runner, RunRequest, RunResult
from tests.conftest import Cluster
from tests.helpers import wait_for
from tests.roles.conftest import role_request, sample_spec


def run_once(
    role_runner: Runner,
    component: str,
    action: str = "install",
    *,
    spec: dict[str, Any] | None = None,
    check: bool = False,
    extra: dict[str, Any] | None = None,
    keep_artifacts: bool = False,
) -> RunResult:
    """One run of ``component``'s role as the operator makes it; fails on a failed run."""
    request = role_request(component, action, spec=spec, check=check, extra=extra)
    return run_request(role_runner, request, keep_artifacts=keep_artifacts)


def run_request(role_runner: Runner, request: RunRequest, *, keep_artifacts: bool = False) -> RunResult:
    """Run ``request`` (with a runner that keeps the artifacts if asked); fails on a failed run."""
    runner = role_runner
    if keep_artifacts:
        runner = Runner(
            project_dir=role_runner.project_dir,
            playbook=role_runner.playbook,
            work_dir=role_runner.work_dir,
            kubeconfig=role_runner.kubeconfig,
            keep_artifacts=True,
        )
    result = runner.run(request)
    assert result.ok, (
        f"{request.component} {request.action}: {result.status}: {result.failed_task}: {result.message}"
    )
    return result


def delete_data_spec() -> dict[str, Any]:
    """The sample spec with ``persistence.deleteDataOnDisable``: an uninstall takes the data too."""
    spec = sample_spec()
    spec["persistence"]["deleteDataOnDisable"] = True
    return spec


def uninstall_with_data(role_runner: Runner, component: str) -> None:
    """Remove the component, its PVCs and their Secrets, so the next test module starts clean."""
    run_once(role_runner, component, "uninstall", spec=delete_data_spec())


def artifacts_text(result: RunResult) -> str:
    """Everything a kept run wrote (events, stdout, env), then the directory is removed."""
    assert result.artifacts is not None
    try:
        return "\n".join(
            path.read_text(errors="replace")
            for path in sorted(Path(result.artifacts).rglob("*"))
            if path.is_file()
        )
    finally:
        shutil.rmtree(result.artifacts, ignore_errors=True)


def assert_not_leaked(values: Iterable[str], texts: dict[str, str]) -> None:
    """No secret value appears in any text, neither in clear nor base64 (as Secret data holds it)."""
    for value in values:
        assert value
        for form in (value, base64.b64encode(value.encode()).decode()):
            leaked = sorted(where for where, text in texts.items() if form in text)
            assert not leaked, f"a generated secret appears in: {', '.join(leaked)}"  # never the value itself


def secret_data(cluster: Cluster, namespace: str, name: str) -> dict[str, str]:
    sec = client.CoreV1Api(cluster.api).read_namespaced_secret(name, namespace)
    return {key: base64.b64decode(value).decode() for key, value in (sec.data or {}).items()}


def config_maps_text(cluster: Cluster, namespace: str) -> str:
    maps = client.CoreV1Api(cluster.api).list_namespaced_config_map(namespace).items
    return "\n".join(str(cm.data or {}) + str(cm.metadata.annotations or {}) for cm in maps)


def exists(read: Any, *args: str) -> bool:
    """Whether ``read(name, namespace)`` finds the object."""
    try:
        read(*args)
    except client.ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def pvc_bound(cluster: Cluster, namespace: str, name: str) -> None:
    core = client.CoreV1Api(cluster.api)
    wait_for(
        lambda: core.read_namespaced_persistent_volume_claim(name, namespace).status.phase == "Bound",
        timeout=60,
        what=f"PVC {namespace}/{name} to be Bound",
    )


def pvc_names(cluster: Cluster, namespace: str, component: str) -> set[str]:
    pvcs = client.CoreV1Api(cluster.api).list_namespaced_persistent_volume_claim(
        namespace, label_selector=f"app.kubernetes.io/component={component}"
    )
    return {p.metadata.name for p in pvcs.items if not p.metadata.deletion_timestamp}


DEVOPS_NS = "kubesphere-devops-system"


def devops_on(spec: dict[str, Any], **devops: Any) -> dict[str, Any]:
    """``spec`` with devops switched on (and any ``devops.*`` fields given)."""
    spec["devops"] = {**spec["devops"], "enabled": True, **devops}
    return spec


def drop_devops_namespace_if_empty(api: client.ApiClient) -> None:
    """Delete the devops namespace when nothing is left in it (roles never delete namespaces)."""
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    if not exists(core.read_namespace, DEVOPS_NS):
        return
    leftovers = [
        *apps.list_namespaced_deployment(DEVOPS_NS).items,
        *core.list_namespaced_persistent_volume_claim(DEVOPS_NS).items,
        *core.list_namespaced_secret(DEVOPS_NS).items,
        *[
            cm
            for cm in core.list_namespaced_config_map(DEVOPS_NS).items
            if cm.metadata.name != "kube-root-ca.crt"
        ],
    ]
    if leftovers:
        return
    core.delete_namespace(DEVOPS_NS)
    wait_for(
        lambda: not exists(core.read_namespace, DEVOPS_NS),
        timeout=120,
        what=f"namespace {DEVOPS_NS} to go away",
    )

"""The ClusterConfiguration CRD on a real API server: ks-installer's v3.4.1 sample and ours are
accepted unchanged, fields we do not know are kept, a wrong ``kubectl patch`` is rejected with
the field path, and ``kubectl get cc`` and the status subresource behave as users expect."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from ansible_collections.kubesphere.installer.plugins.filter.spec import format_problems
from kubernetes import client

from tests.conftest import Cluster
from tests.helpers import kubectl
from tests.templates.hostile import FIELDS, HOSTILE, with_value

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
CRD_FILE = REPO / "deploy" / "crds" / "installer.kubesphere.io_clusterconfigurations.yaml"
OUR_SAMPLE = REPO / "deploy" / "cluster-configuration.yaml"
KS_SAMPLE = Path(__file__).parent / "fixtures" / "ks-installer-v3.4.1-sample.yaml"
GROUP, VERSION, PLURAL = "installer.kubesphere.io", "v1alpha1", "clusterconfigurations"
RESOURCE = f"{PLURAL}.{GROUP}"
NAME = "ks-installer"


@pytest.fixture(scope="module")
def crd(cc_crd: None) -> None:
    """The CRD from deploy/crds, applied once per session by tests/installer/conftest.py."""


def _custom(cluster: Cluster) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(cluster.api)


def _load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(path.read_text())
    return doc


def _create(cluster: Cluster, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
    body = copy.deepcopy(body)
    body["metadata"]["namespace"] = namespace
    # Strict: a field the schema would prune fails the request instead of vanishing.
    obj = _custom(cluster).create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, body, field_validation="Strict"
    )
    return cast(dict[str, Any], obj)


def _get(cluster: Cluster, namespace: str) -> dict[str, Any]:
    obj = _custom(cluster).get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, NAME)
    return cast(dict[str, Any], obj)


def _patch(cluster: Cluster, namespace: str, ops: list[dict[str, Any]], *extra: str) -> Any:
    """The users' form: ``kubectl patch -n<ns> clusterconfigurations.installer.kubesphere.io
    ks-installer --type=json -p='[...]'``; returns the completed process, failed or not."""
    return kubectl(
        cluster.kubectl, cluster.kubeconfig, "patch", f"-n{namespace}", RESOURCE, NAME,
        "--type=json", f"-p={json.dumps(ops)}", *extra, check=False,
    )  # fmt: skip


@pytest.fixture
def cc(cluster: Cluster, crd: None, namespace: str) -> dict[str, Any]:
    """Our sample ClusterConfiguration, created in a fresh namespace (deleted with it)."""
    return _create(cluster, namespace, _load(OUR_SAMPLE))


def test_ks_installer_v341_sample_is_accepted_unchanged(cluster: Cluster, crd: None, namespace: str) -> None:
    sample = _load(KS_SAMPLE)
    assert sample["spec"]["devops"]["jenkinsCpuReq"] == 0.5  # the bare number users have in their CRs
    _create(cluster, namespace, sample)
    stored = _get(cluster, namespace)
    assert stored["spec"] == sample["spec"]
    assert stored["metadata"]["labels"] == {"version": "v3.4.1"}


def test_our_sample_is_accepted_unchanged(cluster: Cluster, cc: dict[str, Any], namespace: str) -> None:
    sample = _load(OUR_SAMPLE)
    assert cc["spec"] == sample["spec"]
    assert _get(cluster, namespace)["spec"] == sample["spec"]
    assert sample["spec"]["devops"]["enabled"] is False
    assert sample["spec"]["common"]["redis"]["enabled"] is False
    assert sample["spec"]["common"]["openldap"]["enabled"] is False
    assert "adminPassword" not in sample["spec"]["authentication"]


def test_fields_of_unknown_versions_are_kept(cluster: Cluster, crd: None, namespace: str) -> None:
    body = _load(KS_SAMPLE)
    body["spec"]["futureThing"] = {"a": 1, "nested": {"list": [1, "two"]}}
    body["spec"]["logging"]["futureKnob"] = "on"  # inside a component we accept but do not act on
    _create(cluster, namespace, body)
    spec = _get(cluster, namespace)["spec"]
    assert spec["futureThing"] == {"a": 1, "nested": {"list": [1, "two"]}}
    assert spec["logging"]["futureKnob"] == "on"


@pytest.mark.parametrize(
    ("op", "path", "value", "expected"),
    [
        ("replace", "/spec/devops/enabled", "yes", ["spec.devops.enabled", "boolean"]),
        (
            "replace",
            "/spec/common/redis/volumeSize",
            "lots",
            ["spec.common.redis.volumeSize", "should match"],
        ),
        (
            "replace",
            "/spec/multicluster/clusterRole",
            "boss",
            ["spec.multicluster.clusterRole", '"none"', '"host"', '"member"'],
        ),
        ("replace", "/spec/common/core/console/port", 99999, ["spec.common.core.console.port", "32767"]),
        (
            "replace",
            "/spec/common/core/console/type",
            "Ingress",
            ["spec.common.core.console.type", '"NodePort"'],
        ),
        ("replace", "/spec/devops/jenkinsCpuReq", "many", ["spec.devops.jenkinsCpuReq", "should match"]),
        ("replace", "/spec/devops/jenkinsCpuLim", True, ["spec.devops.jenkinsCpuLim"]),
        ("replace", "/spec/devops/jenkinsCpuLim", -1, ["spec.devops.jenkinsCpuLim"]),
        ("replace", "/spec/network/ippool/type", "flannel", ["spec.network.ippool.type", '"calico"']),
        ("replace", "/spec/monitoring/node_exporter/port", 0, ["spec.monitoring.node_exporter.port"]),
    ],
    ids=lambda v: v if isinstance(v, str) and v.startswith("/") else None,
)
def test_wrong_patch_is_rejected_with_the_field_path(
    cluster: Cluster, cc: dict[str, Any], namespace: str, op: str, path: str, value: Any, expected: list[str]
) -> None:
    result = _patch(cluster, namespace, [{"op": op, "path": path, "value": value}])
    assert result.returncode != 0, result.stdout
    for text in expected:
        assert text in result.stderr, result.stderr
    assert _get(cluster, namespace)["metadata"]["resourceVersion"] == cc["metadata"]["resourceVersion"]


def test_typo_in_a_typed_object_is_not_taken_silently(
    cluster: Cluster, cc: dict[str, Any], namespace: str, tmp_path: Path
) -> None:
    # kubectl patch warns and the API server drops the field (objects the installer acts on are
    # fully typed, so a typo cannot pass for a setting) ...
    result = _patch(cluster, namespace, [{"op": "add", "path": "/spec/devops/enable", "value": True}])
    assert result.returncode == 0, result.stderr
    assert 'unknown field "spec.devops.enable"' in result.stderr
    assert "enable" not in _get(cluster, namespace)["spec"]["devops"]
    # ... and kubectl apply, which validates strictly, refuses it.
    body = _load(OUR_SAMPLE)
    body["metadata"]["namespace"] = namespace
    body["spec"]["devops"]["enable"] = True
    manifest = tmp_path / "cc.yaml"
    manifest.write_text(yaml.safe_dump(body))
    applied = kubectl(cluster.kubectl, cluster.kubeconfig, "apply", "-f", str(manifest), check=False)
    assert applied.returncode != 0
    assert 'unknown field "spec.devops.enable"' in applied.stderr


def test_correct_patch_is_accepted(cluster: Cluster, cc: dict[str, Any], namespace: str) -> None:
    result = _patch(cluster, namespace, [{"op": "replace", "path": "/spec/devops/enabled", "value": True}])
    assert result.returncode == 0, result.stderr
    assert _get(cluster, namespace)["spec"]["devops"]["enabled"] is True


@pytest.mark.parametrize("value", [0.5, 1, "500m", "1", "1.5", 2.25])
def test_jenkins_cpu_takes_numbers_and_quantities(
    cluster: Cluster, cc: dict[str, Any], namespace: str, value: Any
) -> None:
    result = _patch(
        cluster, namespace, [{"op": "replace", "path": "/spec/devops/jenkinsCpuReq", "value": value}]
    )
    assert result.returncode == 0, result.stderr
    assert _get(cluster, namespace)["spec"]["devops"]["jenkinsCpuReq"] == value


def test_get_cc_shows_the_printer_columns(cluster: Cluster, cc: dict[str, Any], namespace: str) -> None:
    status = {
        "core": {"status": "enabled", "version": "v0.1.0"},
        "summary": "2/2 enabled",
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "AllEnabled",
                "message": "",
                "observedGeneration": cc["metadata"]["generation"],
                "lastTransitionTime": "2026-01-01T00:00:00Z",
            },
            {
                "type": "Paused",
                "status": "False",
                "reason": "NotPaused",
                "message": "",
                "observedGeneration": cc["metadata"]["generation"],
                "lastTransitionTime": "2026-01-01T00:00:00Z",
            },
        ],
    }
    patched = kubectl(
        cluster.kubectl, cluster.kubeconfig, "patch", f"-n{namespace}", RESOURCE, NAME,
        "--subresource=status", "--type=merge", f"-p={json.dumps({'status': status})}",
    )  # fmt: skip
    assert patched.returncode == 0
    out = kubectl(cluster.kubectl, cluster.kubeconfig, "get", "cc", "-n", namespace).stdout
    header, row = out.splitlines()[:2]
    assert header.split() == ["NAME", "VERSION", "READY", "COMPONENTS", "PAUSED", "AGE"]
    assert row.split()[:6] == [NAME, "v0.1.0", "True", "2/2", "enabled", "False"]
    listed = kubectl(
        cluster.kubectl, cluster.kubeconfig, "get", "kubesphere", "-n", namespace, "-o", "name"
    ).stdout
    assert f"clusterconfiguration.installer.kubesphere.io/{NAME}" in listed.split()


def test_status_is_a_subresource(cluster: Cluster, cc: dict[str, Any], namespace: str) -> None:
    generation = cc["metadata"]["generation"]
    status_patch = kubectl(
        cluster.kubectl, cluster.kubeconfig, "patch", f"-n{namespace}", RESOURCE, NAME,
        "--subresource=status", "--type=merge", "-p", '{"status":{"summary":"x"}}',
    )  # fmt: skip
    assert status_patch.returncode == 0
    after_status = _get(cluster, namespace)
    assert after_status["status"]["summary"] == "x"
    assert after_status["metadata"]["generation"] == generation

    # Through the main resource, status is ignored.
    kubectl(
        cluster.kubectl, cluster.kubeconfig, "patch", f"-n{namespace}", RESOURCE, NAME,
        "--type=merge", "-p", '{"status":{"summary":"y"}}',
    )  # fmt: skip
    assert _get(cluster, namespace)["status"]["summary"] == "x"

    # The status schema holds too.
    bad = _patch(
        cluster, namespace,
        [{"op": "add", "path": "/status/conditions", "value": [{"type": "Ready", "status": "Maybe"}]}],
        "--subresource=status",
    )  # fmt: skip
    assert bad.returncode != 0
    assert "status.conditions[0].status" in bad.stderr, bad.stderr

    spec_patch = _patch(
        cluster, namespace, [{"op": "replace", "path": "/spec/devops/enabled", "value": True}]
    )
    assert spec_patch.returncode == 0, spec_patch.stderr
    assert _get(cluster, namespace)["metadata"]["generation"] == generation + 1


# The two reports, as users type them: each refused with the field path, nothing stored.
@pytest.mark.parametrize(
    "value", ["reg.io\n          workingDir: ", "{{ lookup('pipe','id') }}"], ids=["newline", "jinja"]
)
def test_a_registry_that_is_not_a_registry_is_refused(
    cluster: Cluster, cc: dict[str, Any], namespace: str, value: str
) -> None:
    result = _patch(cluster, namespace, [{"op": "replace", "path": "/spec/local_registry", "value": value}])
    assert result.returncode != 0, result.stdout
    assert "spec.local_registry" in result.stderr and "should match" in result.stderr, result.stderr
    assert _get(cluster, namespace)["metadata"]["resourceVersion"] == cc["metadata"]["resourceVersion"]


def test_hostile_values_are_refused_where_the_formats_say(
    cluster: Cluster, cc: dict[str, Any], namespace: str
) -> None:
    """Every (field, hostile value) of tests/templates/hostile.py, as a server-side dry run:
    refused with its field path exactly where ``format_problems`` refuses it (the rest is
    either taken verbatim, tests/templates/test_hostile.py, or refused by preflight)."""
    api = _custom(cluster)
    wrong: list[str] = []
    for field in FIELDS:
        for name, value in HOSTILE.items():
            body = {"spec": with_value({}, field.path, field.wrap(value))}
            refused = bool(format_problems(body["spec"]))
            try:
                api.patch_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, NAME, body, dry_run="All"
                )
            except client.ApiException as exc:
                if exc.status != 422:
                    raise
                if not refused:
                    wrong.append(f"{field.id} = {name}: refused by the API server, accepted by FORMATS")
                elif f"spec.{field.path}" not in json.loads(exc.body)["message"]:
                    wrong.append(f"{field.id} = {name}: refused without its field path: {exc.body[:300]}")
            else:
                if refused:
                    wrong.append(f"{field.id} = {name}: accepted by the API server, refused by FORMATS")
    assert not wrong, "\n".join(wrong)
    assert _get(cluster, namespace)["metadata"]["resourceVersion"] == cc["metadata"]["resourceVersion"]

"""The manager as a process: restart mid-way, two replicas under one Lease, endpoints, bad settings."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest

from tests.conftest import Cluster
from tests.controllers.support import Manager, Objects, strip_all_finalizers, unique, write_config
from tests.helpers import wait_for

IAM = "iam.kubesphere.io/v1alpha2"
TENANT1, TENANT2 = "tenant.kubesphere.io/v1alpha1", "tenant.kubesphere.io/v1alpha2"
DEVOPS = "devops.kubesphere.io/v1alpha3"
RBAC = "rbac.authorization.k8s.io/v1"
PASSWORD = "P@88w0rdTest1"


@pytest.fixture
def started(platform_crds: Cluster, tmp_path: Path, managers_seen: list[Manager]) -> Iterator[list[Manager]]:
    """Managers a test starts (without LDAP); all stopped afterwards, their finalizers stripped."""
    made: list[Manager] = []
    try:
        yield made
    finally:
        for m in made:
            m.stop()
        strip_all_finalizers(platform_crds.api)


def new_manager(
    cluster: Cluster, tmp_path: Path, made: list[Manager], seen: list[Manager], *, lease: str
) -> Manager:
    config = write_config(tmp_path / "kubesphere.yaml")
    m = Manager(
        kubeconfig=cluster.kubeconfig, log=tmp_path / f"manager-{len(made)}.log", config=config, lease=lease
    )
    made.append(m)
    seen.append(m)
    return m


@pytest.mark.cluster
def test_restart_mid_way_converges_without_duplicates(
    platform_crds: Cluster,
    objects: Objects,
    tmp_path: Path,
    started: list[Manager],
    managers_seen: list[Manager],
) -> None:
    lease = unique("ks-cm-restart")
    first = new_manager(platform_crds, tmp_path, started, managers_seen, lease=lease).start()
    ws = unique("ws")
    users = [unique("u") for _ in range(30)]
    objects.create(
        {
            "apiVersion": TENANT2,
            "kind": "WorkspaceTemplate",
            "metadata": {"name": ws},
            "spec": {"template": {"spec": {"manager": users[0]}}},
        }
    )
    for name in users:
        objects.create(
            {
                "apiVersion": IAM,
                "kind": "User",
                "metadata": {"name": name},
                "spec": {"email": f"{name}@example.com", "password": PASSWORD},
            }
        )
    namespaces = [unique("ns") for _ in range(15)]
    for ns in namespaces:
        objects.create(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {
                    "name": ns,
                    "labels": {"kubesphere.io/workspace": ws},
                    "annotations": {"kubesphere.io/creator": users[1]},
                },
            }
        )
    project = unique("devops")
    objects.create({"apiVersion": DEVOPS, "kind": "DevOpsProject", "metadata": {"name": project}, "spec": {}})
    # Killed while it is working through them.
    wait_for(
        lambda: first.metric("ks_controller_reconcile_total") >= 5, timeout=30, what="reconciles under way"
    )
    first.kill()
    second = new_manager(platform_crds, tmp_path, started, managers_seen, lease=lease).start()

    def all_active() -> bool:
        return all((objects.get(IAM, "User", n).get("status") or {}).get("state") == "Active" for n in users)

    wait_for(all_active, timeout=120, what="every user Active after the restart")
    for name in users[:3]:
        assert bcrypt.checkpw(PASSWORD.encode(), objects.get(IAM, "User", name)["spec"]["password"].encode())
    for name in users:
        u = objects.get(IAM, "User", name)
        assert len(u["metadata"]["finalizers"]) == len(set(u["metadata"]["finalizers"])), u["metadata"]
        cms = objects.list(
            "v1",
            "ConfigMap",
            namespace="kubesphere-controls-system",
            labels=f"iam.kubesphere.io/user-ref={name}",
        )
        assert [c["metadata"]["name"] for c in cms] == [f"kubeconfig-{name}"]

    def converged_namespace(ns: str) -> bool:
        got = objects.get("v1", "Namespace", ns)
        owners = [o for o in got["metadata"].get("ownerReferences") or [] if o["kind"] == "Workspace"]
        roles = {r["metadata"]["name"] for r in objects.list(RBAC, "Role", namespace=ns)}
        binding = objects.get(RBAC, "RoleBinding", f"{users[1]}-admin", ns)
        return len(owners) == 1 and {"admin", "operator", "viewer"} <= roles and binding is not None

    for ns in namespaces:
        wait_for(lambda ns=ns: converged_namespace(ns), timeout=60, what=f"namespace {ns} converged")
        owners = objects.get("v1", "Namespace", ns)["metadata"]["ownerReferences"]
        assert len(owners) == 1, owners
    label = f"kubesphere.io/workspace={ws}"
    wait_for(lambda: len(objects.list(IAM, "WorkspaceRole", labels=label)) == 4, timeout=60, what="4 roles")
    assert len(objects.list(IAM, "WorkspaceRoleBinding", labels=label)) == 1
    wait_for(
        lambda: (objects.get(DEVOPS, "DevOpsProject", project).get("status") or {}).get("adminNamespace"),
        timeout=60,
        what="devops admin namespace",
    )
    assert len(objects.list("v1", "Namespace", labels=f"kubesphere.io/devopsproject={project}")) == 1
    # The new process did the rest of the work, and repeats none of it on a third look.
    assert second.metric("ks_controller_reconcile_total") > 0


@pytest.mark.cluster
def test_two_replicas_one_acts_and_the_standby_takes_over(
    platform_crds: Cluster,
    objects: Objects,
    tmp_path: Path,
    started: list[Manager],
    managers_seen: list[Manager],
) -> None:
    lease = unique("ks-cm-pair")
    a = new_manager(platform_crds, tmp_path, started, managers_seen, lease=lease).start()
    b = new_manager(platform_crds, tmp_path, started, managers_seen, lease=lease).start()
    leader = wait_for(
        lambda: next((m for m in (a, b) if m.metric("ks_controller_leader") == 1), None),
        timeout=30,
        what="a leader",
    )
    standby = b if leader is a else a
    assert standby.metric("ks_controller_leader") == 0
    assert standby.get("/readyz") == (200, "ok (standby)\n")
    assert leader.get("/healthz")[0] == 200

    def new_user() -> str:
        name = unique("u")
        objects.create(
            {
                "apiVersion": IAM,
                "kind": "User",
                "metadata": {"name": name},
                "spec": {"email": f"{name}@example.com", "password": PASSWORD},
            }
        )
        return name

    def active(name: str) -> bool:
        return (objects.get(IAM, "User", name).get("status") or {}).get("state") == "Active"

    first = new_user()
    wait_for(lambda: active(first), timeout=30, what="user Active through the leader")
    # The handler is counted when it returns, after the user's kubeconfig is filed too.
    wait_for(lambda: leader.metric("ks_controller_reconcile_total", controller="user") > 0,
             timeout=30, what="the leader's user reconcile counted")  # fmt: skip
    assert standby.metric("ks_controller_reconcile_total") == 0, "the standby acted"
    assert standby.metric("ks_controller_api_requests_total", verb="patch") == 0

    leader.kill()
    second = new_user()
    wait_for(lambda: standby.metric("ks_controller_leader") == 1, timeout=30, what="the standby takes over")
    wait_for(lambda: active(second), timeout=30, what="user Active through the new leader")
    assert standby.metric("ks_controller_reconcile_total", controller="user") > 0

    # A clean stop hands the lease back at once.
    assert standby.stop() == 0
    lease_obj = objects.get("coordination.k8s.io/v1", "Lease", lease, "default")
    assert not lease_obj["spec"].get("holderIdentity")
    objects.delete("coordination.k8s.io/v1", "Lease", lease, "default")


@pytest.mark.cluster
def test_a_leader_that_loses_its_lease_stops(
    platform_crds: Cluster,
    objects: Objects,
    tmp_path: Path,
    started: list[Manager],
    managers_seen: list[Manager],
) -> None:
    lease = unique("ks-cm-lost")
    m = new_manager(platform_crds, tmp_path, started, managers_seen, lease=lease).start()
    wait_for(lambda: m.metric("ks_controller_leader") == 1, timeout=30, what="leader")
    # Another replica (as far as the Lease says) takes over: this one must stop acting, and exit.
    spec = {
        "holderIdentity": "someone-else",
        "renewTime": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    }
    objects.patch("coordination.k8s.io/v1", "Lease", lease, {"spec": spec}, "default")
    assert m.proc is not None
    m.proc.wait(30)
    assert m.proc.returncode == 1
    assert "lost leadership" in m.log.read_text()
    objects.delete("coordination.k8s.io/v1", "Lease", lease, "default")


def _main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    from controllers import cli

    code = cli.main(args)
    return code, capsys.readouterr().err


def test_bad_config_exits_with_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBESPHERE_LDAP_PASSWORD", raising=False)
    bad = tmp_path / "kubesphere.yaml"
    bad.write_text("authentication:\n  authenticateRateLimiterDuration: soon\n")
    code, err = _main(["--config", str(bad), "--no-leader-election", "--log-level", "debug"], capsys)
    assert code == 2
    assert "authenticateRateLimiterDuration" in err and "soon" in err
    # kopf prints whole objects (passwords too) at DEBUG: it stays at INFO however verbose the manager is.
    assert logging.getLogger("kopf").level == logging.INFO
    code, err = _main(["--config", str(tmp_path / "missing.yaml")], capsys)
    assert code == 2 and "no such file" in err
    ldap = tmp_path / "ldap.yaml"
    ldap.write_text("ldap:\n  host: 127.0.0.1:389\n  managerDN: cn=admin,dc=kubesphere,dc=io\n")
    code, err = _main(["--config", str(ldap)], capsys)
    assert code == 2 and "KUBESPHERE_LDAP_PASSWORD" in err


@pytest.mark.cluster
def test_missing_lease_namespace_is_a_clear_error(
    platform_crds: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    ns = unique("nowhere")
    code, err = _main(["--kubeconfig", str(platform_crds.kubeconfig), "--lease-namespace", ns], capsys)
    assert code == 2
    assert f"lease namespace {ns!r} does not exist" in err

"""Fixtures of the controller tests: one ks-controller-manager per module, against the real
cluster and a real slapd, with a short rate-limit window (20s) and login history (30s, 12 entries).
Its log is printed when a test fails."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import Cluster
from tests.controllers.support import Manager, Objects, strip_all_finalizers, unique, write_config
from tests.services import Slapd

WINDOW = 20.0
RETENTION = 30.0
MAX_ENTRIES = 12


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for manager in item.funcargs.get("managers_seen", []) if hasattr(item, "funcargs") else []:
            report.sections.append((f"ks-controller-manager log ({manager.identity})", manager.tail(150)))


@pytest.fixture(scope="module")
def manager(
    platform_crds: Cluster, slapd: Slapd, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Manager]:
    """The controller manager under test, with LDAP sync on and leader election on its own Lease."""
    work = tmp_path_factory.mktemp("ks-cm")
    config = write_config(
        work / "kubesphere.yaml",
        window=f"{int(WINDOW)}s",
        retention=f"{int(RETENTION)}s",
        max_entries=MAX_ENTRIES,
        ldap_host=slapd.host,
        manager_dn=slapd.manager_dn,
    )
    m = Manager(
        kubeconfig=platform_crds.kubeconfig,
        log=work / "manager.log",
        config=config,
        lease=unique("ks-cm-test"),
        env={"KUBESPHERE_LDAP_PASSWORD": slapd.password},
    )
    m.start()
    try:
        yield m
    finally:
        m.stop()
        strip_all_finalizers(platform_crds.api)


@pytest.fixture(autouse=True)
def managers_seen(request: pytest.FixtureRequest) -> list[Manager]:
    """Managers whose logs a failing test should show (the module's, plus any a test adds)."""
    seen: list[Manager] = []
    if "manager" in request.fixturenames:
        seen.append(request.getfixturevalue("manager"))
    return seen


@pytest.fixture
def objects(platform_crds: Cluster) -> Iterator[Objects]:
    objs = Objects(platform_crds.api)
    try:
        yield objs
    finally:
        objs.cleanup()

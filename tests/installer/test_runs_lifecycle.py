"""A run lives no longer than the operator that started it, and leaves nothing behind."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Cluster
from tests.helpers import wait_for
from tests.installer.conftest import Operator, component, create_cc, get_cc, patch_cc, probe_spec, wait_ready

pytestmark = pytest.mark.cluster

OperatorFactory = Callable[..., Operator]


def _pgid(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[2])
    except (OSError, IndexError, ValueError):
        return None


def _processes(where: Path) -> dict[int, str]:
    """Processes whose command line names ``where`` (the run's ansible-playbook and its workers)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(where) in cmdline:
            found[int(entry.name)] = cmdline
    return found


def _in_group(pgid: int) -> list[int]:
    return [int(e.name) for e in Path("/proc").iterdir() if e.name.isdigit() and _pgid(int(e.name)) == pgid]


def test_sigkill_of_the_operator_leaves_no_run_behind(
    cluster: Cluster, namespace: str, operators: OperatorFactory, tmp_path: Path
) -> None:
    create_cc(cluster, namespace, probe_spec(namespace, alpha={"enabled": True, "sleep": 60}))
    first = operators()
    wait_for(
        lambda: component(get_cc(cluster, namespace), "alpha").get("state") == "Installing",
        timeout=90,
        what="alpha installing",
    )
    runs = tmp_path / "runs"
    data_dir = wait_for(
        lambda: next(iter(runs.glob("ks-run-alpha-install-*")), None), what="the run's data dir"
    )
    procs = wait_for(
        lambda: {p: c for p, c in _processes(data_dir).items() if "ansible-playbook" in c} or None,
        what="the run's ansible-playbook",
    )
    groups = {g for g in map(_pgid, procs) if g is not None}
    assert groups, procs

    first.kill()  # SIGKILL: no chance to cancel anything

    wait_for(lambda: not _processes(data_dir), timeout=30, what="the dead operator's playbook to go")
    wait_for(lambda: not any(_in_group(g) for g in groups), timeout=30, what="its process group to go")
    assert data_dir.exists(), "nobody else removes it before an operator starts"
    # The next operator re-runs alpha from the spec as it is then: no need to sleep again.
    patch_cc(cluster, namespace, [{"op": "replace", "path": "/spec/probe/alpha/sleep", "value": 0}])

    second = operators()
    second.wait_log("removed 1 run data dirs left by operators that are gone")
    assert not data_dir.exists()
    cc = wait_ready(cluster, namespace)
    assert component(cc, "alpha")["state"] == "Enabled"
    assert not list(runs.glob("ks-run-*")), "the finished run removed its own data dir"


def test_progress_lines_carry_the_real_total_from_the_first(
    cluster: Cluster, namespace: str, operators: OperatorFactory
) -> None:
    create_cc(cluster, namespace, probe_spec(namespace, alpha={"enabled": True}))
    op = operators()
    cc = wait_ready(cluster, namespace)
    lines = re.findall(r"\[alpha\] (\d+)/(\d+) tasks", op.log())
    assert lines, op.log()[-2000:]
    done = component(cc, "alpha")["tasks"]
    assert {int(total) for _, total in lines} == {done["done"]}, lines  # never a growing total
    assert done["total"] == done["done"]

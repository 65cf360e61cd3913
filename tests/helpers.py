"""Small polling helpers for tests: every wait is bounded and says what it waited for."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


REPO = Path(__file__).resolve().parents[1]


def wait_for(check: Callable[[], T | None], *, timeout: float = 60, what: str, interval: float = 0.2) -> T:
    """Poll ``check`` until it returns a truthy value; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def kubectl(
    kubectl_bin: Path, kubeconfig: Path, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run the kubectl built with the cluster; on failure the assertion shows its stderr."""
    result = subprocess.run(
        [str(kubectl_bin), f"--kubeconfig={kubeconfig}", *args], capture_output=True, text=True, timeout=120
    )
    if check and result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr}")
    return result


def uninstall_platform(kubectl_bin: Path, kubeconfig: Path, namespace: str = "kubesphere-system") -> None:
    """What a suite that installed the whole platform leaves: nothing. The ClusterConfiguration
    goes first (stop its operator before), then ``playbooks/uninstall.yml`` removes the rest."""
    kubectl(kubectl_bin, kubeconfig, "delete", "-n", namespace, "cc", "ks-installer", check=False)
    subprocess.run(
        [str(REPO / ".venv" / "bin" / "ansible-playbook"), "-i", str(REPO / "inventory" / "local"),
         str(REPO / "playbooks" / "uninstall.yml")],
        cwd=REPO, env=dict(os.environ, KUBECONFIG=str(kubeconfig)), capture_output=True, check=False,
    )  # fmt: skip

"""The first process of every run: ansible-playbook lives only as long as the operator does.

ansible-runner starts the playbook under a pseudo-terminal with SIGHUP ignored,
so when the operator that started it dies (SIGKILL, OOM), nothing stops the
playbook: it goes on changing the cluster, its output blocked on a terminal
nobody reads, its data dir (the spec's extra vars) left in the temp dir.

ansible-runner runs this guard in the playbook's place (``binary=``).  The
guard asks the kernel for SIGTERM when its parent goes (``PR_SET_PDEATHSIG``),
then runs ``ansible-playbook`` with the same arguments as its child in its own
process group (the one ansible-runner's cancel kills).  On that SIGTERM, or if
the parent is already gone when it starts, it kills the whole group: the
playbook and its forked workers.  The operator's own cancel and timeout stay
as they are (a SIGKILL of that group).

Linux only (``prctl``); elsewhere the guard only runs the playbook.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType

PR_SET_PDEATHSIG = 1
#: The operator's pid, set in the run's environment: the guard's parent must be it.
PARENT_ENV = "KS_INSTALLER_PID"


def _kill_group(_signum: int = 0, _frame: FrameType | None = None) -> None:
    os.killpg(os.getpgrp(), signal.SIGKILL)


def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        return


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGTERM, _kill_group)
    _die_with_parent()
    expected = os.environ.get(PARENT_ENV)
    if expected and os.getppid() != int(expected):
        _kill_group()  # the operator died before the guard could ask to follow it
    playbook = Path(sys.executable).with_name("ansible-playbook")
    command = [str(playbook) if playbook.exists() else "ansible-playbook", *argv]
    return subprocess.call(command)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

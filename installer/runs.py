"""Running one component's role through ansible-runner: a process boundary.

Every run gets a private data dir of its own (extravars written 0600 with every
string marked ``!unsafe`` so Jinja in the spec is never evaluated, an inventory
for localhost with this interpreter, the env the roles need), a timeout,
cancellation from another thread, and events handled as they arrive: task
counters feed progress callbacks, and the last failed task becomes the
failure message.  The data dir is removed afterwards unless kept for debugging.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ansible_runner
import yaml

from installer import runguard

log = logging.getLogger(__name__)

SUCCESSFUL = "successful"
FAILED = "failed"
TIMEOUT = "timeout"
CANCELED = "canceled"
ERROR = "error"


@dataclass
class Progress:
    """Task counters of a run in flight (and, at the end, of the whole run)."""

    started: int = 0
    expected: int | None = None
    ok: int = 0
    changed: int = 0
    failed: int = 0
    skipped: int = 0
    current_task: str = ""

    def as_status(self) -> dict[str, int]:
        counters = {
            "done": self.started,
            "ok": self.ok,
            "changed": self.changed,
            "failed": self.failed,
            "skipped": self.skipped,
        }
        if self.expected is not None:
            counters["total"] = max(self.expected, self.started)
        return counters


@dataclass(frozen=True)
class RunRequest:
    component: str
    action: str
    role: str
    variables: Mapping[str, Any]
    timeout: float
    expected_tasks: int | None = None
    #: Run in check mode (``--check --diff``): report what would change, change nothing.
    check: bool = False


@dataclass
class RunResult:
    status: str
    rc: int | None
    progress: Progress
    duration: float
    failed_task: str | None = None
    message: str | None = None
    artifacts: Path | None = None
    failures: list[str] = field(default_factory=list)
    #: Objects an uninstall or a prune could not remove (``{kind, namespace?, name, reason}``).
    leftovers: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == SUCCESSFUL


#: Every run's data dir is named ``ks-run-<component>-<action>-<random>`` and records its operator.
DATA_DIR_PREFIX = "ks-run-"
OWNER_FILE = "owner"
GUARD = "ansible-playbook"
GUARD_SCRIPT = "import sys\nfrom installer.runguard import main\nsys.exit(main(sys.argv[1:]))\n"


def _process_identity(pid: int) -> str:
    """``<pid> <start time>``: a pid alone may be reused after the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        started = stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        started = "?"
    return f"{pid} {started}"


def _owner_alive(data_dir: Path) -> bool:
    try:
        recorded = (data_dir / OWNER_FILE).read_text().strip()
        pid = int(recorded.split()[0])
    except (OSError, ValueError, IndexError):
        return True  # not ours, or being created: leave it
    return _process_identity(pid) == recorded


def _processes_mentioning(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            found.append(int(entry.name))
    return found


def sweep_stale_runs(work_dir: Path | None) -> list[Path]:
    """Remove the data dirs (and any process still in them) of operators that are gone."""
    base = work_dir or Path(tempfile.gettempdir())
    removed = []
    for data_dir in sorted(base.glob(f"{DATA_DIR_PREFIX}*")):
        if not data_dir.is_dir() or _owner_alive(data_dir):
            continue
        for pid in _processes_mentioning(str(data_dir)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(data_dir, ignore_errors=True)
        removed.append(data_dir)
    return removed


class _UnsafeDumper(yaml.SafeDumper):
    """Tags every string ``!unsafe`` so Ansible never templates a spec value."""


def _unsafe_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("!unsafe", value)


_UnsafeDumper.add_representer(str, _unsafe_str)


def dump_unsafe(data: Mapping[str, Any]) -> str:
    return yaml.dump(dict(data), Dumper=_UnsafeDumper, default_flow_style=False, sort_keys=True)


def _failure_text(event_data: dict[str, Any]) -> str:
    res = event_data.get("res") or {}
    parts = [str(res.get("msg") or "").strip()]
    # A loop fails with "One or more items failed": the items say why.
    for item in res.get("results") or []:
        if isinstance(item, dict) and item.get("failed") and item.get("msg"):
            parts.append(str(item["msg"]).strip())
    for key in ("stderr", "reason"):
        if res.get(key):
            parts.append(str(res[key]).strip())
    text = " ".join(p for p in parts if p) or "unknown error"
    return text[:2000]


class Runner:
    """Runs ``playbook`` for one component at a time; safe to use from several threads."""

    def __init__(
        self,
        *,
        project_dir: Path,
        playbook: Path,
        work_dir: Path | None = None,
        kubeconfig: Path | None = None,
        keep_artifacts: bool = False,
        verbosity: int = 0,
        roles_paths: list[Path] | None = None,
    ) -> None:
        self.project_dir = project_dir
        self.roles_paths = roles_paths or [project_dir / "roles"]
        self.playbook = playbook
        self.work_dir = work_dir
        self.kubeconfig = kubeconfig
        self.keep_artifacts = keep_artifacts
        self.verbosity = verbosity

    def _envvars(self) -> dict[str, str]:
        env = {
            "ANSIBLE_CONFIG": str(self.project_dir / "ansible.cfg"),
            "ANSIBLE_ROLES_PATH": ":".join(str(p) for p in self.roles_paths),
            "ANSIBLE_COLLECTIONS_PATH": str(self.project_dir / "collections"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_RETRY_FILES_ENABLED": "0",
            "ANSIBLE_LOCAL_TEMP": "",  # set per run below
            "PYTHONUNBUFFERED": "1",
            # ansible-playbook lives beside this interpreter (a virtualenv need not be activated).
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        }
        if self.kubeconfig:
            env["K8S_AUTH_KUBECONFIG"] = str(self.kubeconfig)
            env["KUBECONFIG"] = str(self.kubeconfig)
        return env

    def _prepare(self, request: RunRequest) -> Path:
        if self.work_dir:
            self.work_dir.mkdir(parents=True, exist_ok=True)
        prefix = f"{DATA_DIR_PREFIX}{request.component}-{request.action}-"
        data_dir = Path(tempfile.mkdtemp(prefix=prefix, dir=self.work_dir))
        (data_dir / OWNER_FILE).write_text(_process_identity(os.getpid()))
        # The guard runs in ansible-playbook's place (see installer/runguard.py).
        guard = data_dir / GUARD
        guard.write_text(f"#!{sys.executable}\n{GUARD_SCRIPT}")
        guard.chmod(0o700)
        (data_dir / "env").mkdir()
        (data_dir / "inventory").mkdir()
        extravars = data_dir / "env" / "extravars"
        fd = os.open(extravars, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(dump_unsafe(request.variables))
        envvars = self._envvars()
        envvars["ANSIBLE_LOCAL_TEMP"] = str(data_dir / "tmp")
        envvars[runguard.PARENT_ENV] = str(os.getpid())
        (data_dir / "env" / "envvars").write_text(yaml.safe_dump(envvars))
        (data_dir / "inventory" / "hosts").write_text(
            f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n"
        )
        return data_dir

    def run(
        self,
        request: RunRequest,
        *,
        cancel: threading.Event | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        on_event: Callable[[dict[str, Any]], None] | None = None,
    ) -> RunResult:
        """Run the component's role with ``action`` and return what happened.

        ``on_event`` sees every event as it arrives (``ks-installer plan`` reads the task
        results of check runs there); it must not keep them beyond what it needs."""
        cancel = cancel or threading.Event()
        progress = Progress(expected=request.expected_tasks)
        failures: list[tuple[str, str]] = []
        leftovers: list[dict[str, Any]] = []
        started = time.monotonic()
        data_dir = self._prepare(request)

        def handle(event: dict[str, Any]) -> bool:
            kind = event.get("event", "")
            data = event.get("event_data") or {}
            if on_event:
                on_event(event)
            if kind == "playbook_on_task_start":
                progress.started += 1
                progress.current_task = str(data.get("task") or "")
                if on_progress:
                    on_progress(progress)
            elif kind == "runner_on_ok":
                progress.ok += 1
                res = data.get("res") or {}
                if res.get("changed"):
                    progress.changed += 1
                # The inventory action's report of what it could not remove (references, reasons).
                # What one pass leaves stays in the record and the next pass retries it, so a
                # later report replaces an earlier one (core removes in two passes).
                if "leftovers" in res:
                    leftovers[:] = [x for x in res["leftovers"] or [] if isinstance(x, dict)]
            elif kind == "runner_on_skipped":
                progress.skipped += 1
            elif kind in ("runner_on_failed", "runner_on_unreachable"):
                if not data.get("ignore_errors"):
                    progress.failed += 1
                    task = str(data.get("task") or "?")
                    role = data.get("role")
                    failures.append((f"{role} : {task}" if role else task, _failure_text(data)))
            elif kind == "playbook_on_stats" and data.get("rescued"):
                # Rescued failures do not fail the run; the stats say which hosts really failed.
                progress.failed = sum((data.get("failures") or {}).values())
            # Returning False keeps the event out of the on-disk artifacts.
            return self.keep_artifacts

        try:
            result = ansible_runner.run(
                private_data_dir=str(data_dir),
                playbook=str(self.playbook),
                project_dir=str(self.project_dir),
                quiet=True,
                verbosity=self.verbosity or None,
                event_handler=handle,
                cancel_callback=cancel.is_set,
                settings={
                    "job_timeout": int(request.timeout),
                    "pexpect_timeout": 0.5,
                    "suppress_ansible_output": True,
                },
                rotate_artifacts=1,
                # With a binary of its own, ansible-runner passes the arguments only: the
                # playbook comes first among them.
                binary=str(data_dir / GUARD),
                cmdline=shlex.join([*(["--check", "--diff"] if request.check else []), str(self.playbook)]),
            )
            status, rc = str(result.status), result.rc
        except Exception as exc:  # ansible-runner itself broke: report it, never crash
            log.exception("ansible-runner failed for %s %s", request.component, request.action)
            status, rc = ERROR, None
            failures.append(("ansible-runner", f"{type(exc).__name__}: {exc}"))
        duration = time.monotonic() - started

        if status == SUCCESSFUL:
            progress.expected = progress.started  # the real total, now that it is known
        out = RunResult(status=status, rc=rc, progress=progress, duration=duration)
        out.failures = [f"{t}: {m}" for t, m in failures]
        fields = ("apiVersion", "kind", "namespace", "name", "reason")
        out.leftovers = [{k: str(x[k]) for k in fields if x.get(k)} for x in leftovers]
        if status == TIMEOUT:
            out.failed_task = progress.current_task or None
            out.message = f"timed out after {request.timeout:.0f}s in task {progress.current_task!r}"
        elif status == CANCELED:
            out.message = "canceled"
        elif status != SUCCESSFUL:
            if failures:
                out.failed_task, out.message = failures[-1]
            else:
                out.failed_task = progress.current_task or None
                out.message = f"ansible-playbook exited with rc={rc}" + (
                    f" in task {progress.current_task!r}" if progress.current_task else ""
                )
                stdout = _stdout_tail(data_dir)
                if stdout:
                    out.message += f": {stdout}"
        if self.keep_artifacts:
            out.artifacts = data_dir
        else:
            shutil.rmtree(data_dir, ignore_errors=True)
        return out


def _stdout_tail(data_dir: Path, *, lines: int = 5) -> str:
    for path in sorted(data_dir.glob("artifacts/*/stdout")):
        text = path.read_text(errors="replace").strip().splitlines()
        return " | ".join(line.strip() for line in text[-lines:] if line.strip())[:1000]
    return ""

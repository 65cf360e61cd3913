"""Start, probe and stop the control plane's processes.

Each component runs detached in its own session with its output in
``<state>/logs/<name>.log``; the pids live in ``state.json``.  Stopping kills
recorded process groups and then sweeps ``/proc`` for anything still running
from this state directory, so nothing is left behind even if the state file
was lost.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


class ClusterError(RuntimeError):
    """A component failed; the message names it, its port and its log file."""


@dataclass(frozen=True)
class Component:
    name: str
    argv: list[str]
    port: int | None
    probe: Callable[[], bool]
    timeout: float = 90.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # Servers (Go's among them) set SO_REUSEADDR, so a port in TIME_WAIT is still usable.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); treat it as dead.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def pidfile_pid(pidfile: Path) -> int | None:
    """The live process a pid file names, or None (no file, garbage, or the process is gone)."""
    try:
        pid = int(pidfile.read_text())
    except (FileNotFoundError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def stop_pidfile(pidfile: Path, *, grace: float = 30.0) -> int | None:
    """SIGTERM the process a pid file names, SIGKILL after ``grace``; remove the file; return the pid."""
    pid = pidfile_pid(pidfile)
    pidfile.unlink(missing_ok=True)
    if pid is None:
        return None
    terminate(pid, grace=grace)
    return pid


def terminate(pid: int, *, grace: float = 30.0) -> None:
    """SIGTERM ``pid``, SIGKILL it after ``grace`` seconds; return once it is gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    _reap(pid)


#: Processes this interpreter started and has not reaped yet, by pid (see :func:`spawn`).
_STARTED: dict[int, subprocess.Popen[bytes]] = {}


def spawn(argv: list[str], log: Path, *, env: dict[str, str] | None = None, cwd: Path | None = None) -> int:
    """Start ``argv`` detached (a session of its own, output appended to ``log``); return its pid.

    It outlives this process if need be; while this process lives, its handle is kept so
    that stopping it also reaps it.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            env=env, cwd=cwd, start_new_session=True,
        )  # fmt: skip
    _STARTED[proc.pid] = proc
    return proc.pid


def adopt(proc: subprocess.Popen[bytes]) -> None:
    """Keep the handle of a detached child started elsewhere, so stopping it by pid also reaps it."""
    _STARTED[proc.pid] = proc


def _reap(pid: int) -> None:
    proc = _STARTED.pop(pid, None)
    if proc is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)


def http_ok(url: str, *, context: ssl.SSLContext | None = None, expect: str | None = None) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as resp:
            body = resp.read().decode(errors="replace")
            return resp.status == 200 and (expect is None or expect in body)
    except (urllib.error.URLError, OSError, ssl.SSLError):
        return False


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "".join(path.read_text(errors="replace").splitlines(keepends=True)[-lines:])
    except FileNotFoundError:
        return "(no log written)"


def start(component: Component, logs: Path) -> int:
    """Start ``component`` detached and wait until its probe passes; return its pid."""
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{component.name}.log"
    if component.port is not None and not port_is_free(component.port):
        raise ClusterError(
            f"{component.name}: port {component.port} is already in use by another process; log: {log}"
        )
    with log.open("ab") as out:
        out.write(f"\n==== {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(component.argv)}\n".encode())
    pid = spawn(component.argv, log)
    proc = _STARTED[pid]
    deadline = time.monotonic() + component.timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ClusterError(
                f"{component.name} exited with code {proc.returncode} "
                f"(port {component.port}); log: {log}\n{tail(log)}"
            )
        if component.probe():
            return proc.pid
        time.sleep(0.25)
    # Never ready: do not leave it behind half-started.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    _reap(proc.pid)
    raise ClusterError(
        f"{component.name} was not ready after {component.timeout:.0f}s "
        f"(port {component.port}); it was stopped; log: {log}\n{tail(log)}"
    )


def _processes_under(directory: Path) -> list[int]:
    marker = str(directory)
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


def stop(pids: dict[str, int], state: Path, *, grace: float = 10.0) -> list[str]:
    """Stop every recorded process group and any stray process of this state dir."""
    targets = set(pids.values()) | set(_processes_under(state))
    for pid in targets:
        for kill in (os.killpg, os.kill):
            try:
                kill(pid, signal.SIGTERM)
                break
            except (ProcessLookupError, PermissionError):
                continue
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(pid_alive(p) for p in targets):
        time.sleep(0.1)
    leftovers = [p for p in targets if pid_alive(p)]
    for pid in leftovers:
        for kill in (os.killpg, os.kill):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                kill(pid, signal.SIGKILL)
    for pid in targets:
        _reap(pid)
    names = {pid: name for name, pid in pids.items()}
    return [names.get(p, str(p)) for p in targets]

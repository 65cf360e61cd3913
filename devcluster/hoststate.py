"""What the real node leaves on the host outside its state directory, and taking it back.

containerd and kubelet write a few things to fixed host paths whatever they are
told (shim sockets under ``/run/containerd``, ``/var/lib/kubelet/device-plugins``,
``/var/log/containers``, CNI result caches under ``/var/lib/cni``), kube-proxy
and kubelet add iptables chains, pods live in cgroups and mounts.  Before the
node first starts, ``Snapshot.take`` records which of those paths and chains
already exist; teardown kills every process in the node's cgroups, unmounts
everything under the state directory, removes the cgroups, the chains and the
paths that were not there before, so ``make down`` leaves the machine as it was.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

CGROUP_FS = Path("/sys/fs/cgroup")
#: Fixed host paths containerd, kubelet and CNI may create whatever their configuration says.
HOST_PATHS = (
    "/run/containerd",
    "/var/lib/kubelet",
    "/var/log/containers",
    "/var/log/pods",
    "/var/lib/cni",
    "/run/netns",
)
IPTABLES = ("iptables", "ip6tables")
TABLES = ("filter", "nat", "mangle", "raw")


def _chains(tool: str, table: str) -> list[str]:
    try:
        out = subprocess.run([tool, "-w", "-t", table, "-S"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.split()[1] for line in out.stdout.splitlines() if line.startswith("-N ")]


def _entries(root: Path) -> set[str]:
    found: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            found.add(os.path.relpath(os.path.join(dirpath, name), root))
    return found


@dataclass
class Snapshot:
    """Host paths and iptables chains that existed before the node first started."""

    paths: list[str] = field(default_factory=list)
    #: What each of those paths held (relative names), so only what the node added goes.
    entries: dict[str, list[str]] = field(default_factory=dict)
    chains: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def take(cls) -> Snapshot:
        paths = [p for p in HOST_PATHS if os.path.lexists(p)]
        return cls(
            paths=paths,
            entries={p: sorted(_entries(Path(p))) for p in paths},
            chains={f"{tool}/{table}": _chains(tool, table) for tool in IPTABLES for table in TABLES},
        )

    @classmethod
    def load(cls, path: Path) -> Snapshot | None:
        try:
            return cls(**json.loads(path.read_text()))
        except (FileNotFoundError, ValueError, TypeError):
            return None

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")


def cgroup_dirs(root: str) -> list[Path]:
    """``root`` in every mounted cgroup hierarchy (v1 controllers, named ones and the unified one)."""
    dirs = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        fstype = fields[fields.index("-") + 1]
        if fstype in ("cgroup", "cgroup2"):
            dirs.append(Path(fields[4]) / root.lstrip("/"))
    return dirs


def create_cgroups(root: str) -> None:
    for d in cgroup_dirs(root):
        d.mkdir(exist_ok=True)


def _cgroup_pids(root: str) -> set[int]:
    pids: set[int] = set()
    for d in cgroup_dirs(root):
        if not d.is_dir():
            continue
        for procs in d.rglob("cgroup.procs"):
            with contextlib.suppress(OSError, ValueError):
                pids.update(int(p) for p in procs.read_text().split())
    return pids


def kill_cgroups(root: str, *, timeout: float = 30.0) -> int:
    """SIGKILL every process in ``root``'s cgroups (the pods' containers); return how many."""
    killed: set[int] = set()
    deadline = time.monotonic() + timeout
    while pids := _cgroup_pids(root):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        killed |= pids
        if time.monotonic() > deadline:
            raise RuntimeError(f"processes {sorted(pids)} in cgroup {root} did not die")
        time.sleep(0.1)
    return len(killed)


def remove_cgroups(root: str) -> None:
    for d in cgroup_dirs(root):
        if not d.is_dir():
            continue
        for sub in sorted((p for p in d.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                sub.rmdir()
        with contextlib.suppress(OSError):
            d.rmdir()


def mounts_under(directory: Path) -> list[Path]:
    prefix = str(directory.resolve())
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")
        if point == prefix or point.startswith(prefix + "/"):
            found.append(Path(point))
    return found


def unmount_under(directory: Path) -> list[Path]:
    """Unmount everything mounted at or below ``directory``, deepest first; return what stays mounted."""
    for _ in range(5):
        points = sorted(set(mounts_under(directory)), key=lambda p: -len(p.parts))
        if not points:
            return []
        for point in points:
            if subprocess.run(["umount", str(point)], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", str(point)], capture_output=True)
    return mounts_under(directory)


def remove_new_chains(before: Snapshot) -> list[str]:
    """Delete the iptables chains that were not there before, and the rules that jump to them."""
    removed = []
    for tool in IPTABLES:
        for table in TABLES:
            known = set(before.chains.get(f"{tool}/{table}", []))
            new = [c for c in _chains(tool, table) if c not in known]
            if not new:
                continue
            rules = subprocess.run([tool, "-w", "-t", table, "-S"], capture_output=True, text=True).stdout
            for line in rules.splitlines():
                args = shlex.split(line)
                if (
                    args[:1] == ["-A"]
                    and args[1] not in new
                    and "-j" in args
                    and args[args.index("-j") + 1] in new
                ):
                    subprocess.run([tool, "-w", "-t", table, "-D", *args[1:]], capture_output=True)
            for chain in new:
                subprocess.run([tool, "-w", "-t", table, "-F", chain], capture_output=True)
            for chain in new:
                subprocess.run([tool, "-w", "-t", table, "-X", chain], capture_output=True)
                removed.append(f"{tool} -t {table} {chain}")
    return removed


def remove_new_paths(before: Snapshot) -> list[str]:
    """Remove the fixed host paths the node created (never one that existed before it started)."""
    removed = []
    for path in HOST_PATHS:
        if not os.path.lexists(path):
            continue
        if path not in before.paths:
            if unmount_under(Path(path)):
                continue  # something is still mounted there: never delete through a mount
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
            continue
        # It was there before: take away only what appeared in it (deepest first).
        known = set(before.entries.get(path, []))
        for rel in sorted(_entries(Path(path)) - known, key=lambda r: -r.count("/")):
            target = Path(path) / rel
            if mounts_under(target):
                continue
            with contextlib.suppress(OSError):
                if target.is_dir() and not target.is_symlink():
                    shutil.rmtree(target)
                else:
                    target.unlink()
                removed.append(str(target))
    return removed

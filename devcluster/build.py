"""Build the local control plane's binaries from the Go module proxy.

etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl and the
KWOK controller are built once per version and cached outside the repository
(``$KS_DEV_CACHE`` or ``~/.cache/ks-devcluster``), so a second setup rebuilds
nothing.  Each tool is built from a small generated wrapper module because
``k8s.io/kubernetes`` and etcd's server module carry ``replace`` directives that
``go install pkg@version`` refuses.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from devcluster.settings import Versions, cache_dir, load_versions

K8S_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
NODE_COMMANDS = ("kubelet", "kube-proxy")
#: The pod sandbox's one process: wait for a signal to exit, reap children.  Built
#: static and put alone in an image for containerd (no registry to pull one from).
PAUSE_SOURCE = """package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-v" {
		os.Stdout.WriteString("pause (ks-devcluster)\\n")
		return
	}
	signals := make(chan os.Signal, 16)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range signals {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var status syscall.WaitStatus
			if pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil); pid <= 0 || err != nil {
				break
			}
		}
	}
}
"""
PAUSE_VERSION = "1"


class BuildError(RuntimeError):
    """A binary could not be built; the message names the step and its log."""


def _go_env(cache: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        GOTOOLCHAIN="local",
        CGO_ENABLED="0",
        GOFLAGS="-mod=mod",
        GOTELEMETRY="off",
    )
    return env


def _log(message: str) -> None:
    print(f"[build] {message}", flush=True)


def _run(cmd: list[str], *, cwd: Path, env: dict[str, str], log: Path, what: str) -> None:
    """Run a go command, streaming a package counter, keeping the full output in ``log``."""
    started = time.monotonic()
    count = 0
    with log.open("a") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            out.write(line)
            count += 1
            if count % 250 == 0:
                _log(f"{what}: {count} packages/lines, {time.monotonic() - started:.0f}s")
        rc = proc.wait()
    if rc != 0:
        tail = "".join(log.read_text().splitlines(keepends=True)[-20:])
        raise BuildError(f"{what} failed (exit {rc}); full log: {log}\n{tail}")
    _log(f"{what}: done in {time.monotonic() - started:.0f}s")


def _ldflags_k8s(version: str) -> str:
    major, minor = version.lstrip("v").split(".")[:2]
    parts = ["-s", "-w"]
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        parts += [
            f"-X {pkg}.gitVersion={version}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
            f"-X {pkg}.buildDate=1970-01-01T00:00:00Z",
        ]
    return " ".join(parts)


def _staging_modules(gomod_text: str) -> list[str]:
    """The ``k8s.io/*`` modules that k8s.io/kubernetes maps to ``./staging``."""
    return sorted(set(re.findall(r"^\s*(k8s\.io/[a-z0-9-]+)\s+=>\s+\./staging/", gomod_text, re.M)))


def _go_directive(gomod_text: str) -> str:
    match = re.search(r"^go\s+(\S+)", gomod_text, re.M)
    return match.group(1) if match else "1.25.0"


def _record(out: Path, started: float) -> None:
    """Keep the cold build's duration beside the binaries (read by the cluster benchmark)."""
    (out / "build.json").write_text(json.dumps({"seconds": round(time.monotonic() - started, 1)}) + "\n")


def build_kubernetes(v: Versions, cache: Path) -> Path:
    return _build_k8s(v, cache, f"kubernetes-{v.kubernetes}", K8S_COMMANDS)


def build_kubernetes_node(v: Versions, cache: Path) -> Path:
    """kubelet and kube-proxy, for the real node (only built when one is asked for)."""
    return _build_k8s(v, cache, f"kubernetes-node-{v.kubernetes}", NODE_COMMANDS)


def _build_k8s(v: Versions, cache: Path, name: str, commands: tuple[str, ...]) -> Path:
    out = cache / "bin" / name
    if all((out / c).is_file() for c in commands):
        return out
    started = time.monotonic()
    env = _go_env(cache)
    work = cache / "src" / name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    log = cache / "logs" / f"build-{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")
    _log(f"kubernetes {v.kubernetes}: resolving module (log: {log})")
    (work / "go.mod").write_text("module local/kube-bins\n\ngo 1.25.0\n")
    dl = subprocess.run(
        ["go", "mod", "download", "-json", f"k8s.io/kubernetes@{v.kubernetes}"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    if dl.returncode != 0:
        raise BuildError(f"go mod download k8s.io/kubernetes@{v.kubernetes} failed: {dl.stdout}{dl.stderr}")
    upstream = Path(json.loads(dl.stdout)["GoMod"]).read_text()
    staging = _staging_modules(upstream)
    if not staging:
        raise BuildError("found no staging modules in k8s.io/kubernetes go.mod")
    minor = "v0." + ".".join(v.kubernetes.lstrip("v").split(".")[1:])
    godebug = re.search(r"^godebug\s+.*$", upstream, re.M)
    lines = [
        "module local/kube-bins",
        "",
        f"go {_go_directive(upstream)}",
        "",
    ]
    if godebug:
        lines += [godebug.group(0), ""]
    lines += ["tool ("]
    lines += [f"\tk8s.io/kubernetes/cmd/{c}" for c in commands]
    lines += [")", "", f"require k8s.io/kubernetes {v.kubernetes}", "", "replace ("]
    lines += [f"\t{m} => {m} {minor}" for m in staging]
    lines += [")", ""]
    (work / "go.mod").write_text("\n".join(lines))
    _run(["go", "mod", "tidy"], cwd=work, env=env, log=log, what="kubernetes: go mod tidy")
    tmp = work / "bin"
    _run(
        [
            "go",
            "build",
            "-v",
            "-trimpath",
            "-tags",
            "grpcnotrace",
            "-ldflags",
            _ldflags_k8s(v.kubernetes),
            "-o",
            str(tmp) + "/",
            *[f"k8s.io/kubernetes/cmd/{c}" for c in commands],
        ],
        cwd=work,
        env=env,
        log=log,
        what=f"kubernetes {v.kubernetes}: go build",
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out, ignore_errors=True)
    shutil.move(str(tmp), str(out))
    _record(out, started)
    return out


def build_etcd(v: Versions, cache: Path) -> Path:
    out = cache / "bin" / f"etcd-{v.etcd}"
    if (out / "etcd").is_file():
        return out
    started = time.monotonic()
    env = _go_env(cache)
    work = cache / "src" / f"etcd-{v.etcd}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    log = cache / "logs" / f"build-etcd-{v.etcd}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")
    _log(f"etcd {v.etcd}: building (log: {log})")
    (work / "go.mod").write_text(
        f"module local/etcd-bin\n\ngo 1.25.0\n\nrequire go.etcd.io/etcd/server/v3 {v.etcd}\n"
    )
    (work / "main.go").write_text(
        'package main\n\nimport (\n\t"os"\n\n\t"go.etcd.io/etcd/server/v3/etcdmain"\n)\n\n'
        "func main() { etcdmain.Main(os.Args) }\n"
    )
    _run(["go", "mod", "tidy"], cwd=work, env=env, log=log, what="etcd: go mod tidy")
    tmp = work / "bin"
    _run(
        ["go", "build", "-v", "-trimpath", "-ldflags", "-s -w", "-o", str(tmp / "etcd"), "."],
        cwd=work,
        env=env,
        log=log,
        what=f"etcd {v.etcd}: go build",
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out, ignore_errors=True)
    shutil.move(str(tmp), str(out))
    _record(out, started)
    return out


def build_kwok(v: Versions, cache: Path) -> Path:
    out = cache / "bin" / f"kwok-{v.kwok}"
    if (out / "kwok").is_file():
        return out
    started = time.monotonic()
    env = _go_env(cache)
    log = cache / "logs" / f"build-kwok-{v.kwok}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")
    tmp = cache / "src" / f"kwok-{v.kwok}" / "bin"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    env["GOBIN"] = str(tmp)
    env.pop("GOFLAGS", None)
    _log(f"kwok {v.kwok}: building (log: {log})")
    _run(
        ["go", "install", "-v", "-trimpath", "-ldflags", "-s -w", f"sigs.k8s.io/kwok/cmd/kwok@{v.kwok}"],
        cwd=tmp,
        env=env,
        log=log,
        what=f"kwok {v.kwok}: go install",
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out, ignore_errors=True)
    shutil.move(str(tmp), str(out))
    _record(out, started)
    return out


def build_pause(cache: Path) -> Path:
    """The static pause binary (no module download: the standard library only)."""
    out = cache / "bin" / f"pause-{PAUSE_VERSION}"
    if (out / "pause").is_file():
        return out
    started = time.monotonic()
    env = _go_env(cache)
    work = cache / "src" / f"pause-{PAUSE_VERSION}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    log = cache / "logs" / f"build-pause-{PAUSE_VERSION}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")
    (work / "go.mod").write_text("module local/pause\n\ngo 1.25.0\n")
    (work / "main.go").write_text(PAUSE_SOURCE)
    tmp = work / "bin"
    _run(
        ["go", "build", "-trimpath", "-ldflags", "-s -w", "-o", str(tmp / "pause"), "."],
        cwd=work, env=env, log=log, what="pause: go build",
    )  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out, ignore_errors=True)
    shutil.move(str(tmp), str(out))
    _record(out, started)
    return out


def ensure_node_binaries(v: Versions | None = None, cache: Path | None = None) -> dict[str, Path]:
    """kubelet, kube-proxy and pause for the real node: built once per version, then cached."""
    v = v or load_versions()
    cache = cache or cache_dir()
    node_dir = build_kubernetes_node(v, cache)
    paths = {c: node_dir / c for c in NODE_COMMANDS}
    paths["pause"] = build_pause(cache) / "pause"
    return paths


def node_binary(name: str, v: Versions | None = None, cache: Path | None = None) -> Path:
    """Where a node binary is cached (whether or not it has been built)."""
    v = v or load_versions()
    return (cache or cache_dir()) / "bin" / f"kubernetes-node-{v.kubernetes}" / name


def kwok_stage_dir(v: Versions) -> Path:
    """The default KWOK stage manifests shipped in the kwok module zip."""
    gomodcache = subprocess.run(
        ["go", "env", "GOMODCACHE"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return Path(gomodcache) / f"sigs.k8s.io/kwok@{v.kwok}" / "kustomize" / "stage"


def kwok_crd_dir(v: Versions) -> Path:
    """KWOK's CRD manifests (Exec, Logs, ...), shipped in the same module zip as the stages."""
    return kwok_stage_dir(v).parent / "crd" / "bases"


def ensure_binaries(v: Versions | None = None, cache: Path | None = None) -> dict[str, Path]:
    """Build whatever is missing and return the path of every binary by name."""
    v = v or load_versions()
    cache = cache or cache_dir()
    started = time.monotonic()
    etcd_dir = build_etcd(v, cache)
    kwok_dir = build_kwok(v, cache)
    k8s_dir = build_kubernetes(v, cache)
    paths = {"etcd": etcd_dir / "etcd", "kwok": kwok_dir / "kwok"}
    paths.update({c: k8s_dir / c for c in K8S_COMMANDS})
    # The stage manifests come with the kwok module; make sure it is in the module cache.
    if not kwok_stage_dir(v).is_dir():
        subprocess.run(
            ["go", "mod", "download", f"sigs.k8s.io/kwok@{v.kwok}"],
            env=_go_env(cache),
            check=True,
            capture_output=True,
            cwd=cache,
        )
    elapsed = time.monotonic() - started
    if elapsed > 1:
        _log(f"all binaries ready in {elapsed:.0f}s under {cache / 'bin'}")
    return paths


def main() -> int:
    try:
        paths = ensure_binaries()
    except BuildError as exc:
        print(f"[build] ERROR: {exc}", file=sys.stderr)
        return 1
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

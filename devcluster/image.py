"""The project image, built on a machine that reaches no container registry.

``Containerfile`` starts ``FROM ${BASE}``: with a registry that is the upstream
Python image; here it is a minimal Debian root file system built with
``mmdebstrap`` from the Debian mirror (python3, its venv module, CA
certificates), imported into podman's local store.  The base tarball is cached
outside the repository beside the cluster binaries
(``<cache>/image/base-<suite>-<key>.tar``), keyed by its inputs, so it is built
once per machine; podman's layer cache makes a rebuild of an unchanged tree take
seconds.

podman runs with the repository's ``devcluster/containers.conf`` (``runc``, and
ulimits root may set here).  pip inside the build sees the host's CA bundle and
site pip configuration through build-time mounts only: nothing of them is
written into the image.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from devcluster.settings import REPO_ROOT, cache_dir

CONTAINERS_CONF = Path(__file__).with_name("containers.conf")
CONTAINERFILE = REPO_ROOT / "Containerfile"
SUITE = "bookworm"
MIRROR = os.environ.get("KS_DEBIAN_MIRROR", "http://deb.debian.org/debian")
SECURITY_MIRROR = os.environ.get("KS_DEBIAN_SECURITY_MIRROR", "http://deb.debian.org/debian-security")
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
#: Left out of the base: documentation, manual pages and translations.
DPKG_EXCLUDES = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/locale/*", "/usr/share/info/*")
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
PIP_SITE_CONFIGS = (Path("/etc/pip.conf"), Path("/etc/xdg/pip/pip.conf"))


class ImageError(RuntimeError):
    """A step of the image build failed; the message names it and its log."""


def _log(message: str) -> None:
    print(f"[image] {message}", flush=True)


def image_ref() -> str:
    """The project image as the manifests name it, fully qualified (as containerd resolves it)."""
    catalog = yaml.safe_load((REPO_ROOT / "roles" / "common" / "defaults" / "main.yml").read_text())
    entry = catalog["ks_images"]["ks_installer"]
    return f"docker.io/{entry['repository']}:{entry['tag']}"


def podman_env() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}


def _podman(*args: str, log: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = ["podman", *args]
    if log is None:
        return subprocess.run(cmd, env=podman_env(), capture_output=True, text=True, check=check)
    with log.open("a") as out:
        out.write(f"$ podman {' '.join(args)}\n")
        out.flush()
        proc = subprocess.run(cmd, env=podman_env(), stdout=out, stderr=subprocess.STDOUT, text=True)
    if check and proc.returncode != 0:
        tail = "".join(log.read_text().splitlines(keepends=True)[-25:])
        raise ImageError(f"podman {args[0]} failed (exit {proc.returncode}); log: {log}\n{tail}")
    return proc


def _sources() -> list[str]:
    return [
        f"deb {MIRROR} {SUITE} main",
        f"deb {MIRROR} {SUITE}-updates main",
        f"deb {SECURITY_MIRROR} {SUITE}-security main",
    ]


@dataclass(frozen=True)
class Base:
    """The cached Debian base: its key, tarball and local image name."""

    key: str
    tarball: Path

    @property
    def ref(self) -> str:
        return f"localhost/ks-base:{SUITE}-{self.key}"


def base_spec() -> Base:
    inputs = {"suite": SUITE, "sources": _sources(), "packages": BASE_PACKAGES, "excludes": DPKG_EXCLUDES}
    key = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:12]
    return Base(key=key, tarball=cache_dir() / "image" / f"base-{SUITE}-{key}.tar")


def _image_exists(ref: str) -> bool:
    return _podman("image", "exists", ref, check=False).returncode == 0


def build_base_tarball(target: Path, *, log: Path) -> float:
    """Run mmdebstrap into ``target`` (written whole or not at all); return the seconds it took."""
    started = time.monotonic()
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial.tar")
    cmd = [
        "mmdebstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}",
        "--aptopt=Acquire::Languages \"none\"",
        *[f"--dpkgopt=path-exclude={p}" for p in DPKG_EXCLUDES],
        "--dpkgopt=path-include=/usr/share/doc/*/copyright",
        SUITE, str(partial), *_sources(),
    ]  # fmt: skip
    with log.open("a") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        rc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT).returncode
    if rc != 0:
        partial.unlink(missing_ok=True)
        raise ImageError(f"mmdebstrap failed (exit {rc}); log: {log}")
    partial.rename(target)
    return round(time.monotonic() - started, 1)


def import_base(base: Base, tarball: Path, *, log: Path) -> float:
    started = time.monotonic()
    _podman("import", str(tarball), base.ref, log=log)
    return round(time.monotonic() - started, 1)


def ensure_base(*, log: Path) -> tuple[Base, dict[str, float]]:
    """Build the base tarball unless cached, import it unless podman has it; return timings."""
    base = base_spec()
    timings: dict[str, float] = {}
    if _image_exists(base.ref):
        return base, timings
    if not base.tarball.is_file():
        _log(f"building the Debian {SUITE} base with mmdebstrap (log: {log})")
        timings["base_build_seconds"] = build_base_tarball(base.tarball, log=log)
        _log(f"base built in {timings['base_build_seconds']:.0f}s: {base.tarball}")
    timings["base_import_seconds"] = import_base(base, base.tarball, log=log)
    return base, timings


def _build_mounts() -> list[str]:
    """The host's CA bundle and site pip configuration, visible to RUN steps only."""
    mounts = []
    for path in (CA_BUNDLE, *PIP_SITE_CONFIGS):
        if path.is_file():
            mounts += ["--volume", f"{path}:{path}:ro"]
    return mounts


def build_log() -> Path:
    log = cache_dir() / "logs" / "build-image.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")
    return log


def build(*, no_cache: bool = False) -> dict[str, float | str]:
    """Build the base if needed, then the project image; return what it measured."""
    for tool in ("mmdebstrap", "podman"):
        if shutil.which(tool) is None:
            raise ImageError(f"{tool} is not installed (make system-deps installs it)")
    log = build_log()
    base, timings = ensure_base(log=log)
    ref = image_ref()
    previous = _podman("image", "inspect", "--format", "{{.Id}}", ref, check=False).stdout.strip()
    started = time.monotonic()
    _log(f"building {ref} from {base.ref} (log: {log})")
    _podman(
        # Host networking: RUN steps need no network namespace, and podman's CNI bridge and
        # its iptables chains are never set up on the host.
        "build", "--pull=never", "--layers", "--network=host", *(["--no-cache"] if no_cache else []),
        "--build-arg", f"BASE={base.ref}", *_build_mounts(),
        "--file", str(CONTAINERFILE), "--tag", ref, str(REPO_ROOT),
        log=log,
    )  # fmt: skip
    seconds = round(time.monotonic() - started, 1)
    current, size_text = _podman("image", "inspect", "--format", "{{.Id}} {{.Size}}", ref).stdout.split()
    size = int(size_text)
    if previous and previous != current:
        # The image this build replaced is untagged now; drop it (kept if a container uses it).
        _podman("rmi", previous, check=False)
    _log(f"{ref} built in {seconds:.1f}s ({size / 1e6:.0f} MB)")
    return {"image": ref, "base": base.ref, "image_build_seconds": seconds, "size_bytes": size, **timings}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devcluster.image", description=__doc__.splitlines()[0])
    parser.add_argument("--no-cache", action="store_true", help="rebuild every layer of the project image")
    args = parser.parse_args(argv)
    try:
        build(no_cache=args.no_cache)
    except ImageError as exc:
        print(f"[image] ERROR: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

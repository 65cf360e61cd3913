"""``ks-devcluster``: build, start, stop and inspect the local control plane.

ks-devcluster build     build (or find cached) binaries
ks-devcluster up        start the cluster, or reuse a healthy running one
                        (KS_REAL_NODE=1: add the real node real-node-0, see docs/real-node.md)
ks-devcluster down      stop every process of the cluster
ks-devcluster status    say whether it runs, and where
ks-devcluster env       print shell exports for kubectl
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from devcluster.build import BuildError, ensure_binaries
from devcluster.cluster import LocalCluster
from devcluster.processes import ClusterError
from devcluster.settings import REPO_ROOT


def _link_tools(binaries: dict[str, Path]) -> Path:
    """Expose kubectl (built with the cluster) under ``.local/bin``."""
    bindir = REPO_ROOT / ".local" / "bin"
    bindir.mkdir(parents=True, exist_ok=True)
    link = bindir / "kubectl"
    if link.is_symlink() or link.exists():
        if link.resolve() == binaries["kubectl"].resolve():
            return bindir
        link.unlink()
    link.symlink_to(binaries["kubectl"])
    return bindir


def _exports(cluster: LocalCluster, bindir: Path) -> str:
    return f'export KUBECONFIG={cluster.kubeconfig} PATH="{bindir}:$PATH"'


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ks-devcluster", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build", help="build or find the cached binaries")
    up = sub.add_parser("up", help="start the cluster (idempotent)")
    up.add_argument("--nodes", type=int, default=int(os.environ.get("KS_DEV_NODES", "3")), help="KWOK nodes")
    sub.add_parser("down", help="stop the cluster; leaves no process behind")
    sub.add_parser("status", help="is it running, and where")
    sub.add_parser("env", help="shell exports for kubectl")
    args = parser.parse_args(argv)

    cluster = LocalCluster()
    try:
        if args.command == "build":
            for name, path in ensure_binaries().items():
                print(f"{name}: {path}")
        elif args.command == "up":
            info = cluster.up(nodes=args.nodes)
            bindir = _link_tools(ensure_binaries())
            print(f"[cluster] kubeconfig: {info.kubeconfig}")
            print(f"[cluster] logs:       {info.state_dir / 'logs'}")
            print(f"[cluster] use it:     {_exports(cluster, bindir)}")
        elif args.command == "down":
            stopped = cluster.down()
            print(f"[cluster] stopped: {', '.join(sorted(stopped)) or 'nothing was running'}")
        elif args.command == "status":
            st = cluster.running()
            if st is None:
                print("[cluster] not running")
                return 1
            print(f"[cluster] running at https://127.0.0.1:{st.ports['apiserver']}")
            for name, pid in st.pids.items():
                print(f"  {name:<24} pid {pid}")
            if cluster.real_node.running():
                print("[cluster] real node real-node-0 is running (KS_REAL_NODE=1)")
            print(f"[cluster] kubeconfig: {cluster.kubeconfig}")
        elif args.command == "env":
            print(_exports(cluster, REPO_ROOT / ".local" / "bin"))
    except (ClusterError, BuildError) as exc:
        print(f"[cluster] ERROR: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

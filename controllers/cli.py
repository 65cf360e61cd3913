"""``ks-controller-manager``: the command line of the controller manager.

    ks-controller-manager [--config /etc/kubesphere/kubesphere.yaml] [--kubeconfig FILE]
                          [--listen 0.0.0.0:8080] [--[no-]leader-election]
                          [--lease-name NAME] [--lease-namespace kubesphere-system]

Logs go to stderr.  A bad configuration file, an unreadable kubeconfig or a
missing lease namespace ends the process at once with status 2 and a message
naming the problem; no secret is ever logged.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from controllers.errors import ControllerError
from controllers.settings import LeaderElection, Settings, default_identity, load_config
from kubesphere.config import ConfigError

log = logging.getLogger("controllers")


def _listen(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    try:
        return host or "0.0.0.0", int(port)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}") from None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ks-controller-manager",
        description="Run the controllers that keep the platform's custom resources true.",
    )
    p.add_argument("--config", type=Path, help="kubesphere.yaml (default: none; installer defaults, no LDAP)")
    p.add_argument(
        "--kubeconfig",
        type=Path,
        default=os.environ.get("KUBECONFIG") or None,
        help="default: $KUBECONFIG, else in-cluster, else ~/.kube/config",
    )
    p.add_argument(
        "--listen",
        type=_listen,
        default=("0.0.0.0", 8080),
        metavar="HOST:PORT",
        help="address of /healthz, /readyz and /metrics (default 0.0.0.0:8080)",
    )
    p.add_argument(
        "--leader-election",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="act only while holding the Lease (default on)",
    )
    d = LeaderElection()
    p.add_argument("--lease-name", default=d.name)
    p.add_argument(
        "--lease-namespace",
        default=os.environ.get("KS_CONTROLLER_LEASE_NAMESPACE", d.namespace),
        help="namespace of the Lease; it must exist (default kubesphere-system)",
    )
    p.add_argument("--lease-duration", type=float, default=d.duration, help="seconds (default 15)")
    p.add_argument("--lease-renew", type=float, default=d.renew, help="seconds between renewals (default 5)")
    p.add_argument("--identity", default=None, help="this replica's name in the Lease (default host_pid)")
    p.add_argument(
        "--kubeconfig-server",
        default=Settings.kubeconfig_server,
        help="API server written into users' kubeconfig ConfigMaps",
    )
    p.add_argument("--workers", type=int, default=Settings.workers, help="handler threads (default 8)")
    p.add_argument(
        "--log-level",
        type=str.upper,
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        default=os.environ.get("KS_LOG_LEVEL", "INFO").upper(),
    )
    return p


def settings_from(args: argparse.Namespace) -> Settings:
    if args.lease_renew >= args.lease_duration:
        raise ConfigError("--lease-renew must be shorter than --lease-duration")
    if args.workers < 1:
        raise ConfigError("--workers must be at least 1")
    if args.kubeconfig is not None and not args.kubeconfig.exists():
        raise ConfigError(f"--kubeconfig {args.kubeconfig}: no such file")
    host, port = args.listen
    return Settings(
        config=load_config(args.config),
        kubeconfig=args.kubeconfig,
        listen_host=host,
        listen_port=port,
        leader=LeaderElection(
            enabled=args.leader_election,
            name=args.lease_name,
            namespace=args.lease_namespace,
            identity=args.identity or default_identity(),
            duration=args.lease_duration,
            renew=args.lease_renew,
        ),
        kubeconfig_server=args.kubeconfig_server,
        workers=args.workers,
    )


def _check_cluster(settings: Settings) -> None:
    """Fail fast on what a person must fix: credentials, API reachability, the lease namespace."""
    from controllers.kube import Kube, load_client

    api = load_client(settings.kubeconfig)
    try:
        kube = Kube(api)
        if settings.leader.enabled and not kube.namespace_exists(settings.leader.namespace):
            raise ConfigError(
                f"lease namespace {settings.leader.namespace!r} does not exist: create it, or pass "
                "--lease-namespace or --no-leader-election"
            )
    finally:
        api.close()  # type: ignore[no-untyped-call]


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # kopf's DEBUG lines print whole objects (a User's plain-text password among them): never below INFO.
    level = logging.getLevelName(args.log_level.upper())
    kopf_level = logging.WARNING if level == logging.INFO else max(level, logging.INFO)
    logging.getLogger("kopf").setLevel(kopf_level)
    try:
        settings = settings_from(args)
        _check_cluster(settings)
    except (ConfigError, ControllerError) as exc:
        print(f"ks-controller-manager: {exc}", file=sys.stderr)
        return 2
    from controllers.operator import run

    log.info(
        "starting: config %s, LDAP %s, leader election %s",
        args.config or "(none: installer defaults)",
        settings.config.ldap.host if settings.config.ldap else "off",
        f"{settings.leader.namespace}/{settings.leader.name} as {settings.leader.identity}"
        if settings.leader.enabled
        else "off",
    )
    return asyncio.run(run(settings))


if __name__ == "__main__":
    sys.exit(main())

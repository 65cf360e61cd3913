"""``ks-installer``: run the operator, or show what it reports.

ks-installer run      watch the ClusterConfiguration and bring the cluster to its spec
ks-installer status   a table of components with state, age and last message
ks-installer plan     what a spec change would install, re-run or uninstall, and which objects
                      it would create, change or remove (check runs: nothing is changed)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

from installer.errors import ConfigurationError, InstallerError
from installer.settings import Settings


def _age(stamp: str | None) -> str:
    if not stamp:
        return "-"
    try:
        then = dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        return "-"
    seconds = int((dt.datetime.now(dt.UTC) - then).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def format_status(cc: dict[str, Any]) -> str:
    status = cc.get("status") or {}
    components = status.get("components") or {}
    rows = [("COMPONENT", "STATE", "AGE", "TASKS", "MESSAGE")]
    for name, comp in components.items():
        tasks = comp.get("tasks") or {}
        counter = (
            f"{tasks.get('done', 0)}/{tasks['total']}" if "total" in tasks else str(tasks.get("done", "-"))
        )
        rows.append(
            (
                name,
                comp.get("state", "?"),
                _age(comp.get("lastTransitionTime")),
                counter if tasks else "-",
                (comp.get("message") or "").replace("\n", " ")[:100],
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(r[i].ljust(widths[i]) for i in range(4)) + "  " + r[4] for r in rows]
    gen = (cc.get("metadata") or {}).get("generation")
    lines.append("")
    lines.append(
        f"generation {gen}, observed {status.get('observedGeneration', '-')}; {status.get('summary', '')}"
    )
    for cond in status.get("conditions") or []:
        msg = f": {cond['message']}" if cond.get("message") else ""
        lines.append(f"{cond['type']}={cond['status']} ({cond.get('reason', '')}){msg}")
    return "\n".join(lines)


def plan_command(
    settings: Settings,
    *,
    filename: Path | None,
    patch: str | None,
    patch_type: str | None,
    output: str,
    objects: bool,
) -> int:
    """``ks-installer plan``: 0 with the plan shown, 1 when it is incomplete (a check run or
    preflight failed) or the cluster could not be asked, 2 for a patch or file that does not apply."""
    from installer.components import load_table
    from installer.kube import Kube, connect
    from installer.preview import format_preview, inventory_name, preview
    from installer.roles import check_roles, roles_paths, runner_for
    from installer.specpatch import PatchError, from_file, patched
    from kubesphere.resources import CONFIGMAPS

    try:
        text = filename.read_text() if filename else None
    except OSError as exc:
        print(f"ks-installer: cannot read {filename}: {exc}", file=sys.stderr)
        return 2
    table = load_table(settings.component_table)
    check_roles(table, roles_paths(settings))
    kube = Kube(connect(settings.kubeconfig), namespace=settings.namespace, name=settings.name)
    live = kube.get_cc()
    where = f"{settings.namespace}/{settings.name}"
    try:
        if text is not None:
            cc, source = from_file(text, source=str(filename)), f"spec from {filename}"
        elif live is None:
            print(f"ClusterConfiguration {where} not found", file=sys.stderr)
            return 1
        elif patch is not None:
            kind = patch_type or ("json" if patch.lstrip().startswith(("[", "-")) else "merge")
            cc, source = patched(live, patch, kind=kind), f"live spec with a {kind} patch"
        else:
            cc, source = live, "live spec"
    except PatchError as exc:
        print(f"ks-installer: {exc}", file=sys.stderr)
        return 2
    runner = None
    if objects:
        runner = runner_for(settings, keep_artifacts=False)
    shown = preview(
        table=table,
        runner=runner,
        live=live or {},
        cc=cc,
        namespace=settings.namespace,
        name=settings.name,
        run_timeout=settings.run_timeout,
        source=source,
        read_inventory=lambda c: kube.get(CONFIGMAPS, inventory_name(c), namespace=settings.namespace),
        parallel=settings.max_parallel,
    )
    if output == "json":
        print(json.dumps(shown.as_json(), indent=2))
    else:
        print(format_preview(shown))
    return 0 if shown.complete else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ks-installer", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("--config", type=Path, help="settings file (YAML)")
    parser.add_argument("--kubeconfig", type=Path, help="kubeconfig (default: $KUBECONFIG, then in-cluster)")
    parser.add_argument("-n", "--namespace", help="namespace of the ClusterConfiguration")
    parser.add_argument("--name", help="name of the ClusterConfiguration")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the operator")
    run.add_argument("--max-parallel", type=int, help="global cap on component runs in flight")
    run.add_argument("--listen", help="host:port for /healthz, /readyz and /metrics ('' turns them off)")
    run.add_argument("--no-leader-election", action="store_true", help="act without a Lease")
    run.add_argument("--drift-interval", type=float, help="seconds between drift checks (0: off)")
    run.add_argument("--component-table", type=Path, help="component table YAML")
    run.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    status = sub.add_parser("status", help="show component states")
    status.add_argument("-o", "--output", choices=("table", "json"), default="table")
    plan = sub.add_parser("plan", help="show what a spec change would do, changing nothing")
    given = plan.add_mutually_exclusive_group()
    given.add_argument("-f", "--filename", type=Path, help="a ClusterConfiguration file to plan for")
    given.add_argument("-p", "--patch", help="a patch of the live ClusterConfiguration (JSON or YAML)")
    plan.add_argument(
        "--type",
        choices=("json", "merge"),
        help="patch type: json (RFC 6902) or merge (RFC 7386); default: json for a list, merge for an object",
    )
    plan.add_argument("-o", "--output", choices=("text", "json"), default="text")
    plan.add_argument("--no-objects", action="store_true", help="components only: no check runs")
    plan.add_argument("--component-table", type=Path, help="component table YAML")
    args = parser.parse_args(argv)

    overrides: dict[str, Any] = {
        "kubeconfig": args.kubeconfig,
        "namespace": args.namespace,
        "name": args.name,
    }
    if args.command in ("run", "plan"):
        overrides["component_table"] = args.component_table
    if args.command == "run":
        overrides.update(
            max_parallel=args.max_parallel,
            listen=args.listen,
            drift_interval=args.drift_interval,
        )
        if args.no_leader_election:
            overrides["leader_election"] = False
    try:
        settings = Settings.load(args.config, **overrides)
        if args.command == "run":
            import logging

            from installer.operator import run_operator, setup_logging

            setup_logging(logging.DEBUG if args.verbose else logging.INFO)
            run_operator(settings)
            return 0
        if args.command == "plan":
            return plan_command(
                settings,
                filename=args.filename,
                patch=args.patch,
                patch_type=args.type,
                output=args.output,
                objects=not args.no_objects,
            )
        from installer.kube import Kube, connect

        api = connect(settings.kubeconfig)
        cc = Kube(api, namespace=settings.namespace, name=settings.name).get_cc()
        if cc is None:
            print(f"ClusterConfiguration {settings.namespace}/{settings.name} not found", file=sys.stderr)
            return 1
        if args.output == "json":
            print(json.dumps(cc.get("status") or {}, indent=2))
        else:
            print(format_status(cc))
        return 0
    except ConfigurationError as exc:
        print(f"ks-installer: configuration error: {exc}", file=sys.stderr)
        return 2
    except InstallerError as exc:
        print(f"ks-installer: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

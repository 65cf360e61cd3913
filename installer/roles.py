"""The roles the operator runs: where they are found, and the request for one run.

:func:`run_request` is the one place that says what a role is given — the
component, the action, the spec (passed as data, never templated), where the
ClusterConfiguration lives, the installer version and the desired components —
so the engine and the role tests build exactly the same request.
:func:`check_roles` is the cheap check the operator makes before it campaigns
for the lease: every supported component's role, and the preflight role, exist.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from installer import __version__
from installer.components import ComponentTable
from installer.errors import ConfigurationError
from installer.runs import Runner, RunRequest
from installer.settings import Settings
from installer.taskcount import estimate_playbook_tasks, estimate_tasks

#: The name runs of the table's preflight role go by (it is not a component).
PREFLIGHT = "preflight"
#: The preflight role's entry point (components have ``install`` and ``uninstall``).
PREFLIGHT_ACTION = "main"


def roles_paths(settings: Settings) -> list[Path]:
    """Where roles are searched, in order: the extra paths, then the project's roles/."""
    return [*settings.extra_roles_paths, settings.project_dir / "roles"]


def find_role(paths: Iterable[Path], role: str) -> Path | None:
    for base in paths:
        if (base / role / "tasks").is_dir():
            return base / role
    return None


def role_of(table: ComponentTable, component: str) -> str:
    """The role that runs ``component`` (or the preflight role for :data:`PREFLIGHT`)."""
    role = table.preflight_role if component == PREFLIGHT else table[component].role
    if not role:
        raise ConfigurationError(f"{table.source}: {component} has no role to run")
    return role


def check_roles(table: ComponentTable, paths: list[Path]) -> None:
    """Fail with :class:`ConfigurationError` naming every role the table needs but no path has."""
    needed = [c.role for c in table if c.supported and c.role]
    if table.preflight_role:
        needed.append(table.preflight_role)
    missing = [r for r in needed if find_role(paths, r) is None]
    if missing:
        searched = ", ".join(str(p) for p in paths)
        raise ConfigurationError(f"roles not found: {', '.join(missing)} (searched {searched})")


def install_playbook(settings: Settings) -> Path:
    """The playbook every run executes (one component's role and action)."""
    return settings.project_dir / "playbooks" / "install.yml"


def runner_for(settings: Settings, *, keep_artifacts: bool | None = None) -> Runner:
    """The runner of the operator's component runs (and of ``ks-installer plan``'s check runs)."""
    return Runner(
        project_dir=settings.project_dir,
        playbook=install_playbook(settings),
        work_dir=settings.work_dir,
        kubeconfig=settings.kubeconfig,
        keep_artifacts=settings.keep_artifacts if keep_artifacts is None else keep_artifacts,
        verbosity=settings.ansible_verbosity,
        roles_paths=roles_paths(settings),
    )


def estimated_tasks(paths: list[Path], role: str, action: str, *, playbook: Path) -> int | None:
    """The tasks a run will start, for the ``12/40 tasks`` progress line: the playbook's own
    (every one starts, skipped or not) plus the role's entry file with its static includes."""
    role_dir = find_role(paths, role)
    estimate = estimate_tasks(role_dir, f"{action}.yml") if role_dir else None
    return estimate + estimate_playbook_tasks(playbook) if estimate is not None else None


def run_request(
    table: ComponentTable,
    component: str,
    action: str,
    spec: Mapping[str, Any],
    *,
    namespace: str,
    name: str,
    run_timeout: float,
    desired: Iterable[str] = (),
    expected_tasks: int | None = None,
    check: bool = False,
) -> RunRequest:
    """The request that runs ``component``'s role with ``action`` for ``spec``.

    ``namespace``/``name`` say where the ClusterConfiguration is; ``desired`` lists
    the components the spec wants (roles that adapt to their neighbours read it);
    a component's own ``timeout`` in the table wins over ``run_timeout``.
    """
    role = role_of(table, component)
    entry = table[component] if component != PREFLIGHT else None
    timeout = (entry.timeout if entry and entry.timeout else None) or run_timeout
    variables = {
        "ks_component": component,
        "ks_action": action,
        "ks_role": role,
        "ks_spec": spec,
        "ks_cluster_configuration": {"name": name, "namespace": namespace},
        "ks_installer_version": __version__,
        "ks_desired_components": list(desired),
    }
    return RunRequest(
        component=component,
        action=action,
        role=role,
        variables=variables,
        timeout=timeout,
        expected_tasks=expected_tasks,
        check=check,
    )


class RunRequests:
    """The engine's request builder: :func:`run_request` plus the task total each run expects.

    The total starts as an estimate from the role's files and becomes the count
    the last successful run of the same role and action started.
    """

    def __init__(self, table: ComponentTable, settings: Settings, *, namespace: str, name: str) -> None:
        self.table = table
        self.paths = roles_paths(settings)
        self.playbook = install_playbook(settings)
        self.run_timeout = settings.run_timeout
        self.namespace = namespace
        self.name = name
        self.learned: dict[tuple[str, str], int] = {}

    def make(
        self, component: str, action: str, spec: Mapping[str, Any], *, desired: Iterable[str] = ()
    ) -> RunRequest:
        role = role_of(self.table, component)
        expected = self.learned.get((role, action))
        return run_request(
            self.table,
            component,
            action,
            spec,
            namespace=self.namespace,
            name=self.name,
            run_timeout=self.run_timeout,
            desired=desired,
            expected_tasks=(
                expected
                if expected is not None
                else estimated_tasks(self.paths, role, action, playbook=self.playbook)
            ),
        )

    def learn(self, component: str, action: str, started: int) -> None:
        """A run of ``component``'s role with ``action`` succeeded after ``started`` tasks."""
        self.learned[(role_of(self.table, component), action)] = started

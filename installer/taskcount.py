"""How many tasks a run will start: the total of the ``[devops] 12/40 tasks`` progress line.

Counted from the files before the run: the playbook's own tasks (every one starts, skipped
or not) plus the role's entry file, following includes whose target is literal.  The engine
replaces the estimate with the count the last successful run of the same role and action
started (see :class:`installer.roles.RunRequests`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def estimate_playbook_tasks(playbook: Path) -> int:
    """The tasks of the playbook itself that every run starts (skipped ones start too).

    Includes are counted as the one task they are; what they include is the role's count.
    """
    try:
        plays = yaml.safe_load(playbook.read_text()) or []
    except (OSError, yaml.YAMLError):
        return 0
    total = 0
    for play in plays if isinstance(plays, list) else []:
        if not isinstance(play, dict):
            continue
        for section in ("pre_tasks", "tasks", "post_tasks"):
            total += _count_tasks(play.get(section) or [])
    return total


def _count_tasks(tasks: Any) -> int:
    total = 0
    for task in tasks if isinstance(tasks, list) else []:
        if not isinstance(task, dict):
            continue
        if "block" in task:
            total += sum(_count_tasks(task.get(k) or []) for k in _BLOCK_PARTS)
        else:
            total += 1
    return total


_TASK_INCLUDES = tuple(f"{ns}{k}_tasks" for ns in ("", "ansible.builtin.") for k in ("include", "import"))
_ROLE_INCLUDES = tuple(f"{ns}{k}_role" for ns in ("", "ansible.builtin.") for k in ("include", "import"))
# A rescue runs only when its block fails: not part of the expected count.
_BLOCK_PARTS = ("block", "always")


def estimate_tasks(role_dir: Path, entry: str) -> int | None:
    """Count the tasks a role's entry file will run, following includes whose target is literal.

    Tasks skipped by a condition start too, so they count; a conditional include is counted
    with its whole file (an upper bound). A first estimate for the ``12/40 tasks`` progress
    line; the engine replaces it with the count the last successful run of the same role and
    action started.
    """
    roles = role_dir.parent

    def count_file(path: Path, stack: tuple[Path, ...]) -> int:
        if path in stack or not path.is_file():
            return 0
        try:
            tasks = yaml.safe_load(path.read_text()) or []
        except yaml.YAMLError:
            return 0
        return count_list(tasks, path.parent, (*stack, path))

    def count_list(tasks: Any, base: Path, stack: tuple[Path, ...]) -> int:
        total = 0
        for task in tasks if isinstance(tasks, list) else []:
            if not isinstance(task, dict):
                continue
            if "block" in task:
                total += sum(count_list(task.get(k) or [], base, stack) for k in _BLOCK_PARTS)
                continue
            key = next((k for k in (*_TASK_INCLUDES, *_ROLE_INCLUDES) if k in task), None)
            # A dynamic include is itself a task that starts; a static import is not.
            total += 0 if key and "import" in key else 1
            target: Path | None = None
            if key in _TASK_INCLUDES:
                arg = task[key]
                name = arg.get("file") if isinstance(arg, dict) else arg
                target = base / name if isinstance(name, str) and "{{" not in name else None
            elif key in _ROLE_INCLUDES and isinstance(task[key], dict):
                name, entry_file = task[key].get("name"), task[key].get("tasks_from") or "main.yml"
                literal = isinstance(name, str) and "{{" not in name and "{{" not in str(entry_file)
                target = roles / str(name) / "tasks" / str(entry_file) if literal else None
            if target is not None:
                total += count_file(target, stack)
        return total

    path = role_dir / "tasks" / entry
    if not path.is_file():
        return None
    total = count_file(path, ())
    # Meta dependencies run their tasks/main.yml first.
    try:
        meta = yaml.safe_load((role_dir / "meta" / "main.yml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        meta = {}
    for dep in meta.get("dependencies") or []:
        name = dep.get("role") if isinstance(dep, dict) else dep
        if isinstance(name, str):
            total += count_file(roles / name / "tasks" / "main.yml", ())
    return total or None

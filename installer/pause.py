"""Holding new runs: the pause annotations of the ClusterConfiguration.

``installer.kubesphere.io/paused: "true"`` holds every new run;
``installer.kubesphere.io/paused-components: "devops, monitoring"`` holds those
components only.  Runs already in flight finish; what the spec asks meanwhile is
planned as usual and started once the annotation goes, from the spec as it is then.
Annotations do not bump ``metadata.generation``, so the engine compares them
itself on every watch event.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

PAUSED = "installer.kubesphere.io/paused"
PAUSED_COMPONENTS = "installer.kubesphere.io/paused-components"


@dataclass(frozen=True)
class Pause:
    everything: bool = False
    components: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return self.everything or bool(self.components)

    def holds(self, component: str) -> bool:
        return self.everything or component in self.components

    def describe(self) -> str:
        if self.everything:
            return f"every component ({PAUSED})"
        return f"{', '.join(sorted(self.components))} ({PAUSED_COMPONENTS})"


def pause_of(cc: dict[str, Any] | None) -> Pause:
    """The pause the object's annotations ask for (anything but ``true`` is no pause)."""
    annotations = ((cc or {}).get("metadata") or {}).get("annotations") or {}
    everything = str(annotations.get(PAUSED, "")).strip().lower() == "true"
    listed = frozenset(n for n in re.split(r"[\s,]+", str(annotations.get(PAUSED_COMPONENTS, ""))) if n)
    return Pause(everything, listed)


NO_PAUSE = Pause()

# Copyright: kubesphere-installer maintainers
# Apache License 2.0
"""Three-way merge of configuration documents, as ``kubectl apply`` does for objects.

``last`` is what the installer applied before, ``live`` what is there now (maybe
edited by hand), ``desired`` what the installer renders now. For every key:

* the installer still renders it: a hand edit (live differs from last) wins,
  otherwise the new rendered value is taken;
* the installer rendered it before but not any more: removed, unless edited by hand;
* the installer never rendered it: a user's key, kept.

Without a ``last`` (a ConfigMap made by hand or by another tool), every key
already present in ``live`` counts as set by hand.
"""

from __future__ import absolute_import, annotations, division, print_function

from typing import Any

__metaclass__ = type

_MISSING = object()


def three_way_merge(
    last: Any, live: Any, desired: Any, *, path: str = "", kept: list[str] | None = None
) -> Any:
    """Merge ``desired`` into ``live`` given ``last``; paths of hand-set values go to ``kept``."""
    kept = kept if kept is not None else []
    if isinstance(desired, dict) and isinstance(live, dict):
        last_map = last if isinstance(last, dict) else {}
        out: dict[str, Any] = {}
        for key in list(live.keys()) + [k for k in desired if k not in live]:
            sub = f"{path}.{key}" if path else str(key)
            in_desired, in_live = key in desired, key in live
            before = last_map.get(key, _MISSING)
            if in_desired and in_live:
                out[key] = three_way_merge(
                    None if before is _MISSING else before, live[key], desired[key], path=sub, kept=kept
                )
            elif in_desired:
                out[key] = desired[key]
            elif before is not _MISSING and before == live[key]:
                continue  # ours before, not any more, untouched since: drop it
            else:
                if before is not _MISSING:
                    kept.append(sub)
                out[key] = live[key]
        return out
    if last is None:
        if live != desired:
            kept.append(path)
        return live
    if live != last:
        if live != desired:
            kept.append(path)
        return live
    return desired

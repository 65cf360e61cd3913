"""Benchmarks (not tests): each writes a JSON result under bench/results/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).with_name("results")


def emit(name: str, result: dict[str, Any], *, write: bool = True) -> None:
    """Write the result (``write_result``), or with ``write=False`` (``--no-write``) only print it."""
    if write:
        write_result(name, result)
    else:
        print(json.dumps(result, indent=2))


def write_result(name: str, result: dict[str, Any]) -> Path:
    """Write ``bench/results/<name>.json`` and echo it."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    text = json.dumps(result, indent=2) + "\n"
    path.write_text(text)
    print(text, end="")
    print(f"written to {path}")
    return path

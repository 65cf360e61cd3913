"""Benchmarks (not tests): each writes a JSON result under bench/results/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).with_name("results")


def write_result(name: str, result: dict[str, Any]) -> Path:
    """Write ``bench/results/<name>.json`` and echo it."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    text = json.dumps(result, indent=2) + "\n"
    path.write_text(text)
    print(text, end="")
    print(f"written to {path}")
    return path

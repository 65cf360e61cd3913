"""Benchmark of the project image build (``make bench-image``).

Measured in one run on this machine: the Debian base built cold with
mmdebstrap (into a temporary file, then imported as the cached base), the
project image built cold (every layer, ``--no-cache``) on it, then rebuilt with
nothing changed (podman's layer cache), and its size.  The warm rebuild is what
a second ``make image`` costs.  Writes ``bench/results/image.json``.
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import write_result
from devcluster import image


def main() -> None:
    result: dict[str, Any] = {
        "benchmark": "image",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "load_average_start": round(os.getloadavg()[0], 2),
    }
    log = image.build_log()
    base = image.base_spec()
    with tempfile.TemporaryDirectory() as tmp:
        tarball = Path(tmp) / "base.tar"
        result["base_cold_seconds"] = image.build_base_tarball(tarball, log=log)
        result["base_size_bytes"] = tarball.stat().st_size
        result["base_import_seconds"] = image.import_base(base, tarball, log=log)
        if not base.tarball.is_file():
            base.tarball.parent.mkdir(parents=True, exist_ok=True)
            tarball.rename(base.tarball)
    started = time.monotonic()
    image.ensure_base(log=log)
    result["base_warm_seconds"] = round(time.monotonic() - started, 2)
    cold = image.build(no_cache=True)
    result["image_cold_seconds"] = cold["image_build_seconds"]
    warm = image.build()
    result["image_warm_seconds"] = warm["image_build_seconds"]
    result["image_size_bytes"] = warm["size_bytes"]
    result["image"] = warm["image"]
    result["load_average_end"] = round(os.getloadavg()[0], 2)
    write_result("image", result)


if __name__ == "__main__":
    main()

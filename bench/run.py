"""Benchmark runner: `make bench` runs every bench/bench_*.py module's main() against the
embedded (or configured) PostgreSQL and Redis, and writes results to bench/results/.

Later areas add their own bench_*.py; each prints its numbers and returns a dict.
"""

from __future__ import annotations

import importlib.util
import json
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def machine() -> dict:
    import os

    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "system": platform.platform(),
    }


def main(argv: list[str]) -> int:
    selected = set(argv)
    modules = sorted(p for p in HERE.glob("bench_*.py") if not selected or p.stem in selected)
    results = {
        "machine": machine(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "runs": {},
    }
    if not modules:
        print("no benchmarks yet (bench/bench_*.py)")
    for path in modules:
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        sys.path.insert(0, str(HERE))
        spec.loader.exec_module(module)
        print(f"== {path.stem}")
        results["runs"][path.stem] = module.main()
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(json.dumps(results, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

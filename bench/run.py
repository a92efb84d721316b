"""Benchmark runner: `make bench` runs every bench/bench_*.py module's main() against the
embedded (or configured) PostgreSQL and Redis, and writes results to bench/results/: one
``<bench>.json`` per benchmark run (what docs/benchmarks.md cites; committed) and
``latest.json`` with everything of this run.

Each benchmark makes its own tenant and drops it at the end (``common.clean_tenant``); tenants
left by a crashed run are dropped first. Each prints its numbers and returns a dict; those that
talk to the sandbox report the platform errors in its call log (``platform_errors``).
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

    import psutil

    model = ""
    try:
        model = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "machine": platform.machine(),
        "system": platform.platform(),
    }


def main(argv: list[str]) -> int:
    import os

    selected = set(argv)
    modules = sorted(p for p in HERE.glob("bench_*.py") if not selected or p.stem in selected)
    results = {
        "machine": machine(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "runs": {},
    }
    if not modules:
        print("no benchmarks yet (bench/bench_*.py)")
    sys.path.insert(0, str(HERE))
    import common

    dropped = common.drop_bench_tenants()
    if dropped:
        print(f"dropped tenants left by earlier runs: {', '.join(dropped)}")
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    for path in modules:
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        print(f"== {path.stem}")
        started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        load_before = [round(x, 2) for x in os.getloadavg()]
        result = module.main()
        run = {
            "started": started,
            "load_before": load_before,
            "load_after": [round(x, 2) for x in os.getloadavg()],
            "machine": results["machine"],
            "platform_errors": result.get("platform_errors", "no platform calls (no sandbox)"),
            "result": result,
        }
        results["runs"][path.stem] = run
        errors = run["platform_errors"]
        print(f"   platform errors: {errors['errors'] if isinstance(errors, dict) else errors}")
        (out / f"{path.stem}.json").write_text(json.dumps(run, indent=2, ensure_ascii=False, default=str))
    (out / "latest.json").write_text(json.dumps(results, indent=2, ensure_ascii=False, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

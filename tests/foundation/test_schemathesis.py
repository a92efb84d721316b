"""Schemathesis against the live API of a committed tenant (issue 12, "must show").

Every operation of the live schema, all phases (examples, coverage, fuzzing, stateful), all
checks — no server errors, every response conforms to the schema, every invalid request
refused, no request accepted without authentication — plus our own check that the same
requests with another tenant's token are refused (``fuzz_checks.py``).

The normal suite runs a short, seeded run; ``make fuzz`` a long one (``ECBAO_FUZZ=long``)
whose summary goes to ``docs/api-fuzz.md``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.foundation.world import create_world, delete_world

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
LONG = os.environ.get("ECBAO_FUZZ") == "long"
SHORT_EXAMPLES = 8
LONG_EXAMPLES = 200
SEED = 20261207


@pytest.fixture(scope="module")
def fuzz_worlds(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        for slug in ("fuzz-a", "fuzz-b"):
            delete_world(slug)
        worlds = create_world("fuzz-a", "9101"), create_world("fuzz-b", "9102")
    yield worlds
    with django_db_blocker.unblock():
        for world in worlds:
            delete_world(world.slug)


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    binary = Path(sys.executable).parent / "schemathesis"
    return subprocess.run(
        [str(binary), *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=3 * 3600
    )


def test_issue12_d11_schemathesis_finds_nothing(fuzz_worlds, live_url, tmp_path):
    own, other = fuzz_worlds
    base = live_url.format(host="127.0.0.1")
    owner = {"Host": own.host, "Authorization": f"Token {own.tokens['owner']}"}
    schema = httpx.get(f"{base}/api/schema/?format=json", headers=owner, timeout=60)
    assert schema.status_code == 200, schema.text[:300]
    schema_file = tmp_path / "schema.json"
    schema_file.write_text(schema.text)
    operations = sum(
        1 for item in schema.json()["paths"].values() for method in item if method not in ("parameters",)
    )
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": str(Path(__file__).with_name("fuzz_checks.py")),
        "ECBAO_FUZZ_FOREIGN_TOKEN": other.tokens["owner"],
        "ECBAO_FUZZ_BASE_URL": base,
        "ECBAO_FUZZ_HOST": own.host,
        "NO_COLOR": "1",
    }
    report = tmp_path / "report"
    args = [
        "--config-file",
        str(Path(__file__).with_name("schemathesis.toml")),
        "run",
        str(schema_file),
        "--url",
        base,
        "-H",
        f"Host: {own.host}",
        "-H",
        f"Authorization: Token {own.tokens['owner']}",
        "--checks",
        "all",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--max-examples",
        str(LONG_EXAMPLES if LONG else SHORT_EXAMPLES),
        "--seed",
        str(SEED),
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--suppress-health-check",
        "all",
        "--report",
        "ndjson",
        "--report-dir",
        str(report),
    ]
    args += ["--max-time", os.environ.get("ECBAO_FUZZ_SECONDS", "1200") if LONG else "120"]
    started = datetime.now(UTC)
    result = _run(args, env)
    seconds = (datetime.now(UTC) - started).total_seconds()
    output = result.stdout + result.stderr
    (ROOT / ".data").mkdir(exist_ok=True)
    (ROOT / ".data" / "schemathesis-last.txt").write_text(output)
    if LONG:
        _write_summary(output, operations=operations, seconds=seconds, passed=result.returncode == 0)
    assert result.returncode == 0, output[-12000:]
    assert re.search(r"\b\d+ passed\b", output), output[-3000:]


def _write_summary(output: str, *, operations: int, seconds: float, passed: bool) -> None:
    """Replace the "Last long run" section of docs/api-fuzz.md (the rest is kept)."""
    summary = output[output.rfind("=" * 10 + " SUMMARY") :] if "SUMMARY" in output else output[-4000:]
    doc = ROOT / "docs" / "api-fuzz.md"
    marker = "## Last long run"
    head = doc.read_text().split(marker)[0] if doc.exists() else "# API fuzz (Schemathesis)\n\n"
    doc.write_text(
        head + f"{marker}\n\n{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {operations} operations, up to "
        f"{LONG_EXAMPLES} examples per operation, seed {SEED}, {seconds:.0f} s: "
        f"{'no failures' if passed else 'FAILURES'}.\n\n```\n" + summary.strip() + "\n```\n"
    )

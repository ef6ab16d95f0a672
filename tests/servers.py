"""Switchboard as a real process: start it on a free port, signal it, watch its Postgres."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

SWITCHBOARD = str(Path(sys.executable).with_name("switchboard"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    env.pop("DATABASE_URL", None)
    # Every test's users sign up and in from 127.0.0.1; the limits per address are tested on
    # their own (tests/test_auth_limits.py).
    for limit in ("REGISTER_PER_MINUTE", "REFRESH_PER_MINUTE", "LOGIN_MAX_FAILURES_PER_ADDRESS"):
        env[f"SWITCHBOARD_{limit}"] = "100000"
    # The repository's langgraph.json serves an example graph as an agent: not to these servers
    # (their tests count the seeded agents), unless a test asks.
    env["SWITCHBOARD_GRAPHS_CONFIG"] = ""
    env.update(extra)
    return env


def postgres_running(pgdata: Path) -> bool:
    """Whether a postmaster owns ``pgdata`` (its pid file exists and the pid is alive)."""
    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists():
        return False
    try:
        pid = int(pid_file.read_text().splitlines()[0])
        os.kill(pid, 0)
    except (ValueError, IndexError, ProcessLookupError, FileNotFoundError):
        return False
    return True


class Server:
    def __init__(self, data_dir: Path, env: dict[str, str]):
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = data_dir / f"server-{self.port}.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [SWITCHBOARD, "serve", "--port", str(self.port)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        # A guard against hanging, not a timing check: a loaded machine has taken over 60 s.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        # Not left running (with its embedded Postgres) by the test that gives up on it.
        self.proc.kill()
        self.proc.wait()
        stop_postgres(data_dir / "pgdata")
        raise AssertionError(f"server did not start:\n{self.log.read_text()}")

    def signal(self, sig: int) -> int:
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            tail = self.log.read_text(errors="replace")[-4000:]
            message = f"the server outlived signal {sig} by 30 s; its log:\n{tail}"
            raise AssertionError(message) from None

    def stop_gracefully(self, sig: int) -> None:
        """Send ``sig`` and check the lifespan shutdown ran to completion."""
        # After shutting down, uvicorn re-raises SIGTERM so the exit status reports it;
        # SIGINT (Ctrl+C) ends in a plain exit.
        assert self.signal(sig) == (-sig if sig == signal.SIGTERM else 0)
        assert "Application shutdown complete" in self.log.read_text()


class Worker:
    """``switchboard worker`` as a real process, ready once it says so in its log."""

    def __init__(self, data_dir: Path, env: dict[str, str], name: str = "worker"):
        self.log = data_dir / f"{name}-{free_port()}.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [SWITCHBOARD, "worker"], env=env, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            if " ready: " in self.log.read_text():
                return
            time.sleep(0.05)
        raise AssertionError(f"worker did not start:\n{self.log.read_text()}")

    @property
    def worker_id(self) -> str:
        """How the worker names itself on the runs it claims."""
        return f"{socket.gethostname()}:{self.proc.pid}"

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=30)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)


@contextlib.contextmanager
def redis_server(data_dir: Path) -> Iterator[str]:
    """Debian's ``redis-server`` on a free port, in memory only; yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed: apt-get install -y redis-server")
    port = free_port()
    pid_file = data_dir / f"redis-{port}.pid"
    subprocess.run(
        [
            binary,
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--daemonize", "yes",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(data_dir),
            "--pidfile", str(pid_file),
            "--logfile", str(data_dir / f"redis-{port}.log"),
        ],
        check=True,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    try:
        import redis

        client = redis.Redis.from_url(url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.02)
        client.close()
        yield url
    finally:
        with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
            os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)


def stop_postgres(pgdata: Path) -> None:
    """Stop an embedded Postgres left running (after a ``kill -9``) with its own ``pg_ctl``."""
    if not postgres_running(pgdata):
        return
    import pgserver

    pg_ctl = Path(pgserver.__file__).parent / "pginstall" / "bin" / "pg_ctl"
    command = [str(pg_ctl), "-D", str(pgdata), "-m", "fast", "-w", "stop"]
    if os.geteuid() == 0:  # pgserver runs Postgres as its own OS user when we are root
        command = ["su", "pgserver", "-s", "/bin/sh", "-c", " ".join(command)]
    subprocess.run(command, check=False, capture_output=True)


ADMIN = {"email": "root@example.org", "password": "root-password"}


@contextlib.contextmanager
def beside_the_tests(database_url: str, jwt_secret: str, **env: str) -> Iterator[Server]:
    """A started server on the tests' database with their JWT secret, so users, agents, chats
    and tokens the in-process app's fixtures make are this server's too."""
    data_dir = Path(tempfile.mkdtemp(prefix="switchboard-server-", dir="/tmp"))
    started = Server(
        data_dir, clean_env(DATABASE_URL=database_url, SWITCHBOARD_JWT_SECRET=jwt_secret, **env)
    )
    try:
        yield started
    finally:
        started.signal(15)
        shutil.rmtree(data_dir, ignore_errors=True)


def admin_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """Environment for a server on its own embedded Postgres with a bootstrap admin."""
    return clean_env(
        SWITCHBOARD_DATA_DIR=str(data_dir),
        SWITCHBOARD_ADMIN_EMAIL=ADMIN["email"],
        SWITCHBOARD_ADMIN_PASSWORD=ADMIN["password"],
        **extra,
    )


def user_with_agent(
    http: httpx.Client, model_name: str, tools: list[str] | None = None
) -> tuple[dict[str, str], dict]:
    """Register a user and (as the admin) an agent on ``model_name`` with ``tools``: (user
    headers, agent)."""
    admin = http.post("/auth/login", json=ADMIN).json()
    user = http.post(
        "/auth/register",
        json={"name": "U", "email": "u@example.org", "password": "correct horse battery"},
    ).json()
    agent = http.post(
        "/agents/",
        json={"name": "Agent", "model_name": model_name, "tools_enabled": tools or []},
        headers={"Authorization": f"Bearer {admin['access_token']}"},
    ).json()
    return {"Authorization": f"Bearer {user['access_token']}"}, agent

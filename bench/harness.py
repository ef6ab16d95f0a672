"""What every benchmark shares: a deployment on free ports, clients that time streams, stats.

A ``Deployment`` starts one embedded Postgres (and Redis when asked), then N ``switchboard
serve`` replicas and M ``switchboard worker`` processes against them, creates an admin, a user
and agents, and stops everything on exit (also on Ctrl+C and errors). Not tests: nothing here
asserts a timing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

SWITCHBOARD = str(Path(sys.executable).with_name("switchboard"))
ADMIN = {"email": "bench-admin@example.org", "password": "bench-password"}
RESULTS = Path(__file__).parent / "results"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))
    return ordered[index]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "p50": round(percentile(values, 50), 2),
        "p90": round(percentile(values, 90), 2),
        "p99": round(percentile(values, 99), 2),
        "mean": round(statistics.fmean(values), 2) if values else float("nan"),
        "n": len(values),
    }


def table(title: str, header: list[str], rows: list[list[Any]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    lines = [title, "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def turn_arguments(doc: str | None) -> argparse.Namespace:
    """``--runs`` and ``--tokens``, for the workloads that time one turn after another."""
    parser = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--tokens", type=int, default=50)
    return parser.parse_args()


def finish(name: str, outcome: dict[str, Any], report: Callable[[dict[str, Any]], str]) -> None:
    """Print a workload's table and its JSON, and save the JSON under ``bench/results``."""
    print(report(outcome))
    print(json.dumps(outcome))
    save(name, outcome)


def save(name: str, result: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2))
    return path


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
    }


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    env.update(extra)
    return env


def _wait_http(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"process exited:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise SystemExit(f"{url} did not come up:\n{log.read_text()[-3000:]}")


@dataclass
class Deployment:
    """``replicas`` API processes (and ``workers``) on one Postgres (and Redis if needed)."""

    replicas: int = 1
    workers: int = 0
    execute_runs: bool = True
    redis: bool = False
    extra_env: dict[str, str] = field(default_factory=dict)
    # Called with the Postgres URI once it is up, before any server starts (and migrates).
    prepare_postgres: Callable[[str], None] | None = None
    urls: list[str] = field(default_factory=list)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def __enter__(self) -> Deployment:
        self._stack = contextlib.ExitStack()
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _start(self) -> None:
        from storage.db import start_embedded

        self.dir = Path(tempfile.mkdtemp(prefix="switchboard-bench-", dir="/tmp"))
        self._stack.callback(shutil.rmtree, self.dir, True)
        self.pg = start_embedded(self.dir / "pg")
        self._stack.callback(self.pg.stop)
        if self.prepare_postgres is not None:
            self.prepare_postgres(self.pg.uri())
        env = {
            "DATABASE_URL": self.pg.uri(),
            "SWITCHBOARD_ADMIN_EMAIL": ADMIN["email"],
            "SWITCHBOARD_ADMIN_PASSWORD": ADMIN["password"],
            "SWITCHBOARD_LOG_LEVEL": "WARNING",
            "SWITCHBOARD_POOL_MAX_SIZE": "40",
            **self.extra_env,
        }
        if self.redis or self.workers or not self.execute_runs:
            port = free_port()
            subprocess.run(
                ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--daemonize",
                 "yes", "--save", "", "--appendonly", "no", "--dir", str(self.dir),
                 "--pidfile", str(self.dir / "redis.pid")],
                check=True, stdout=subprocess.DEVNULL,
            )  # fmt: skip
            self._stack.callback(self._stop_redis)
            env["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
            time.sleep(0.3)
        for i in range(self.replicas):
            port = free_port()
            log = self.dir / f"api-{i}.log"
            api_env = dict(env)
            if not self.execute_runs:
                api_env["SWITCHBOARD_EXECUTE_RUNS"] = "false"
            proc = self._spawn([SWITCHBOARD, "serve", "--port", str(port)], api_env, log)
            url = f"http://127.0.0.1:{port}"
            _wait_http(f"{url}/healthz", proc, log)
            self.urls.append(url)
        for i in range(self.workers):
            log = self.dir / f"worker-{i}.log"
            self._spawn([SWITCHBOARD, "worker"], env, log)
        time.sleep(0.5 if self.workers else 0)

    def _spawn(self, cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        out = log.open("wb")
        proc = subprocess.Popen(cmd, env=_clean_env(**env), stdout=out, stderr=subprocess.STDOUT)
        self.procs.append(proc)

        def stop() -> None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
            out.close()

        self._stack.callback(stop)
        return proc

    def _stop_redis(self) -> None:
        with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
            os.kill(int((self.dir / "redis.pid").read_text().strip()), signal.SIGTERM)

    def server_processes(self) -> list[psutil.Process]:
        return [psutil.Process(p.pid) for p in self.procs]

    def postgres_processes(self) -> list[psutil.Process]:
        pgdata = str(self.dir / "pg")
        found = []
        for proc in psutil.process_iter(["cmdline", "name"]):
            with contextlib.suppress(psutil.Error):
                if proc.info["name"] == "postgres" and any(
                    pgdata in part for part in proc.info["cmdline"] or []
                ):
                    found.append(proc)
                    found.extend(proc.children(recursive=True))
        return found

    def setup(self, models: dict[str, str]) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
        """A user's headers, and agents ``{name: agent}`` on the given models."""
        with httpx.Client(base_url=self.urls[0], timeout=60) as http:
            admin = http.post("/auth/login", json=ADMIN).json()
            admin_headers = {"Authorization": f"Bearer {admin['access_token']}"}
            agents = {
                name: http.post(
                    "/agents/", json={"name": name, "model_name": model}, headers=admin_headers
                ).json()
                for name, model in models.items()
            }
            user = http.post(
                "/auth/register",
                json={"name": "B", "email": "bench@example.org", "password": ADMIN["password"]},
            ).json()
        return {"Authorization": f"Bearer {user['access_token']}"}, agents


class Sampler:
    """CPU% and RSS of process groups, sampled every ``interval`` seconds in a thread."""

    def __init__(self, groups: dict[str, Any], interval: float = 0.5):
        self.groups = groups  # name -> callable returning the processes
        self.interval = interval
        self.samples: dict[str, list[tuple[float, float]]] = {name: [] for name in groups}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        # cpu_percent compares with the previous call on the same object: keep them.
        self._known: dict[int, psutil.Process] = {}

    def _procs(self, name: str) -> list[psutil.Process]:
        found = []
        for p in self.groups[name]():
            if p.pid not in self._known:
                self._known[p.pid] = p
                with contextlib.suppress(psutil.Error):
                    p.cpu_percent(None)
            found.append(self._known[p.pid])
        return found

    def __enter__(self) -> Sampler:
        for name in self.groups:
            self._procs(name)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for name in self.groups:
                cpu = rss = 0.0
                for p in self._procs(name):
                    with contextlib.suppress(psutil.Error):
                        cpu += p.cpu_percent(None)
                        rss += p.memory_info().rss
                self.samples[name].append((cpu, rss / 2**20))

    def report(self) -> dict[str, dict[str, float]]:
        out = {}
        for name, values in self.samples.items():
            cpus = [c for c, _ in values[1:]] or [0.0]
            out[name] = {
                "cpu_percent_mean": round(statistics.fmean(cpus), 1),
                "rss_mib_max": round(max((r for _, r in values), default=0.0), 1),
            }
        return out


def rss_mib(procs: list[psutil.Process]) -> float:
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return round(total / 2**20, 1)


@contextlib.contextmanager
def clients(urls: list[str], n: int) -> Iterator[list[httpx.AsyncClient]]:
    """``n`` async clients, spread over ``urls`` round-robin (one connection pool each)."""
    made = [
        httpx.AsyncClient(
            base_url=urls[i % len(urls)],
            timeout=120,
            limits=httpx.Limits(max_connections=4, max_keepalive_connections=4),
        )
        for i in range(n)
    ]
    yield made


async def _timed_stream(
    http: httpx.AsyncClient, started: float, marker: bytes, url: str, **request: Any
) -> tuple[float, float]:
    """POST ``url`` and read its SSE to the end: (ms from ``started`` to the first chunk holding
    ``marker``, ms in total)."""
    first = None
    async with http.stream("POST", url, **request) as response:
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}")
        async for chunk in response.aiter_bytes():
            if first is None and marker in chunk:
                first = time.perf_counter()
    ended = time.perf_counter()
    if first is None:
        raise RuntimeError("no token")
    return (first - started) * 1000, (ended - started) * 1000


async def native_turn(
    http: httpx.AsyncClient, headers: dict[str, str], agent_id: str, chat_id: str | None = None
) -> tuple[float, float]:
    """Create a chat (unless given) and stream one answer: (ms to first token, ms in total)."""
    started = time.perf_counter()
    if chat_id is None:
        chat = await http.post("/chats/", json={"agent_id": agent_id}, headers=headers)
        chat_id = chat.json()["id"]
    return await _timed_stream(
        http, started, b"event: token", f"/chats/{chat_id}/messages",
        json={"content": "hello"}, headers={**headers, "Accept": "text/event-stream"},
    )  # fmt: skip


async def protocol_turn(
    http: httpx.AsyncClient,
    headers: dict[str, str],
    assistant_id: str,
    thread_id: str | None = None,
) -> tuple[float, float]:
    """Agent Protocol: create a thread (unless given), stream a run in messages-tuple mode."""
    started = time.perf_counter()
    if thread_id is None:
        thread_id = (await http.post("/threads", json={}, headers=headers)).json()["thread_id"]
    body = {
        "assistant_id": assistant_id,
        "input": {"messages": [{"role": "user", "content": "hello"}]},
        "stream_mode": ["messages-tuple"],
    }
    return await _timed_stream(
        http, started, b"event: messages", f"/threads/{thread_id}/runs/stream",
        json=body, headers=headers,
    )  # fmt: skip


async def sequential_turns(
    url: str, headers: dict, agent: dict, runs: int, warmup: int, *, timed_create: bool
) -> dict[str, list[tuple[float, float]]]:
    """``warmup + runs`` turns one after another on each path, each on a new chat (thread);
    the samples after the warm-up. ``timed_create``: the clock includes creating the chat,
    otherwise it is created before the clock starts and only the answer counts."""
    out: dict[str, list[tuple[float, float]]] = {"native": [], "protocol": []}
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        for i in range(warmup + runs):
            chat_id = None
            if not timed_create:
                chat = await http.post("/chats/", json={"agent_id": agent["id"]}, headers=headers)
                chat_id = chat.json()["id"]
            sample = await native_turn(http, headers, agent["id"], chat_id)
            if i >= warmup:
                out["native"].append(sample)
        for i in range(warmup + runs):
            thread_id = None
            if not timed_create:
                thread = await http.post("/threads", json={}, headers=headers)
                thread_id = thread.json()["thread_id"]
            sample = await protocol_turn(http, headers, agent["slug"], thread_id)
            if i >= warmup:
                out["protocol"].append(sample)
    return out

"""Latency of one chat turn through the native API, against a started server.

Starts ``switchboard serve`` (embedded Postgres, fresh data dir) on a free port, then for each of
``--runs`` sequential iterations: create a chat, post a message with ``Accept:
text/event-stream`` to an agent on ``fake:tokens-50``, read the stream to its ``end``. Reports
time to first token and total time (p50/p90/p99) as a table and as JSON. Not a test: nothing is
asserted.

    python bench/latency.py [--runs 50] [--tokens 50]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

SWITCHBOARD = str(Path(sys.executable).with_name("switchboard"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))
    return ordered[index]


def start_server(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    env.pop("DATABASE_URL", None)
    env.update(
        SWITCHBOARD_DATA_DIR=str(data_dir),
        SWITCHBOARD_ADMIN_EMAIL="bench@example.org",
        SWITCHBOARD_ADMIN_PASSWORD="bench-password",
        SWITCHBOARD_LOG_LEVEL="WARNING",
    )
    proc = subprocess.Popen(
        [SWITCHBOARD, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("server did not start")


def turn(http: httpx.Client, headers: dict[str, str], agent_id: str) -> tuple[float, float]:
    started = time.perf_counter()
    chat = http.post("/chats/", json={"agent_id": agent_id}, headers=headers).json()
    first_token = None
    with http.stream(
        "POST",
        f"/chats/{chat['id']}/messages",
        json={"content": "hello"},
        headers={**headers, "Accept": "text/event-stream"},
    ) as response:
        for line in response.iter_lines():
            if first_token is None and line == "event: token":
                first_token = time.perf_counter()
            if line == "event: end":
                break
    ended = time.perf_counter()
    assert first_token is not None
    return (first_token - started) * 1000, (ended - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=50)
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="switchboard-bench-", dir="/tmp"))
    port = free_port()
    proc = start_server(data_dir, port)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            admin = http.post(
                "/auth/login", json={"email": "bench@example.org", "password": "bench-password"}
            ).json()
            agent = http.post(
                "/agents/",
                json={"name": "Bench", "model_name": f"fake:tokens-{args.tokens}"},
                headers={"Authorization": f"Bearer {admin['access_token']}"},
            ).json()
            user = http.post(
                "/auth/register",
                json={"name": "B", "email": "b@example.org", "password": "bench-password"},
            ).json()
            headers = {"Authorization": f"Bearer {user['access_token']}"}
            for _ in range(args.warmup):
                turn(http, headers, agent["id"])
            samples = [turn(http, headers, agent["id"]) for _ in range(args.runs)]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        shutil.rmtree(data_dir, ignore_errors=True)

    ttft = [s[0] for s in samples]
    total = [s[1] for s in samples]
    result = {
        "workload": f"create chat + stream a {args.tokens}-token answer (native SSE)",
        "runs": args.runs,
        "ttft_ms": {f"p{q}": round(percentile(ttft, q), 2) for q in (50, 90, 99)},
        "total_ms": {f"p{q}": round(percentile(total, q), 2) for q in (50, 90, 99)},
        "total_mean_ms": round(statistics.fmean(total), 2),
    }
    print(f"{'metric':<10} {'p50':>8} {'p90':>8} {'p99':>8}")
    for name in ("ttft_ms", "total_ms"):
        row = result[name]
        print(f"{name:<10} {row['p50']:>8} {row['p90']:>8} {row['p99']:>8}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()

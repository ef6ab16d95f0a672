"""Soak: ``--clients`` clients (50) for ``--minutes`` minutes (10) against a started server.

Each client opens a chat, has ``--turns`` turns on it (each answer streamed over SSE from a
``--model`` that streams like a provider: 200 tokens, 10 ms apart by default), reads the chat's
messages after each turn, then opens the next chat. One turn in ten is cancelled mid-stream
(``POST /runs/{id}/cancel`` after ``--cut-after`` tokens, then read to its ``end``), and one in
ten drops its connection there and resumes with ``Last-Event-ID`` on ``GET /runs/{id}/stream``.

What counts as an error (there must be none): a refused request or a network error, a stream
without its ``end``, an ``end`` with another status than the turn expects, a resumed stream
that repeats or loses an event (event ids strictly increasing across the cut, exactly N tokens
in all), messages that do not end with the whole answer.

Every ``--sample-seconds`` (10): the server's RSS, and the database's client connections
(``pg_stat_activity``, this bench's own excluded), which the server's pool bounds
(``SWITCHBOARD_POOL_MAX_SIZE``, 20 by default). The RSS slope after ``--warmup-seconds`` is a
least-squares fit, in MiB per minute.

    python -m bench.soak [--clients 50] [--minutes 10] [--model fake:tokens-200@10]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg

from bench.harness import Deployment, finish, machine, rss_mib, table

SSE = {"Accept": "text/event-stream"}
CONNECTIONS = """
SELECT count(*) AS n FROM pg_stat_activity
WHERE datname = current_database() AND backend_type = 'client backend' AND pid <> pg_backend_pid()
"""


@dataclass
class Tally:
    turns: Counter[str] = field(default_factory=Counter)
    chats: int = 0
    history_reads: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    # A few examples of each error, for whoever has to find out why.
    examples: dict[str, list[str]] = field(default_factory=dict)

    def error(self, kind: str, detail: str) -> None:
        self.errors[kind] += 1
        self.examples.setdefault(kind, [])
        if len(self.examples[kind]) < 3:
            self.examples[kind].append(detail[:300])


class TurnError(Exception):
    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


async def _events(response: httpx.Response) -> Any:
    """(id, event, data) of each complete event of an SSE response."""
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line == "":
            if "event" in fields:
                yield int(fields["id"]), fields["event"], json.loads(fields["data"])
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")


class Client:
    def __init__(
        self, http: httpx.AsyncClient, headers: dict[str, str], agent_id: str, args: Any, seed: int
    ) -> None:
        self.http = http
        self.headers = headers
        self.agent_id = agent_id
        self.args = args
        self.random = random.Random(seed)

    async def run(self, deadline: float, tally: Tally) -> None:
        while time.monotonic() < deadline:
            try:
                chat = await self.http.post(
                    "/chats/", json={"agent_id": self.agent_id}, headers=self.headers
                )
                if chat.status_code != 201:
                    raise TurnError("create_chat", f"HTTP {chat.status_code}: {chat.text}")
                tally.chats += 1
                chat_id = chat.json()["id"]
                for _ in range(self.args.turns):
                    if time.monotonic() >= deadline:
                        break
                    roll = self.random.random()
                    kind = "cancel" if roll < 0.1 else "resume" if roll < 0.2 else "full"
                    await self.turn(chat_id, kind)
                    tally.turns[kind] += 1
                    await self.history(chat_id, kind)
                    tally.history_reads += 1
            except TurnError as exc:
                tally.error(exc.kind, exc.detail)
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                tally.error(type(exc).__name__, repr(exc))

    async def turn(self, chat_id: str, kind: str) -> None:
        """One message streamed to its end: read whole, cancelled, or cut and resumed."""
        ids: list[int] = []
        tokens = 0
        run_id = None
        status = None
        async with self.http.stream(
            "POST", f"/chats/{chat_id}/messages", json={"content": "soak"},
            headers=self.headers | SSE,
        ) as response:  # fmt: skip
            if response.status_code != 200:
                await response.aread()
                raise TurnError("send", f"HTTP {response.status_code}: {response.text}")
            async for event_id, event, data in _events(response):
                ids.append(event_id)
                if event == "run":
                    run_id = data["run_id"]
                elif event == "token":
                    tokens += 1
                    if tokens == self.args.cut_after and kind == "cancel":
                        cancel = await self.http.post(
                            f"/runs/{run_id}/cancel", headers=self.headers
                        )
                        if cancel.status_code != 200:
                            raise TurnError("cancel", f"HTTP {cancel.status_code}")
                    if tokens == self.args.cut_after and kind == "resume":
                        break  # the connection drops; the run goes on
                elif event == "end":
                    status = data["status"]
                elif event == "error":
                    raise TurnError("error_event", json.dumps(data))
        if kind == "resume":
            async with self.http.stream(
                "GET", f"/runs/{run_id}/stream",
                headers=self.headers | SSE | {"Last-Event-ID": str(ids[-1])},
            ) as response:  # fmt: skip
                if response.status_code != 200:
                    await response.aread()
                    raise TurnError("resume", f"HTTP {response.status_code}: {response.text}")
                async for event_id, event, data in _events(response):
                    ids.append(event_id)
                    if event == "token":
                        tokens += 1
                    elif event == "end":
                        status = data["status"]
        if any(b <= a for a, b in itertools.pairwise(ids)):
            raise TurnError("event_ids", f"{kind}: ids not strictly increasing")
        expected = "cancelled" if kind == "cancel" else "success"
        if status != expected:
            raise TurnError("end_status", f"{kind}: end {status}, expected {expected}")
        if kind != "cancel" and tokens != self.args.tokens:
            raise TurnError("tokens", f"{kind}: {tokens} tokens, expected {self.args.tokens}")

    async def history(self, chat_id: str, kind: str) -> None:
        page = await self.http.get(
            f"/chats/{chat_id}/messages", params={"limit": 500}, headers=self.headers
        )
        if page.status_code != 200:
            raise TurnError("history", f"HTTP {page.status_code}: {page.text}")
        items = page.json()["items"]
        if kind == "cancel":
            return  # what a cancelled answer keeps is the runtime's choice
        last = items[-1] if items else {}
        if (
            last.get("sender") != "agent"
            or len(str(last.get("content")).split()) != self.args.tokens
        ):
            raise TurnError("history_answer", f"last message {str(last)[:200]}")


def slope(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, MiB), in MiB per minute."""
    if len(points) < 2:
        return None
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_m = sum(m for _, m in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    cov = sum((t - mean_t) * (m - mean_m) for t, m in points)
    return round(cov / var * 60, 3) if var else None


async def soak(args: argparse.Namespace, deployment: Deployment) -> dict[str, Any]:
    headers, agents = deployment.setup({"soak": args.model})
    url = deployment.urls[0]
    agent_id = agents["soak"]["id"]
    tally = Tally()
    samples: list[dict[str, float]] = []
    load_before = os.getloadavg()[0]
    server = deployment.server_processes()[0]
    server_cpu = sum(server.cpu_times()[:2])
    bench_cpu = time.process_time()
    started = time.monotonic()
    deadline = started + args.minutes * 60

    def connections() -> int:
        with psycopg.connect(deployment.pg.uri(), autocommit=True) as conn:
            row = conn.execute(CONNECTIONS).fetchone()
            return int(row[0]) if row else 0

    async def sample() -> None:
        while True:
            samples.append(
                {
                    "t_s": round(time.monotonic() - started, 1),
                    "rss_mib": rss_mib(deployment.server_processes()),
                    "pg_connections": await asyncio.to_thread(connections),
                }
            )
            await asyncio.sleep(args.sample_seconds)

    limits = httpx.Limits(max_connections=4, max_keepalive_connections=4)
    https = [
        httpx.AsyncClient(base_url=url, timeout=120, limits=limits) for _ in range(args.clients)
    ]
    sampler = asyncio.create_task(sample())
    try:
        await asyncio.gather(
            *(
                Client(http, headers, agent_id, args, seed=args.seed + i).run(deadline, tally)
                for i, http in enumerate(https)
            )
        )
    finally:
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
        for http in https:
            await http.aclose()
    elapsed = time.monotonic() - started
    # Of the two cores, what the server and this bench's clients each used (the rest: Postgres,
    # and whatever else the machine ran).
    server_cpu = sum(server.cpu_times()[:2]) - server_cpu
    bench_cpu = time.process_time() - bench_cpu
    after_warmup = [(s["t_s"], s["rss_mib"]) for s in samples if s["t_s"] >= args.warmup_seconds]
    return {
        "workload": "soak",
        "machine": machine(),
        "clients": args.clients,
        "minutes": args.minutes,
        "model": args.model,
        "turns_per_chat": args.turns,
        "elapsed_s": round(elapsed, 1),
        "chats": tally.chats,
        "turns": dict(tally.turns),
        "turns_per_s": round(sum(tally.turns.values()) / elapsed, 2),
        "history_reads": tally.history_reads,
        "errors": sum(tally.errors.values()),
        "errors_by_kind": dict(tally.errors),
        "error_examples": tally.examples,
        "warmup_s": args.warmup_seconds,
        "rss_first_after_warmup_mib": after_warmup[0][1] if after_warmup else None,
        "rss_last_mib": samples[-1]["rss_mib"] if samples else None,
        "rss_max_mib": max((s["rss_mib"] for s in samples), default=None),
        "rss_slope_mib_per_min": slope(after_warmup),
        "pg_connections_max": max((s["pg_connections"] for s in samples), default=None),
        "pool_max_size": args.pool_max_size,
        # The machine's 1-minute load average as the soak started and ended (others' work too).
        "server_cpu_percent": round(server_cpu / elapsed * 100, 1),
        "bench_cpu_percent": round(bench_cpu / elapsed * 100, 1),
        "load_average": [round(load_before, 1), round(os.getloadavg()[0], 1)],
        "samples": samples,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    extra = {
        "SWITCHBOARD_POOL_MAX_SIZE": str(args.pool_max_size),
        "SWITCHBOARD_SHUTDOWN_GRACE_SECONDS": "1",
        "SWITCHBOARD_RUN_LOG_RETENTION_SECONDS": str(args.run_log_retention_seconds),
    }
    with Deployment(extra_env=extra) as deployment:
        return asyncio.run(soak(args, deployment))


def report(result: dict[str, Any]) -> str:
    turns = result["turns"]
    rows = [
        ["turns (full / cancelled / resumed)",
         f"{turns.get('full', 0)} / {turns.get('cancel', 0)} / {turns.get('resume', 0)}"],
        ["turns/s", result["turns_per_s"]],
        ["chats, history reads", f"{result['chats']}, {result['history_reads']}"],
        ["errors", f"{result['errors']} {result['errors_by_kind'] or ''}".strip()],
        ["RSS after warm-up -> last (max), MiB",
         f"{result['rss_first_after_warmup_mib']} -> {result['rss_last_mib']} "
         f"({result['rss_max_mib']})"],
        [f"RSS slope after {result['warmup_s']} s, MiB/min", result["rss_slope_mib_per_min"]],
        ["Postgres client connections, max (pool max)",
         f"{result['pg_connections_max']} ({result['pool_max_size']})"],
        ["CPU: server, bench clients (% of one core)",
         f"{result['server_cpu_percent']}, {result['bench_cpu_percent']}"],
        ["load average at start, end (2 cores)", result["load_average"]],
    ]  # fmt: skip
    return table(
        f"soak: {result['clients']} clients x {result['minutes']} min, {result['model']}, "
        f"{result['turns_per_chat']} turns per chat",
        ["", "value"],
        rows,
    )


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--model", default="fake:tokens-200@10")
    parser.add_argument("--turns", type=int, default=3, help="turns per chat")
    parser.add_argument("--cut-after", type=int, default=20, help="tokens before a cancel or cut")
    parser.add_argument("--sample-seconds", type=float, default=10)
    parser.add_argument("--warmup-seconds", type=float, default=60)
    parser.add_argument("--pool-max-size", type=int, default=20)
    parser.add_argument("--seed", type=int, default=18)
    # Ended runs' event logs stay in memory this long (the server's default 600 s), so RSS grows
    # until the first ones age out: a run shorter than it plus the warm-up sees that growth.
    parser.add_argument("--run-log-retention-seconds", type=int, default=600)
    args = parser.parse_args(argv)
    args.tokens = int(args.model.split("-")[1].split("@")[0])
    return args


if __name__ == "__main__":
    finish("soak", run(arguments()), report)

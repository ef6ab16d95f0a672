"""Switchboard next to its peers, in one run on one machine: the official ``langgraph dev``
(``langgraph-cli[inmem]``) and Aegra (``aegra-api``), each serving an equivalent 50-token fake
model, all driven through the same Agent Protocol calls (create a thread, stream a run in
``messages-tuple`` mode): sequential latency, then throughput at several concurrency levels.

    python -m bench.compare [--peers langgraph,aegra] [--runs 50] [--duration 20]

Peers are installed into their own venvs under ``bench/.peers/`` by ``bench/peers/serve_peer.py``
on first use (PyPI only). A peer that cannot be installed or started here is reported, not
faked.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx

from bench.harness import Deployment, machine, protocol_turn, save, summary, table


@contextlib.contextmanager
def switchboard() -> Iterator[tuple[str, dict[str, str], str]]:
    with Deployment() as deployment:
        headers, agents = deployment.setup({"agent": "fake:tokens-50"})
        yield deployment.urls[0], headers, agents["agent"]["slug"]


@contextlib.contextmanager
def peer(name: str) -> Iterator[tuple[str, dict[str, str], str]]:
    from bench.peers.serve_peer import start_peer

    with start_peer(name) as server:
        yield server.url, {}, "agent"


async def latency(url: str, headers: dict, assistant: str, runs: int) -> dict[str, Any]:
    samples = []
    async with httpx.AsyncClient(base_url=url, timeout=120) as http:
        for i in range(runs + 5):
            sample = await protocol_turn(http, headers, assistant)
            if i >= 5:
                samples.append(sample)
    return {
        "ttft_ms": summary([s[0] for s in samples]),
        "total_ms": summary([s[1] for s in samples]),
    }


async def throughput(url: str, headers: dict, assistant: str, n: int, duration: float) -> dict:
    done: list[float] = []
    errors = 0
    deadline = time.perf_counter() + duration

    async def client() -> None:
        nonlocal errors
        async with httpx.AsyncClient(base_url=url, timeout=120) as http:
            while time.perf_counter() < deadline:
                try:
                    done.append((await protocol_turn(http, headers, assistant))[1])
                except Exception:
                    errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(n)))
    elapsed = time.perf_counter() - started
    return {
        "clients": n,
        "runs_per_second": round(len(done) / elapsed, 1),
        "errors": errors,
        "latency_ms": summary(done),
    }


def measure(target: Any, runs: int, levels: tuple[int, ...], duration: float) -> dict[str, Any]:
    with target as (url, headers, assistant):
        out: dict[str, Any] = {"latency": asyncio.run(latency(url, headers, assistant, runs))}
        out["throughput"] = [
            asyncio.run(throughput(url, headers, assistant, n, duration)) for n in levels
        ]
    return out


def run(peers: tuple[str, ...], runs: int, levels: tuple[int, ...], duration: float) -> dict:
    result: dict[str, Any] = {"workload": "compare", "machine": machine(), "servers": {}}
    targets = {"switchboard": switchboard, **{p: (lambda p=p: peer(p)) for p in peers}}
    for name, target in targets.items():
        try:
            result["servers"][name] = measure(target(), runs, levels, duration)
        except Exception as exc:  # a peer that will not run here is a result, not a crash
            result["servers"][name] = {"unavailable": f"{type(exc).__name__}: {exc}"[:500]}
    ours = result["servers"]["switchboard"]
    for name, server in result["servers"].items():
        if name == "switchboard" or "unavailable" in server:
            continue
        server["ratio_to_switchboard"] = {
            "latency_p50": round(server["latency"]["total_ms"]["p50"]
                                 / ours["latency"]["total_ms"]["p50"], 2),
            "throughput": [
                round(ours_level["runs_per_second"] / max(level["runs_per_second"], 0.01), 2)
                for ours_level, level in zip(ours["throughput"], server["throughput"], strict=True)
            ],
        }  # fmt: skip
    return result


def report(result: dict[str, Any]) -> str:
    rows = []
    for name, server in result["servers"].items():
        if "unavailable" in server:
            rows.append([name, "n/a", "n/a", server["unavailable"][:60]])
            continue
        rps = " / ".join(str(level["runs_per_second"]) for level in server["throughput"])
        rows.append([name, server["latency"]["ttft_ms"]["p50"],
                     server["latency"]["total_ms"]["p50"], rps])  # fmt: skip
    header = ["server", "ttft p50 ms", "total p50 ms", "runs/s per level"]
    return table("create thread + stream 50 tokens (Agent Protocol)", header, rows)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", default="langgraph,aegra")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--levels", default="1,5,20")
    parser.add_argument("--duration", type=float, default=20)
    args = parser.parse_args()
    outcome = run(
        tuple(p for p in args.peers.split(",") if p),
        args.runs,
        tuple(int(x) for x in args.levels.split(",")),
        args.duration,
    )
    print(report(outcome))
    print(json.dumps(outcome))
    save("compare", outcome)

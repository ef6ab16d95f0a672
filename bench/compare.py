"""Switchboard next to its peers, in one run on one machine: the official ``langgraph dev``
(``langgraph-cli[inmem]``) and Aegra (``aegra-api``), each serving an equivalent 50-token fake
model, all driven through the same Agent Protocol calls (create a thread, stream a run in
``messages-tuple`` mode): sequential latency, then throughput at several concurrency levels.

    python -m bench.compare [--peers langgraph,aegra] [--runs 50] [--duration 20]

Each peer runs at its newest release, looked up on the index at every run and installed into
its own venv under ``bench/.peers/`` by ``bench/peers/serve_peer.py`` (PyPI only), with a Python
that release supports. Every result names the versions it measured (aegra-api, langgraph-api,
langgraph-cli, langgraph). A peer that cannot be installed or started here is reported as
unavailable, and one older than its newest release is refused: neither is faked.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import platform
import time
from collections.abc import Iterator
from typing import Any

import httpx

from bench.harness import Deployment, finish, machine, protocol_turn, summary, table

Target = Iterator[tuple[str, dict[str, str], str, dict[str, Any]]]


def _versions(*packages: str) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for package in packages:
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = None
    return found | {"python": platform.python_version()}


@contextlib.contextmanager
def switchboard() -> Target:
    from bench.peers.serve_peer import REPORTED

    with Deployment() as deployment:
        headers, agents = deployment.setup({"agent": "fake:tokens-50"})
        info = {"versions": _versions("switchboard", *REPORTED)}
        yield deployment.urls[0], headers, agents["agent"]["slug"], info


@contextlib.contextmanager
def peer(name: str) -> Target:
    from bench.peers.serve_peer import start_peer

    with start_peer(name) as server:  # raises OutdatedPeer rather than run an old release
        yield server.url, {}, "agent", server.info


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
    with target as (url, headers, assistant, info):
        out: dict[str, Any] = dict(info)
        out["latency"] = asyncio.run(latency(url, headers, assistant, runs))
        out["throughput"] = [
            asyncio.run(throughput(url, headers, assistant, n, duration)) for n in levels
        ]
    return out


def run(peers: tuple[str, ...], runs: int, levels: tuple[int, ...], duration: float) -> dict:
    from bench.peers.serve_peer import OutdatedPeer

    result: dict[str, Any] = {"workload": "compare", "machine": machine(), "levels": list(levels),
                              "runs": runs, "duration_s": duration, "servers": {}}  # fmt: skip
    targets = {"switchboard": switchboard, **{p: (lambda p=p: peer(p)) for p in peers}}
    for name, target in targets.items():
        try:
            result["servers"][name] = measure(target(), runs, levels, duration)
        except OutdatedPeer as exc:  # measured numbers of an old release are not reported
            result["servers"][name] = {"refused": str(exc), **exc.info}
        except Exception as exc:  # a peer that will not run here is a result, not a crash
            result["servers"][name] = {"unavailable": f"{type(exc).__name__}: {exc}"[:500]}
    ours = result["servers"]["switchboard"]
    for name, server in result["servers"].items():
        if name == "switchboard" or "latency" not in server or "latency" not in ours:
            continue
        pairs = list(zip(ours["throughput"], server["throughput"], strict=True))
        server["ratio_to_switchboard"] = {
            # how many times slower (latency) and how many times fewer runs/s than Switchboard
            "latency_p50": round(server["latency"]["total_ms"]["p50"]
                                 / ours["latency"]["total_ms"]["p50"], 2),
            "latency_p50_per_level": [
                round(level["latency_ms"]["p50"] / ours_level["latency_ms"]["p50"], 2)
                for ours_level, level in pairs
            ],
            "throughput": [
                round(ours_level["runs_per_second"] / max(level["runs_per_second"], 0.01), 2)
                for ours_level, level in pairs
            ],
        }  # fmt: skip
    return result


def _named(versions: dict[str, str | None]) -> str:
    return ", ".join(f"{p} {v}" for p, v in versions.items() if v)


def report(result: dict[str, Any]) -> str:
    rows, ratios, notes = [], [], []
    levels = "/".join(str(n) for n in result.get("levels", []))
    for name, server in result["servers"].items():
        if "latency" not in server:
            why = "refused" if "refused" in server else "unavailable"
            rows.append([name, "n/a", "n/a", why, "n/a", _named(server.get("versions", {}))])
            notes.append(f"{name} {why}: {server[why]}")
            continue
        rps = " / ".join(str(level["runs_per_second"]) for level in server["throughput"])
        p50s = " / ".join(str(level["latency_ms"]["p50"]) for level in server["throughput"])
        seq = server["latency"]
        rows.append([name, seq["ttft_ms"]["p50"], seq["total_ms"]["p50"], rps, p50s,
                     _named(server["versions"])])  # fmt: skip
        if ratio := server.get("ratio_to_switchboard"):
            ratios.append([name, f"{ratio['latency_p50']}x",
                           " / ".join(f"{r}x" for r in ratio["latency_p50_per_level"]),
                           " / ".join(f"{r}x" for r in ratio["throughput"])])  # fmt: skip
    header = ["server", "ttft p50 ms", "total p50 ms", f"runs/s at {levels} clients",
              f"p50 ms at {levels}", "versions"]  # fmt: skip
    out = [table("create thread + stream 50 tokens (Agent Protocol)", header, rows)]
    if ratios:
        header = ["peer", "latency p50 (x slower)", f"p50 at {levels} (x slower)",
                  f"runs/s at {levels} (x fewer)"]  # fmt: skip
        out.append(table("against Switchboard", header, ratios))
    return "\n\n".join(out + notes)


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
    finish("compare", outcome, report)

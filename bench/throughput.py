"""Throughput: runs per second (create a chat + stream a 50-token answer) with 1, 5, 20 and 50
concurrent clients, ``--duration`` seconds each, and the server's CPU and RSS meanwhile.
Topologies: one API process; and two API replicas on both cores (``--topology replicas``), or
two queue-only APIs plus two workers over Redis (``--topology workers``).

    python -m bench.throughput [--duration 20] [--levels 1,5,20,50] [--topology single]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from bench.harness import (
    Deployment,
    Sampler,
    clients,
    finish,
    machine,
    native_turn,
    summary,
    table,
)

TOPOLOGIES = {
    "single": {"replicas": 1},
    "replicas": {"replicas": 2, "redis": True},
    "workers": {"replicas": 2, "workers": 2, "execute_runs": False},
}


async def level(urls: list[str], headers: dict, agent_id: str, n: int, duration: float) -> dict:
    done: list[float] = []
    errors = 0
    deadline = time.perf_counter() + duration

    async def client(http: Any) -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            try:
                _, total = await native_turn(http, headers, agent_id)
                done.append(total)
            except Exception:
                errors += 1

    with clients(urls, n) as https:
        started = time.perf_counter()
        await asyncio.gather(*(client(http) for http in https))
        elapsed = time.perf_counter() - started
        for http in https:
            await http.aclose()
    return {
        "clients": n,
        "runs": len(done),
        "runs_per_second": round(len(done) / elapsed, 1),
        "errors": errors,
        "latency_ms": summary(done),
    }


def run(
    duration: float = 20,
    levels: tuple[int, ...] = (1, 5, 20, 50),
    topology: str = "single",
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "workload": "throughput",
        "topology": topology,
        "server_env": env or {},
        "duration_s": duration,
        "machine": machine(),
        "levels": [],
    }
    with Deployment(**TOPOLOGIES[topology], extra_env=env or {}) as deployment:
        headers, agents = deployment.setup({"bench": "fake:tokens-50"})
        agent_id = agents["bench"]["id"]
        asyncio.run(level(deployment.urls, headers, agent_id, 2, 2))  # warm up
        for n in levels:
            groups = {
                "switchboard": deployment.server_processes,
                "postgres": deployment.postgres_processes,
            }
            with Sampler(groups) as sampler:
                outcome = asyncio.run(level(deployment.urls, headers, agent_id, n, duration))
            outcome["resources"] = sampler.report()
            result["levels"].append(outcome)
    return result


def report(result: dict[str, Any]) -> str:
    rows = []
    for lv in result["levels"]:
        res = lv["resources"]
        rows.append([
            lv["clients"], lv["runs_per_second"], lv["errors"], lv["latency_ms"]["p50"],
            lv["latency_ms"]["p90"], res["switchboard"]["cpu_percent_mean"],
            res["switchboard"]["rss_mib_max"], res["postgres"]["cpu_percent_mean"],
        ])  # fmt: skip
    header = ["clients", "runs/s", "errors", "p50 ms", "p90 ms", "server cpu%", "server MiB",
              "pg cpu%"]  # fmt: skip
    env = " ".join(f"{k}={v}" for k, v in result.get("server_env", {}).items())
    title = f"throughput ({result['topology']}{', ' + env if env else ''})"
    return table(f"{title}, {result['duration_s']} s per level", header, rows)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=20)
    parser.add_argument("--levels", default="1,5,20,50")
    parser.add_argument("--topology", choices=sorted(TOPOLOGIES), default="single")
    parser.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE",
        help="set in the servers' environment (repeatable), e.g. PYTHONMALLOC=malloc",
    )  # fmt: skip
    args = parser.parse_args()
    levels = tuple(int(x) for x in args.levels.split(","))
    env = dict(item.split("=", 1) for item in args.env)
    outcome = run(args.duration, levels, args.topology, env)
    finish(f"throughput-{args.topology}", outcome, report)

"""Latency of one whole chat turn: create a chat (or thread) and stream a 50-token answer,
sequential runs, through the native API and the Agent Protocol. p50/p90/p99.

    python -m bench.latency [--runs 50] [--tokens 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

import httpx

from bench.harness import Deployment, native_turn, protocol_turn, save, summary, table


async def measure(url: str, headers: dict, agent: dict, runs: int, warmup: int) -> dict:
    out: dict[str, list] = {"native": [], "protocol": []}
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        for i in range(warmup + runs):
            sample = await native_turn(http, headers, agent["id"])
            if i >= warmup:
                out["native"].append(sample)
        for i in range(warmup + runs):
            sample = await protocol_turn(http, headers, agent["slug"])
            if i >= warmup:
                out["protocol"].append(sample)
    return out


def run(runs: int = 50, tokens: int = 50, warmup: int = 5) -> dict[str, Any]:
    with Deployment() as deployment:
        headers, agents = deployment.setup({"bench": f"fake:tokens-{tokens}"})
        samples = asyncio.run(measure(deployment.urls[0], headers, agents["bench"], runs, warmup))
    return {
        "workload": "latency",
        "tokens": tokens,
        "runs": runs,
        "paths": {
            name: {"ttft_ms": summary([s[0] for s in v]), "total_ms": summary([s[1] for s in v])}
            for name, v in samples.items()
        },
    }


def report(result: dict[str, Any]) -> str:
    rows = [
        [name, p["ttft_ms"]["p50"], p["ttft_ms"]["p90"], p["total_ms"]["p50"],
         p["total_ms"]["p90"], p["total_ms"]["p99"]]
        for name, p in result["paths"].items()
    ]  # fmt: skip
    header = ["path", "ttft p50", "ttft p90", "total p50", "total p90", "total p99"]
    return table(f"latency: create + stream {result['tokens']} tokens, ms", header, rows)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--tokens", type=int, default=50)
    args = parser.parse_args()
    outcome = run(args.runs, args.tokens)
    print(report(outcome))
    print(json.dumps(outcome))
    save("latency", outcome)

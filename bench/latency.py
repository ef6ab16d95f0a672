"""Latency of one whole chat turn: create a chat (or thread) and stream a 50-token answer,
sequential runs, through the native API and the Agent Protocol. p50/p90/p99.

    python -m bench.latency [--runs 50] [--tokens 50]
"""

from __future__ import annotations

import asyncio
from typing import Any

from bench.harness import (
    Deployment,
    finish,
    sequential_turns,
    summary,
    table,
    turn_arguments,
)


def run(runs: int = 50, tokens: int = 50, warmup: int = 5) -> dict[str, Any]:
    with Deployment() as deployment:
        headers, agents = deployment.setup({"bench": f"fake:tokens-{tokens}"})
        url, agent = deployment.urls[0], agents["bench"]
        samples = asyncio.run(
            sequential_turns(url, headers, agent, runs, warmup, timed_create=True)
        )
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
    args = turn_arguments(__doc__)
    finish("latency", run(args.runs, args.tokens), report)

"""Server overhead: one 50-token answer through the native SSE API and through the Agent
Protocol's ``/threads/{id}/runs/stream``, against the same graph run in-process with ``astream``
on the same Postgres checkpointer. Sequential; p50/p90/p99 of time to first token and total.

    python -m bench.overhead [--runs 50] [--tokens 50]
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from langchain_core.messages import HumanMessage

from bench.harness import (
    Deployment,
    finish,
    sequential_turns,
    summary,
    table,
    turn_arguments,
)


async def in_process(database_url: str, agent_id: str, runs: int, warmup: int) -> list:
    from graphs import patches
    from graphs.build import GraphCache
    from graphs.spec import AgentContext, AgentSpec
    from storage import agents as agents_store
    from storage.checkpoints import Checkpointer
    from storage.db import open_pool

    # The same changes to LangGraph the server installs, or the baseline would be slower.
    patches.install()
    pool = await open_pool(database_url, min_size=2, max_size=4)
    try:
        async with pool.connection() as conn:
            row = await agents_store.get(conn, uuid.UUID(agent_id))
        graph = GraphCache(Checkpointer(pool)).get(AgentSpec.from_row(row, "fake:echo"))
        samples = []
        for i in range(warmup + runs):
            thread = str(uuid.uuid4())
            started = time.perf_counter()
            first = None
            async for chunk, _ in graph.astream(
                {"messages": [HumanMessage("hello")]},
                config={"configurable": {"thread_id": thread}},
                context=AgentContext(user_id=str(uuid.uuid4()), chat_id=thread, profile=None),
                stream_mode="messages",
            ):
                if first is None and chunk.content:
                    first = time.perf_counter()
            ended = time.perf_counter()
            if i >= warmup:
                samples.append(((first - started) * 1000, (ended - started) * 1000))
        return samples
    finally:
        await pool.close()


def run(runs: int = 50, tokens: int = 50, warmup: int = 5) -> dict[str, Any]:
    with Deployment() as deployment:
        headers, agents = deployment.setup({"bench": f"fake:tokens-{tokens}"})
        agent = agents["bench"]
        url = deployment.urls[0]
        served = asyncio.run(
            sequential_turns(url, headers, agent, runs, warmup, timed_create=False)
        )
        local = asyncio.run(in_process(deployment.pg.uri(), agent["id"], runs, warmup))
    paths = {"in-process astream": local, **{f"{k} (HTTP)": v for k, v in served.items()}}
    result: dict[str, Any] = {"workload": "overhead", "tokens": tokens, "runs": runs, "paths": {}}
    for name, samples in paths.items():
        result["paths"][name] = {
            "ttft_ms": summary([s[0] for s in samples]),
            "total_ms": summary([s[1] for s in samples]),
        }
    base = result["paths"]["in-process astream"]
    for name in ("native (HTTP)", "protocol (HTTP)"):
        path = result["paths"][name]
        path["overhead_ms"] = {
            "ttft_p50": round(path["ttft_ms"]["p50"] - base["ttft_ms"]["p50"], 2),
            "total_p50": round(path["total_ms"]["p50"] - base["total_ms"]["p50"], 2),
        }
    return result


def report(result: dict[str, Any]) -> str:
    rows = []
    for name, path in result["paths"].items():
        t, a = path["ttft_ms"], path["total_ms"]
        extra = path.get("overhead_ms", {})
        rows.append([name, t["p50"], t["p90"], t["p99"], a["p50"], a["p90"], a["p99"],
                     extra.get("ttft_p50", "-"), extra.get("total_p50", "-")])  # fmt: skip
    header = ["path", "ttft p50", "p90", "p99", "total p50", "p90", "p99", "+ttft", "+total"]
    return table(f"overhead: {result['tokens']}-token answer, ms", header, rows)


if __name__ == "__main__":
    args = turn_arguments(__doc__)
    finish("overhead", run(args.runs, args.tokens), report)

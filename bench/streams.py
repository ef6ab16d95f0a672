"""Idle streams: the server's RSS with 100 and 1,000 open SSE streams that wait for tokens, each
on its own run of a model that pauses 300 s before its first token; then the same numbers of
readers (``GET /runs/{id}/stream``) of just 10 such runs, to see a stream's own cost.

    python -m bench.streams [--counts 100,1000]
"""

from __future__ import annotations

import argparse
import asyncio
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx

from bench.harness import Deployment, finish, rss_mib, table


async def _rss_while_open(
    streams: list[AbstractAsyncContextManager[httpx.Response]], marker: bytes, proc_rss: Any
) -> float:
    """Open every stream, wait until each has sent ``marker``, and measure the server's RSS
    while they are all open."""
    opened, release = asyncio.Event(), asyncio.Event()
    ready = 0

    async def hold(stream: AbstractAsyncContextManager[httpx.Response]) -> None:
        nonlocal ready
        async with stream as response:
            async for chunk in response.aiter_bytes():
                if marker in chunk:
                    ready += 1
                    if ready == len(streams):
                        opened.set()
                    await release.wait()
                    return

    tasks = [asyncio.create_task(hold(stream)) for stream in streams]
    await asyncio.wait_for(opened.wait(), timeout=600)
    await asyncio.sleep(2)
    rss = proc_rss()
    release.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return rss


async def open_streams(url: str, headers: dict, agent_id: str, n: int, proc_rss) -> dict:
    limits = httpx.Limits(max_connections=n + 10, max_keepalive_connections=n + 10)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as http:
        chats = []
        for _ in range(n):
            chat = await http.post("/chats/", json={"agent_id": agent_id}, headers=headers)
            chats.append(chat.json()["id"])
        # The user's message is echoed at once; the answer is minutes away.
        streams = [
            http.stream(
                "POST", f"/chats/{chat_id}/messages", json={"content": "wait"},
                headers={**headers, "Accept": "text/event-stream"},
            )
            for chat_id in chats
        ]  # fmt: skip
        rss = await _rss_while_open(streams, b"event: message", proc_rss)
    return {"streams": n, "server_rss_mib": rss}


async def open_readers(url: str, headers: dict, agent: dict, n: int, runs: int, proc_rss) -> dict:
    """``n`` readers (``GET /runs/{id}/stream``) spread over ``runs`` live runs."""
    limits = httpx.Limits(max_connections=n + runs + 10, max_keepalive_connections=n + runs + 10)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as http:
        run_ids = []
        for _ in range(runs):
            chat = await http.post("/chats/", json={"agent_id": agent["id"]}, headers=headers)
            started = await http.post(
                f"/threads/{chat.json()['id']}/runs",
                json={"assistant_id": agent["slug"], "input": {"messages": [
                    {"role": "user", "content": "wait"}]}},
                headers=headers,
            )  # fmt: skip
            run_ids.append(started.json()["run_id"])
        streams = [
            http.stream("GET", f"/runs/{run_ids[i % runs]}/stream", headers=headers)
            for i in range(n)
        ]
        rss = await _rss_while_open(streams, b"event: metadata", proc_rss)
    return {"readers": n, "runs": runs, "server_rss_mib": rss}


def run(counts: tuple[int, ...] = (100, 1000)) -> dict[str, Any]:
    """Each point on a fresh server: runs left over from an earlier point would be counted."""
    extra = {"SWITCHBOARD_POOL_MAX_SIZE": "20", "SWITCHBOARD_SHUTDOWN_GRACE_SECONDS": "1"}
    points, readers, baselines = [], [], []
    for variant in ("runs", "readers"):
        for n in counts:
            with Deployment(extra_env=extra) as deployment:
                headers, agents = deployment.setup({"idle": "fake:tokens-2@300000"})

                def server_rss(deployment: Deployment = deployment) -> float:
                    return rss_mib(deployment.server_processes())

                baselines.append(server_rss())
                url, agent = deployment.urls[0], agents["idle"]
                if variant == "runs":
                    points.append(
                        asyncio.run(open_streams(url, headers, agent["id"], n, server_rss))
                    )
                else:
                    # The stream alone: many readers of a few live runs.
                    readers.append(
                        asyncio.run(open_readers(url, headers, agent, n, 10, server_rss))
                    )
    return {
        "workload": "streams",
        "baseline_rss_mib": round(sum(baselines) / len(baselines), 1),
        "points": points,
        "readers": readers,
    }


def report(result: dict[str, Any]) -> str:
    rows = [[p["streams"], "1 each", p["server_rss_mib"]] for p in result["points"]]
    rows += [[p["readers"], p["runs"], p["server_rss_mib"]] for p in result.get("readers", [])]
    return table(
        f"idle SSE streams (server RSS with none: {result['baseline_rss_mib']} MiB)",
        ["streams", "live runs", "server RSS MiB"],
        rows,
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="100,1000")
    args = parser.parse_args()
    outcome = run(tuple(int(x) for x in args.counts.split(",")))
    finish("streams", outcome, report)

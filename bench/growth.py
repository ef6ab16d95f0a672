"""Growth: what one more turn costs as a chat gets long. At 10, 100, 250 and 500 turns: the time
of one turn (POST + stream a 50-token answer), of ``GET /chats/{id}/messages`` (the newest 50),
and the checkpoint bytes each turn adds to Postgres.

    python -m bench.growth [--lengths 10,100,250,500] [--samples 9]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

import httpx
import psycopg

from bench.harness import Deployment, finish, native_turn, table

SIZE = """
SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c
WHERE c.relname IN ('checkpoints', 'checkpoint_blobs', 'checkpoint_writes')
"""


def db_bytes(url: str) -> int:
    with psycopg.connect(url) as conn:
        conn.execute("CHECKPOINT")
        row = conn.execute(SIZE).fetchone()
    return int(row[0] or 0)


async def grow(url: str, db: str, headers: dict, agent_id: str, lengths: list[int], samples: int):
    points = []
    async with httpx.AsyncClient(base_url=url, timeout=120) as http:
        chat = (await http.post("/chats/", json={"agent_id": agent_id}, headers=headers)).json()
        turns = 0
        for target in lengths:
            while turns < target - samples:
                await native_turn(http, headers, agent_id, chat["id"])
                turns += 1
            before = await asyncio.to_thread(db_bytes, db)
            turn_ms = []
            for _ in range(samples):
                _, total = await native_turn(http, headers, agent_id, chat["id"])
                turn_ms.append(total)
                turns += 1
            after = await asyncio.to_thread(db_bytes, db)
            read_ms = []
            for _ in range(samples):
                started = time.perf_counter()
                page = await http.get(f"/chats/{chat['id']}/messages", headers=headers)
                page.raise_for_status()
                read_ms.append((time.perf_counter() - started) * 1000)
            points.append({
                "turns": turns,
                "turn_ms_median": round(statistics.median(turn_ms), 2),
                "get_messages_ms_median": round(statistics.median(read_ms), 2),
                "db_bytes_per_turn": (after - before) // samples,
                "db_bytes_total": after,
            })  # fmt: skip
    return points


def run(lengths: tuple[int, ...] = (10, 100, 250, 500), samples: int = 9) -> dict[str, Any]:
    with Deployment() as deployment:
        headers, agents = deployment.setup({"bench": "fake:tokens-50"})
        points = asyncio.run(
            grow(
                deployment.urls[0],
                deployment.pg.uri(),
                headers,
                agents["bench"]["id"],
                list(lengths),
                samples,
            )
        )
    first, last = points[0], points[-1]
    return {
        "workload": "growth",
        "points": points,
        "turn_ratio_last_to_first": round(last["turn_ms_median"] / first["turn_ms_median"], 2),
        "read_ratio_last_to_first": round(
            last["get_messages_ms_median"] / first["get_messages_ms_median"], 2
        ),
    }


def report(result: dict[str, Any]) -> str:
    rows = [
        [p["turns"], p["turn_ms_median"], p["get_messages_ms_median"], p["db_bytes_per_turn"],
         round(p["db_bytes_total"] / 2**20, 1)]
        for p in result["points"]
    ]  # fmt: skip
    header = ["turns", "turn ms", "GET messages ms", "db bytes/turn", "db MiB"]
    return table(
        f"growth (turn ratio {result['turn_ratio_last_to_first']}x, "
        f"read ratio {result['read_ratio_last_to_first']}x)",
        header,
        rows,
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="10,100,250,500")
    parser.add_argument("--samples", type=int, default=9)
    args = parser.parse_args()
    outcome = run(tuple(int(x) for x in args.lengths.split(",")), args.samples)
    finish("growth", outcome, report)

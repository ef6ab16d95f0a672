"""Memory after a load (``bench.soak`` until issue 18, whose soak took the name): does the
server's memory come back? Its RSS before the load, at the end of
``--clients`` clients streaming 50-token turns for ``--duration`` seconds and of a burst of
``--burst`` live runs at once (``--burst-model``, a ``fake:tokens-N@MS`` that streams for
seconds), then after each ``--idle`` interval of doing nothing.

The retention of finished runs' logs is ``--retention`` seconds (60, not the default 600, so the
whole soak takes minutes; the caches forget idle threads after half of it, as by default); idle
points past it are marked. Variants, each on a fresh server: ``before`` (no periodic sweep,
nothing given back, caches that never forget, CPython's pymalloc: the server of 2026-12-02),
``after`` (the defaults: the sweep expires logs and forgets idle cache entries, then
gc.collect + malloc_trim once the process is quiet; Python's objects in malloc's heap), and
``after`` with one thing changed: ``+pymalloc``, ``+keep-caches``, ``+arenas2``
(``MALLOC_ARENA_MAX=2``), ``+jemalloc``.

    python -m bench.recovery [--variants before,after] [--clients 30] [--duration 30]
                         [--burst 200] [--burst-model fake:tokens-60@250] [--idle 10,30,55,75]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import httpx

from bench.harness import Deployment, clients, finish, native_turn, rss_mib, table

AFTER = {"SWITCHBOARD_RUN_LOG_SWEEP_SECONDS": "5", "SWITCHBOARD_RELEASE_MEMORY": "true"}
JEMALLOC = {
    "LD_PRELOAD": "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2",
    "MALLOC_CONF": "background_thread:true,dirty_decay_ms:5000,muzzy_decay_ms:5000",
}
# CPython's own allocator instead of the malloc that ``switchboard serve`` sets.
PYMALLOC = {"PYTHONMALLOC": "pymalloc"}
# Caches that never forget an idle thread (the day before they did).
KEEP_CACHES = {"SWITCHBOARD_CACHE_IDLE_SECONDS": "1000000"}
VARIANTS = {
    # Logs expire only when a run starts or a log is read, nothing is given back, pymalloc.
    "before": {
        "SWITCHBOARD_RUN_LOG_SWEEP_SECONDS": "0", "SWITCHBOARD_RELEASE_MEMORY": "false",
        **PYMALLOC, **KEEP_CACHES,
    },
    # The defaults.
    "after": AFTER,
    "after+pymalloc": {**AFTER, **PYMALLOC},
    "after+keep-caches": {**AFTER, **KEEP_CACHES},
    "after+pymalloc+keep-caches": {**AFTER, **PYMALLOC, **KEEP_CACHES},
    # The allocator, set where the process starts (it cannot be changed from inside).
    "after+arenas2": {**AFTER, "MALLOC_ARENA_MAX": "2"},
    "after+jemalloc": {**AFTER, **JEMALLOC},
}  # fmt: skip


async def load(url: str, headers: dict, agent_id: str, n: int, duration: float) -> dict:
    """``n`` clients, one turn after another each, for ``duration`` seconds."""
    done = errors = 0
    deadline = time.perf_counter() + duration

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal done, errors
        while time.perf_counter() < deadline:
            try:
                await native_turn(http, headers, agent_id)
                done += 1
            except Exception:
                errors += 1

    with clients([url], n) as https:
        await asyncio.gather(*(client(http) for http in https))
        for http in https:
            await http.aclose()
    return {"runs": done, "errors": errors}


async def burst(url: str, headers: dict, agent_id: str, n: int, server_rss: Any) -> dict:
    """``n`` runs live at once, each streamed to its end; RSS once all of them stream."""
    limits = httpx.Limits(max_connections=n + 10, max_keepalive_connections=n + 10)
    streaming, done, errors = 0, 0, 0
    all_live = asyncio.Event()
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as http:
        chats = []
        for _ in range(n):
            chat = await http.post("/chats/", json={"agent_id": agent_id}, headers=headers)
            chats.append(chat.json()["id"])

        async def one(chat_id: str) -> None:
            nonlocal streaming, done, errors
            seen = False
            try:
                async with http.stream(
                    "POST", f"/chats/{chat_id}/messages", json={"content": "soak"},
                    headers={**headers, "Accept": "text/event-stream"},
                ) as response:  # fmt: skip
                    async for chunk in response.aiter_bytes():
                        if not seen and b"event: token" in chunk:
                            seen = True
                            streaming += 1
                            if streaming == n:
                                all_live.set()
                done += 1
            except Exception:
                errors += 1
                all_live.set()

        tasks = [asyncio.create_task(one(chat_id)) for chat_id in chats]
        peak = None
        waiting = asyncio.create_task(all_live.wait())
        await asyncio.wait({waiting, *tasks}, return_when=asyncio.FIRST_COMPLETED)
        if all_live.is_set():
            peak = server_rss()
        await asyncio.gather(*tasks)
        waiting.cancel()
    return {"runs": done, "errors": errors, "rss_all_live_mib": peak}


def soak(variant: str, args: argparse.Namespace) -> dict[str, Any]:
    extra = {
        "SWITCHBOARD_RUN_LOG_RETENTION_SECONDS": str(args.retention),
        "SWITCHBOARD_SHUTDOWN_GRACE_SECONDS": "1",
        "SWITCHBOARD_LOG_LEVEL": args.log_level,
        **VARIANTS[variant],
    }
    with Deployment(extra_env=extra) as deployment:
        headers, agents = deployment.setup({"turns": "fake:tokens-50", "long": args.burst_model})
        url = deployment.urls[0]

        def server_rss() -> float:
            return rss_mib(deployment.server_processes())

        # Warm up (first imports, prepared statements, pools), then the level to come back to.
        asyncio.run(load(url, headers, agents["turns"]["id"], 2, 3))
        time.sleep(args.settle)
        before = server_rss()
        turns = asyncio.run(load(url, headers, agents["turns"]["id"], args.clients, args.duration))
        after_turns = server_rss()
        live = asyncio.run(burst(url, headers, agents["long"]["id"], args.burst, server_rss))
        ended = time.monotonic()
        at_end = server_rss()
        idle = []
        for seconds in args.idle:
            time.sleep(max(0.0, ended + seconds - time.monotonic()))
            rss = server_rss()
            idle.append({"idle_s": seconds, "rss_mib": rss, "vs_before": round(rss / before, 3)})
        # With --log-level INFO, what each release of memory found (graphs/runtime/liveness.py).
        server_log = (deployment.dir / "api-0.log").read_text(errors="replace").splitlines()
        releases = [
            line.partition("released memory ")[2]
            for line in server_log
            if "released memory" in line
        ]
    return {
        "variant": variant,
        "env": VARIANTS[variant],
        "rss_before_mib": before,
        "turns": turns,
        "rss_after_turns_mib": after_turns,
        "burst": live,
        "rss_at_end_mib": at_end,
        "idle": idle,
        "releases": releases,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "workload": "recovery",
        "clients": args.clients,
        "duration_s": args.duration,
        "burst": args.burst,
        "burst_model": args.burst_model,
        "retention_s": args.retention,
        "variants": [soak(variant, args) for variant in args.variants],
    }


def report(result: dict[str, Any]) -> str:
    retention = result["retention_s"]
    idle_points = [p["idle_s"] for p in result["variants"][0]["idle"]] if result["variants"] else []
    header = ["variant", "before", "after turns", "all live", "at end"] + [
        f"idle {s}s{'*' if s > retention else ''}" for s in idle_points
    ]
    rows = []
    for v in result["variants"]:
        rows.append(
            [v["variant"], v["rss_before_mib"], v["rss_after_turns_mib"],
             v["burst"]["rss_all_live_mib"], v["rss_at_end_mib"]]
            + [f"{p['rss_mib']} ({p['vs_before']:.2f}x)" for p in v["idle"]]
        )  # fmt: skip
    runs = ", ".join(
        f"{v['variant']}: {v['turns']['runs']} turns + {v['burst']['runs']} live runs "
        f"({v['turns']['errors'] + v['burst']['errors']} errors)"
        for v in result["variants"]
    )
    return table(
        f"soak: server RSS MiB, {result['clients']} clients x {result['duration_s']} s, then "
        f"{result['burst']} live {result['burst_model']} runs; retention {retention} s "
        f"(* past it)\n{runs}",
        header,
        rows,
    )


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="before,after")
    parser.add_argument("--clients", type=int, default=30)
    parser.add_argument("--duration", type=float, default=30)
    parser.add_argument("--burst", type=int, default=200)
    parser.add_argument("--burst-model", default="fake:tokens-60@250")
    parser.add_argument("--retention", type=int, default=60)
    parser.add_argument("--idle", default="10,30,55,75")
    parser.add_argument("--settle", type=float, default=8)
    parser.add_argument("--log-level", default="WARNING", help="INFO: keep the releases' log")
    args = parser.parse_args(argv)
    args.variants = [v for v in args.variants.split(",") if v]
    args.idle = [int(x) for x in args.idle.split(",") if x]
    unknown = set(args.variants) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants: {sorted(unknown)}")
    return args


if __name__ == "__main__":
    finish("recovery", run(arguments()), report)

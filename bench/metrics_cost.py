"""What the Prometheus metrics cost, in CPU time of this process (a loaded machine stretches
wall-clock latencies tenfold; CPU time per operation much less): one request through
``HttpMetrics`` against the same app without it, and one run's hooks with ``RunMetrics``
against the runtime's default observer.

    python -m bench.metrics_cost [--requests 200000] [--runs 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from types import SimpleNamespace
from typing import Any

from api.metrics import HttpMetrics, Metrics
from graphs.runtime.types import RunObserver


class _Route:
    path = "/chats/{chat_id}"


async def _app(scope: Any, receive: Any, send: Any) -> None:
    scope["route"] = _Route
    headers = [(b"content-type", b"application/json"), (b"content-length", b"2")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"{}"})


async def _send(message: Any) -> None:
    return None


async def _receive() -> Any:
    return {"type": "http.request"}


async def _per_request(app: Any, n: int) -> float:
    scope = {"type": "http", "method": "GET", "path": "/chats/x"}
    started = time.process_time()
    for _ in range(n):
        await app(dict(scope), _receive, _send)
    return (time.process_time() - started) / n * 1e6


def _per_run(observer: RunObserver, n: int) -> float:
    spec = SimpleNamespace(slug="bench", model_name="fake:tokens-50")
    log = [None] * 54  # a 50-token run's events
    started = time.process_time()
    for _ in range(n):
        run_id = uuid.uuid4()
        ctx: Any = SimpleNamespace(
            run={"id": run_id}, run_id=run_id, spec=spec, log=log, status="success",
            usage={"input_tokens": 10, "output_tokens": 50}, started_at=None,
            first_token_at=None,
        )  # fmt: skip
        observer.started(ctx)
        observer.first_token(ctx)
        observer.ended(ctx)
    return (time.process_time() - started) / n * 1e6


def run(requests: int = 200_000, runs: int = 100_000) -> dict[str, Any]:
    metrics = Metrics()
    bare = asyncio.run(_per_request(_app, requests))
    counted = asyncio.run(_per_request(HttpMetrics(_app, metrics), requests))
    plain, observed = _per_run(RunObserver(), runs), _per_run(metrics.runs, runs)
    return {
        "workload": "metrics_cost",
        "request_us": {"without": round(bare, 2), "with": round(counted, 2)},
        "run_us": {"without": round(plain, 2), "with": round(observed, 2)},
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=100_000)
    args = parser.parse_args()
    print(json.dumps(run(args.requests, args.runs)))

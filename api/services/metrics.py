"""A scrape of this process's metrics: the gauges read from Postgres, then the exposition."""

from __future__ import annotations

from api.state import AppState
from storage import metrics as metrics_store


async def exposition(state: AppState) -> bytes:
    """The Prometheus text exposition of ``state``'s process, the queue read from Postgres now
    (one count on the partial index of pending runs)."""
    metrics = state.metrics
    if metrics.runs_queued is not None:
        async with state.pool.connection() as conn:
            metrics.runs_queued.set(await metrics_store.queued_runs(conn))
    return metrics.exposition()

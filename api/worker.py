"""``switchboard worker``: a process that executes queued runs and serves no HTTP.

API processes started with ``SWITCHBOARD_EXECUTE_RUNS=false`` queue every run in Postgres; each
worker claims the next one it may start (``FOR UPDATE SKIP LOCKED``), executes it and writes its
events to Redis, where any API process reads them. Like an API process, it also starts the runs
of due crons (``CronScheduler``). SIGTERM (or Ctrl+C) stops claiming, gives active runs the
grace period, then interrupts the rest.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from api.bootstrap import settle_heap
from api.metrics import Metrics, serve_metrics
from api.services.chat_retention import RetentionSweeper
from api.services.cron_scheduler import CronScheduler
from api.services.thread_sweeper import ThreadSweeper
from api.services.webhook_delivery import WebhookDeliverer
from api.settings import Settings
from api.state import AppState
from api.wire import writer_for
from graphs import custom, patches
from graphs.runtime import open_runtime
from storage.db import open_pool
from tools import mcp as mcp_tools
from tools import plugins

log = logging.getLogger("switchboard.worker")


async def run_worker(settings: Settings) -> None:
    if not settings.database_url or not settings.redis_url:
        raise RuntimeError("a worker needs DATABASE_URL and REDIS_URL (shared with the API)")
    patches.install()
    plugins.load(settings)
    mcp_tools.configure(settings)
    custom.load(settings.graphs_config)
    pool = await open_pool(
        settings.database_url,
        min_size=settings.pool_min_size,
        max_size=settings.pool_max_size,
        prepared=settings.prepared_statements,
    )
    try:
        runs = await open_runtime(settings, pool, writers=writer_for, execute=True)
        # Webhooks of the runs that end here (and of any run: deliveries are shared).
        deliverer = WebhookDeliverer(pool, settings)
        runs.when_run_ends(deliverer.run_ended)
        await deliverer.open()
        stopping, _ = runs.shutdown
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
        # What the services a cron's tick goes through share (no HTTP: the tokens go unused).
        state = AppState.open(settings, pool, runs)
        state.webhooks = deliverer
        metrics = Metrics(queue=False)
        metrics.attach(state)
        exporter = serve_metrics(metrics, settings)
        scheduler = state.crons = CronScheduler(state, poll_seconds=settings.cron_poll_seconds)
        await scheduler.open()
        thread_sweeper = state.thread_sweeper = ThreadSweeper(
            state, interval=settings.thread_sweep_seconds
        )
        await thread_sweeper.open()
        retention = state.retention = RetentionSweeper(
            state,
            days=settings.chat_retention_days,
            interval=settings.chat_retention_sweep_seconds,
        )
        await retention.open()
        log.info(
            "worker %s ready: up to %d runs at once", runs.worker_id, settings.worker_concurrency
        )
        settle_heap()
        work = asyncio.create_task(runs.work(settings.worker_concurrency), name="work")
        stop = asyncio.create_task(stopping.wait(), name="stop")
        await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
        log.info("worker %s stopping", runs.worker_id)
        await scheduler.aclose()
        await thread_sweeper.aclose()
        await retention.aclose()
        await runs.aclose()
        await deliverer.aclose()
        if exporter is not None:
            exporter.shutdown()
            exporter.server_close()
        work.cancel()
        stop.cancel()
        failure, _ = await asyncio.gather(work, stop, return_exceptions=True)
        if isinstance(failure, Exception):
            raise failure
    finally:
        await pool.close()

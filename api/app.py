"""The FastAPI application and its lifespan."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

from api import errors, logs, mcp, openapi, pages
from api import tracing as api_tracing
from api.bootstrap import (
    add_graph_agents,
    bootstrap_admin,
    resolve_database,
    settle_heap,
    upgrade_database,
)
from api.limits import BodyLimit
from api.metrics import HttpMetrics, Metrics
from api.middleware import JsonCORSMiddleware, RelativeRedirects
from api.request_ids import HEADER as REQUEST_ID
from api.request_ids import RequestIds
from api.routes import (
    a2a,
    agents,
    api_keys,
    assistants,
    auth,
    catalog,
    chats,
    conversations,
    crons,
    exports,
    knowledge,
    mcp_servers,
    memories,
    messages,
    meta,
    metrics,
    protocol_runs,
    quotas,
    replays,
    runs,
    sharing,
    store,
    threads,
    users,
    v2_events,
)
from api.routes.meta import server_version
from api.security import ACCESS_LOG_REDACTION
from api.services.chat_retention import RetentionSweeper
from api.services.cron_scheduler import CronScheduler
from api.services.knowledge_indexer import KnowledgeIndexer
from api.services.replay_driver import ReplayDriver
from api.services.store_reindexer import MemoryReindexer
from api.services.store_sweeper import StoreSweeper
from api.services.thread_sweeper import ThreadSweeper
from api.services.webhook_delivery import WebhookDeliverer
from api.settings import DEFAULT_JWT_SECRET, Settings, load_settings
from api.state import AppState
from api.wire import writer_for
from graphs import custom, patches, tracing
from graphs.runtime import open_runtime
from storage.db import EmbeddedPostgres, open_pool
from tools import mcp as mcp_tools
from tools import plugins

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

log = logging.getLogger("switchboard")


async def _open(
    settings: Settings,
    conninfo: str,
    embedded: EmbeddedPostgres | None,
    opened: contextlib.AsyncExitStack,
) -> AppState:
    """The pool, the runtime and the background jobs of an API process, each one's close pushed
    on ``opened`` as soon as it is open. They close in the reverse order: the jobs that start
    runs (crons, replays) and the indexers first; then the runtime, which drains the runs;
    then what must outlive the drain (MCP calls in flight answer with the runs' ends, the
    webhooks of the runs the drain ended go out); the pool last."""
    pool = await open_pool(
        conninfo,
        min_size=settings.pool_min_size,
        max_size=settings.pool_max_size,
        prepared=settings.prepared_statements,
    )
    opened.push_async_callback(pool.close)

    async def start(job: Any) -> Any:
        await job.open()
        opened.push_async_callback(job.aclose)
        return job

    runtime = await open_runtime(settings, pool, writers=writer_for, execute=settings.execute_runs)
    try:
        state = AppState.open(settings, pool, runtime, embedded)
        await bootstrap_admin(settings, pool)
        await add_graph_agents(pool)
        state.webhooks = await start(WebhookDeliverer(pool, settings))
        runtime.when_run_ends(state.webhooks.run_ended)
        state.mcp = await start(mcp.McpServer(state))
    except BaseException:
        await runtime.aclose()
        raise
    # Pushed after the two above, so it closes before them.
    opened.push_async_callback(runtime.aclose)
    state.replays = await start(ReplayDriver(state))
    state.indexer = await start(KnowledgeIndexer(state))
    state.reindexer = await start(MemoryReindexer(state))
    state.sweeper = await start(StoreSweeper(state, interval=settings.store_sweep_seconds))
    state.thread_sweeper = await start(ThreadSweeper(state, interval=settings.thread_sweep_seconds))
    state.retention = await start(
        RetentionSweeper(
            state,
            days=settings.chat_retention_days,
            interval=settings.chat_retention_sweep_seconds,
        )
    )
    state.crons = await start(CronScheduler(state, poll_seconds=settings.cron_poll_seconds))
    return state


def create_app(
    settings: Settings | None = None, *, span_exporter: SpanExporter | None = None
) -> FastAPI:
    """Build the app. Nothing is opened until the lifespan starts.

    Tracing is configured here, for the process (``graphs.tracing``): from the OTEL_*
    variables, or to ``span_exporter`` when one is given (tests).
    """
    settings = settings or load_settings()
    tracing.configure(trace_content=settings.trace_content, exporter=span_exporter)
    process_metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Before anything reads a checkpoint: strict decoding is one of the changes.
        patches.install()
        # Before any graph is built: a plugin's tool must be there for the first run.
        plugins.load(settings)
        mcp_tools.configure(settings)
        # And every graph of langgraph.json: each one's agent is added below, once the pool is.
        custom.load(settings.graphs_config)
        # After uvicorn has configured its loggers: no access log line holds a share token.
        logging.getLogger("uvicorn.access").addFilter(ACCESS_LOG_REDACTION)
        conninfo, embedded = await resolve_database(settings)
        try:
            if settings.run_migrations:
                await upgrade_database(conninfo, settings.embedding_model)
            # Everything opened below closes in the reverse order, whatever fails on the way.
            async with contextlib.AsyncExitStack() as opened:
                app.state.switchboard = await _open(settings, conninfo, embedded, opened)
                process_metrics.attach(app.state.switchboard)
                _log_startup(settings)
                settle_heap()
                yield
        finally:
            # The spans still in the exporter's batch (atexit, where it would, is skipped too).
            tracing.flush()
            # Explicitly: uvicorn's SIGTERM handling skips atexit, where pgserver would stop it.
            if embedded is not None:
                embedded.stop()

    app = FastAPI(
        title="Switchboard",
        version=server_version(),
        description="Agent runtime server: agents, chats, runs and SSE token streaming.",
        lifespan=lifespan,
        # Served by api/pages.py from local assets instead of a CDN.
        docs_url=None,
        redoc_url=None,
        # FastAPI's own request spans (0.165+, on whenever a tracer provider is set) record
        # the path and the query, where a share link's or a stream's token is: the request
        # spans are api/tracing.py's, and FastAPI adds no exporter of its own.
        telemetry={"tracing": False, "metrics": False, "logs": False, "auto_configure": False},
    )
    errors.install(app)
    openapi.install(app, webhooks=settings.webhook_secret is not None)
    # Innermost of ours: CORS (when on) still adds its headers to a 413.
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.max_body_bytes,
        routes={
            ("POST", exports.IMPORT_PATH): settings.import_max_bytes,
            **dict.fromkeys(
                [("POST", messages.SEND_PATH), ("POST", messages.FORK_PATH)]
                + [("POST", path) for path in protocol_runs.RUN_PATHS],
                messages.send_limit(settings),
            ),
            ("POST", knowledge.AGENT_UPLOAD_PATH): settings.knowledge_max_bytes,
            ("POST", knowledge.CHAT_UPLOAD_PATH): settings.knowledge_max_bytes,
        },
    )
    app.add_middleware(RelativeRedirects)
    if settings.cors_origins:
        app.add_middleware(
            JsonCORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=True,
            allow_methods=["*"],
            # ``X-Api-Key``: what the official clients send when given an API key.
            allow_headers=["Authorization", "Content-Type", "Last-Event-ID", "X-Api-Key"],
            # What a browser's script may read: where a run's stream and record are, and the
            # pages of a search (the JS client reads them).
            expose_headers=[
                "Content-Location", "Location", "X-Pagination-Total", "X-Pagination-Next",
                REQUEST_ID,
            ],
        )  # fmt: skip
    # Outermost: every answer counts, ours and the other middleware's (a 413, a CORS refusal).
    app.add_middleware(HttpMetrics, metrics=process_metrics)
    # FastAPI tries routes in the order they were included, so the routes of every chat turn
    # (send a message, open a chat or thread, start a run) come first: matching costs a
    # regular expression and some bookkeeping per route tried.
    for module in (
        messages, conversations, exports, sharing, chats, protocol_runs, threads, runs, replays,
        meta, auth, users, memories, catalog, agents, knowledge, assistants, store, crons, a2a,
        v2_events, mcp_servers, metrics, api_keys, quotas,
    ):  # fmt: skip
        app.include_router(module.router)
    mcp.install(app)
    pages.install(app)
    # Outermost of the middleware: a request's span covers what every other one answers.
    api_tracing.install(app)
    # Outside every middleware, Starlette's error one included (which answers a 500 itself):
    # every response, that one too, carries its request's id.
    build_stack = app.build_middleware_stack
    app.build_middleware_stack = lambda: RequestIds(build_stack())  # type: ignore[method-assign]
    return app


def _log_startup(settings: Settings) -> None:
    log.info(
        "switchboard %s ready: database=%s, default model=%s, event logs=%s, runs %s",
        server_version(),
        # Which database, for an operator; its password is never written (api/logs.py).
        f"external ({logs.masked(settings.database_url)})" if settings.database_url else "embedded",
        settings.effective_default_model,
        "redis" if settings.redis_url else "memory",
        "executed here" if settings.execute_runs else "left to workers",
    )
    if settings.jwt_secret.get_secret_value() == DEFAULT_JWT_SECRET:
        log.warning("using the development JWT secret; set SWITCHBOARD_JWT_SECRET before deploying")

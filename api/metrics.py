"""Prometheus metrics of one process: its HTTP traffic, its runs, its pool and event logs.

Every process (API or worker) keeps its own registry and serves its own exposition; Prometheus
scrapes each process, and sums or takes the maximum across them (docs/metrics.md). Counting is
done where it costs least: a dictionary lookup and an increment per request, a few per run
(none per token beyond the check for the first one); what a gauge can read when scraped (the
pool, the event logs, the queue in Postgres) is read then, not kept up to date.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any
from uuid import UUID

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import (
    CONTENT_TYPE_PLAIN_0_0_4,
    generate_latest,
    start_http_server,
)
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from graphs.events import EventLogs
from graphs.runtime.types import RunContext, RunObserver
from storage.db import PoolType
from storage.rows import RunRow

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from api.settings import Settings
    from api.state import AppState

log = logging.getLogger("switchboard.metrics")

# No ``*_created`` series beside each counter and histogram: Prometheus does not need them, and
# they doubled the exposition (this affects every registry of the process, all of them ours).
disable_created_metrics()
# What Prometheus 2 and 3 both read (the exposition is the classic text format).
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
# A request's method as a label: any other token a client sends is "other", so that made-up
# methods cannot create label values without bound.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# The route label of a request no route matched (a 404 for an unknown path): one value for
# all of them, never the raw path.
UNMATCHED = "unmatched"
# The most (agent, model) pairs a process labels its runs with; runs of any further pair count as
# ("other", "other"). A user picks a run's model in some requests (a replay's ``model_name``):
# made-up names must not create series without bound.
MAX_RUN_LABELS = 500
OTHER_RUN = ("other", "other")
# Runs take from milliseconds (a fake model) to minutes (tools, long answers).
RUN_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
TOKEN_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    """The metric families of one process, in a registry of its own (an app built twice in
    one process, as the tests do, counts each app's traffic apart)."""

    def __init__(self, *, queue: bool = True) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.http_requests = Counter(
            "switchboard_http_requests", "HTTP requests answered, by route template and status",
            ["method", "route", "status"], registry=r,
        )  # fmt: skip
        self.http_duration = Histogram(
            "switchboard_http_request_duration_seconds",
            "Time to answer a request (to its headers, for an event stream)",
            ["method", "route"], registry=r,
        )  # fmt: skip
        self.open_streams = Gauge(
            "switchboard_open_streams", "Open event streams (SSE responses) and WebSockets",
            ["kind"], registry=r,
        )  # fmt: skip
        self.runs_started = Counter(
            "switchboard_runs_started", "Runs that began executing in this process",
            ["agent", "model"], registry=r,
        )  # fmt: skip
        self.runs_ended = Counter(
            "switchboard_runs_ended", "Runs of this process that ended, by final status",
            ["agent", "model", "status"], registry=r,
        )  # fmt: skip
        self.run_duration = Histogram(
            "switchboard_run_duration_seconds", "From a run's start (after any queue) to its end",
            ["agent", "model"], buckets=RUN_BUCKETS, registry=r,
        )  # fmt: skip
        self.first_token = Histogram(
            "switchboard_time_to_first_token_seconds", "From a run's start to its first token",
            ["agent", "model"], buckets=TOKEN_BUCKETS, registry=r,
        )  # fmt: skip
        self.runs_active = Gauge(
            "switchboard_runs_active", "Runs executing in this process now", registry=r
        )
        self.tokens = Counter(
            "switchboard_tokens", "Tokens the models of ended runs reported, in and out",
            ["model", "direction"], registry=r,
        )  # fmt: skip
        self.worker_claims = Counter(
            "switchboard_worker_claims", "Queued runs this process's worker loop claimed",
            registry=r,
        )  # fmt: skip
        self.run_events = Counter(
            "switchboard_run_events", "Events written to the logs of runs that ended here",
            registry=r,
        )  # fmt: skip
        # A worker serves its metrics from a thread that cannot query Postgres: only API
        # processes, which read it at each scrape, export the queue.
        self.runs_queued: Gauge | None = None
        if queue:
            self.runs_queued = Gauge(
                "switchboard_runs_queued", "Runs waiting in the queue in Postgres (all processes)",
                registry=r,
            )  # fmt: skip
        self.sources = _Sources()
        r.register(self.sources)
        ProcessCollector(registry=r)
        self.runs = RunMetrics(self)

    def attach(self, state: AppState) -> None:
        """Count the runs of ``state``'s runtime and read its pool and event logs at scrapes."""
        state.metrics = self
        state.runs.executor.observer = self.runs
        self.sources.pool = state.pool
        self.sources.logs = state.runs.logs

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def serve_metrics(metrics: Metrics, settings: Settings) -> WSGIServer | None:
    """A worker's metrics on ``SWITCHBOARD_WORKER_METRICS_PORT`` (from a thread of
    prometheus_client's), when set; the server, to shut down, or ``None``."""
    if settings.worker_metrics_port is None:
        return None
    host = settings.worker_metrics_host
    server, _ = start_http_server(settings.worker_metrics_port, host, metrics.registry)
    log.info("worker metrics at http://%s:%d/metrics", host, server.server_port)
    return server


class RunMetrics(RunObserver):
    """The runtime's steps of each run, counted (on the run's task: a few increments)."""

    def __init__(self, metrics: Metrics) -> None:
        self.m = metrics
        # The runs counted as started and not ended yet: a run started before the metrics
        # were attached (a cron's, as the server starts) is not counted as ending either.
        self.active: set[UUID] = set()
        metrics.runs_active.set_function(lambda: len(self.active))
        # Each (agent, model) pair seen, up to MAX_RUN_LABELS.
        self._labels: dict[tuple[str, str], tuple[str, str]] = {}

    def labels(self, ctx: RunContext) -> tuple[str, str]:
        """The run's ``agent`` and ``model`` labels (``OTHER_RUN`` past ``MAX_RUN_LABELS``)."""
        key = (ctx.spec.slug, ctx.spec.model_name)
        labels = self._labels.get(key)
        if labels is None:
            if len(self._labels) >= MAX_RUN_LABELS:
                return OTHER_RUN
            labels = self._labels[key] = key
        return labels

    def started(self, ctx: RunContext) -> None:
        super().started(ctx)
        self.active.add(ctx.run_id)
        self.m.runs_started.labels(*self.labels(ctx)).inc()

    def first_token(self, ctx: RunContext) -> None:
        super().first_token(ctx)
        if ctx.started_at is not None and ctx.first_token_at is not None:
            seconds = ctx.first_token_at - ctx.started_at
            self.m.first_token.labels(*self.labels(ctx)).observe(seconds)

    def ended(self, ctx: RunContext) -> None:
        # Called where the runtime records a run's end and frees its chat: a failure to count
        # must not get in the way of either.
        try:
            self._count_end(ctx)
        except Exception:
            log.exception("could not count the end of run %s", ctx.run_id)

    def _count_end(self, ctx: RunContext) -> None:
        agent, model = self.labels(ctx)
        self.m.runs_ended.labels(agent, model, ctx.status).inc()
        # A run stopped while it waited in the queue never started: it was never active.
        if ctx.started_at is not None and ctx.run_id in self.active:
            self.active.discard(ctx.run_id)
            self.m.run_duration.labels(agent, model).observe(time.monotonic() - ctx.started_at)
        usage = ctx.usage
        if usage.get("input_tokens"):
            self.m.tokens.labels(model, "in").inc(usage["input_tokens"])
        if usage.get("output_tokens"):
            self.m.tokens.labels(model, "out").inc(usage["output_tokens"])
        self.m.run_events.inc(len(ctx.log))

    def claimed(self, run: RunRow) -> None:
        self.m.worker_claims.inc()


class _Sources(Collector):
    """What a scrape reads where it lives: the pool's statistics, the event logs' sizes."""

    def __init__(self) -> None:
        self.pool: PoolType | None = None
        self.logs: EventLogs | None = None

    def collect(self) -> Iterable[Metric]:
        if self.pool is not None:
            stats = self.pool.get_stats()
            size, idle = stats.get("pool_size", 0), stats.get("pool_available", 0)
            yield _gauge("switchboard_db_pool_size", "Connections the pool holds", size)
            yield _gauge("switchboard_db_pool_max", "The most connections the pool may hold",
                         stats.get("pool_max", 0))  # fmt: skip
            yield _gauge("switchboard_db_pool_in_use", "Connections lent out now", size - idle)
            yield _gauge(
                "switchboard_db_pool_waiting", "Requests waiting for a connection now",
                stats.get("requests_waiting", 0),
            )  # fmt: skip
        if self.logs is not None:
            sizes = self.logs.sizes()
            logs = GaugeMetricFamily(
                "switchboard_event_logs", "Run event logs held in memory", labels=["state"]
            )
            logs.add_metric(["live"], sizes.live)
            logs.add_metric(["closed"], sizes.closed)
            yield logs
            yield _gauge("switchboard_event_log_events", "Events the logs in memory hold",
                         sizes.events)  # fmt: skip
            yield _gauge(
                "switchboard_event_log_bytes",
                "Bytes the logs' events take (compressed, for finished runs' packed logs)",
                sizes.size,
            )  # fmt: skip


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


class HttpMetrics:
    """Counts every HTTP request by method, route template and status, with its latency, and
    the event streams and WebSockets open now. Outermost of our middleware, so a 413 or a
    refused CORS preflight counts too."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        # The counter and histogram of each label set, so a request takes no lock to find them.
        self._requests: dict[tuple[str, str, int], Any] = {}
        self._durations: dict[tuple[str, str], Any] = {}
        self._sse = metrics.open_streams.labels("sse")
        self._websockets = metrics.open_streams.labels("websocket")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            self._websockets.inc()
            try:
                await self.app(scope, receive, send)
            finally:
                self._websockets.dec()
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        # Unanswered when the app raises: the server's error handler, outside, answers 500.
        status = 500
        streaming = False

        async def watch(message: Message) -> None:
            nonlocal status, streaming
            if message["type"] == "http.response.start":
                status = message["status"]
                streaming = _is_event_stream(message.get("headers", ()))
                if streaming:
                    self._sse.inc()
                    self._observe(scope, started)
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            if streaming:
                self._sse.dec()
            else:
                self._observe(scope, started)
            key = (_method(scope), _route(scope), status)
            counter = self._requests.get(key)
            if counter is None:
                counter = self._requests[key] = self.metrics.http_requests.labels(
                    key[0], key[1], str(status)
                )
            counter.inc()

    def _observe(self, scope: Scope, started: float) -> None:
        key = (_method(scope), _route(scope))
        histogram = self._durations.get(key)
        if histogram is None:
            histogram = self._durations[key] = self.metrics.http_duration.labels(*key)
        histogram.observe(time.perf_counter() - started)


def _method(scope: Scope) -> str:
    method: str = scope["method"]
    return method if method in METHODS else "other"


def _route(scope: Scope) -> str:
    """The path template of the route that took the request (``/chats/{chat_id}``), for a
    mounted app its mount path; never the raw path, whose ids would make a series each."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else UNMATCHED


def _is_event_stream(headers: Iterator[tuple[bytes, bytes]] | Any) -> bool:
    for name, value in headers:
        if name.lower() == b"content-type":
            return bool(value.startswith(b"text/event-stream"))
    return False

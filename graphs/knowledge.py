"""Knowledge search: the chunks of an agent's documents (and of one chat's files, for its owner)
nearest a question, for the search route and the ``knowledge_search`` tool alike.

Retrieval is the nearest chunks by cosine distance of the current embedding model's vectors;
with ``hybrid`` (``SWITCHBOARD_KNOWLEDGE_HYBRID``), also the best full-text matches (Postgres
``websearch_to_tsquery('simple', …)``, the question's words OR-ed), fused by reciprocal rank.
Hybrid is off by default: on the test corpus (27 documents, 54 questions) the right document was
in the top 3 for 98.1% of the questions by vectors alone and 87.0% fused (``simple`` full text
has no stop words and Postgres ranks without inverse document frequency, so common words
outvote the rare ones). Only chunks of the model in use are ever
compared, so during a re-index after a model change a document is missing until its new
chunks are written; the answer says so (``reindexing``).

The scope (agent, chat, user) is never taken from what a model or a client passes as a search
argument: the caller states it, and storage puts it in the statement's ``WHERE``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from graphs.embeddings import DEFAULT_EMBEDDING_MODEL, Embedder, get_embedder
from storage import knowledge as knowledge_store
from storage.db import PoolType
from storage.rows import KnowledgeHitRow

# Candidates each retriever hands to the fusion, and the reciprocal rank fusion constant.
CANDIDATES = 40
RRF_K = 60
_WORDS = re.compile(r"\w+")


def embedding_model_of(settings: Any) -> str:
    """The embedding model the settings name (``SWITCHBOARD_EMBEDDING_MODEL``)."""
    return str(settings.embedding_model or DEFAULT_EMBEDDING_MODEL)


def load_embedder(name: str) -> Embedder:
    """The embedder named ``name`` (one instance per name)."""
    return get_embedder(name)


def text_query(query: str) -> str:
    """The question as a ``websearch_to_tsquery`` of its words OR-ed: a chunk matching some of
    them ranks, one matching all of them ranks first."""
    return " or ".join(_WORDS.findall(query.lower())[:64])


@dataclass
class SearchResult:
    items: list[dict[str, Any]] = field(default_factory=list)
    # Documents in scope not searchable yet (pending or being indexed).
    indexing: bool = False
    # Documents in scope indexed with another embedding model, being indexed again.
    reindexing: bool = False


def fuse(rankings: list[list[KnowledgeHitRow]], k: int) -> list[dict[str, Any]]:
    """Reciprocal rank fusion: each chunk scores the sum of ``1 / (RRF_K + rank)`` over the
    rankings it appears in (rank from 1); the best ``k``, with that score."""
    scores: dict[UUID, float] = {}
    hits: dict[UUID, KnowledgeHitRow] = {}
    for ranking in rankings:
        for rank, hit in enumerate(ranking, start=1):
            scores[hit["chunk_id"]] = scores.get(hit["chunk_id"], 0.0) + 1 / (RRF_K + rank)
            hits.setdefault(hit["chunk_id"], hit)
    best = sorted(scores, key=lambda chunk: (-scores[chunk], str(chunk)))[:k]
    return [_item(hits[chunk], scores[chunk]) for chunk in best]


def _item(hit: KnowledgeHitRow, score: float) -> dict[str, Any]:
    return {
        "document_id": hit["document_id"],
        "title": hit["title"],
        "chunk_id": hit["chunk_id"],
        "text": hit["text"],
        "score": round(float(score), 6),
    }


class Knowledge:
    """Search over the knowledge store with the configured embedding model."""

    def __init__(self, pool: PoolType, model: str, *, hybrid: bool = False) -> None:
        self.pool = pool
        self.model = model
        self.hybrid = hybrid

    def embedder(self) -> Embedder:
        return load_embedder(self.model)

    async def search(
        self,
        *,
        query: str,
        k: int,
        agent_id: UUID,
        chat_id: UUID | None = None,
        user_id: UUID | None = None,
    ) -> SearchResult:
        """The ``k`` chunks nearest ``query`` among the agent's documents and, when ``chat_id``
        is the user's chat, that chat's files."""
        embedder = self.embedder()
        vector = await embedder.aembed_query(query)
        async with self.pool.connection() as conn:
            indexing, reindexing = await knowledge_store.scope_status(
                conn, model=embedder.name, agent_id=agent_id, chat_id=chat_id, user_id=user_id
            )
            nearest = await knowledge_store.search_vector(
                conn, model=embedder.name, dims=embedder.dims, vector=vector,
                limit=CANDIDATES if self.hybrid else k, agent_id=agent_id, chat_id=chat_id,
                user_id=user_id,
            )  # fmt: skip
            if not self.hybrid:
                items = [_item(hit, hit["score"]) for hit in nearest]
                return SearchResult(items, indexing, reindexing)
            words = text_query(query)
            matching: list[KnowledgeHitRow] = []
            if words:
                matching = await knowledge_store.search_text(
                    conn, model=embedder.name, query=words, limit=CANDIDATES,
                    agent_id=agent_id, chat_id=chat_id, user_id=user_id,
                )  # fmt: skip
        return SearchResult(fuse([nearest, matching], k), indexing, reindexing)

"""Indexing knowledge documents in the background: split, embed, store the chunks.

One task per API process claims documents one at a time (``FOR UPDATE SKIP LOCKED``, so
processes share the work): a ``pending`` one, one whose indexer went silent for
``stale_seconds`` (its process died), or one indexed with another embedding model than the one
configured (indexed again; its old chunks are replaced when the new ones are written). It
heartbeats the document after every batch of embeddings. An upload wakes it; it also looks every
``poll_seconds``. At shutdown it lets go of the document it was indexing, which the next process
(or another one) takes at once. A document that cannot be embedded is marked ``failed`` with a
safe message (the exception's type; its text stays in the log).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Final

from langchain_text_splitters import RecursiveCharacterTextSplitter

from api.services.background import BackgroundJob
from storage import knowledge as knowledge_store
from storage import pgvector
from storage.rows import ClaimedDocumentRow

if TYPE_CHECKING:
    from api.state import AppState

log = logging.getLogger(__name__)

CHUNK_SIZE: Final = 800
CHUNK_OVERLAP: Final = 100
EMBED_BATCH: Final = 64
POLL_SECONDS: Final = 3.0


def split(text: str) -> list[str]:
    """The document's chunks: about ``CHUNK_SIZE`` characters, overlapping by
    ``CHUNK_OVERLAP``, cut at paragraphs, then lines, then words where it can."""
    splitter = RecursiveCharacterTextSplitter(chunk_size=CHUNK_SIZE, chunk_overlap=CHUNK_OVERLAP)
    return [chunk for chunk in splitter.split_text(text) if chunk.strip()]


class KnowledgeIndexer(BackgroundJob):
    name = "knowledge-indexer"

    def __init__(self, state: AppState, *, poll_seconds: float = POLL_SECONDS) -> None:
        super().__init__(poll_seconds=poll_seconds)
        self.state = state
        self._indexed_models: set[str] = set()
        # Whether the indexer makes an HNSW index per model; decided at ``open``.
        self.hnsw = False

    @property
    def worker_id(self) -> str:
        return self.state.runs.worker_id

    @property
    def model(self) -> str:
        """The embedding model in use, as its embedder names itself (the name its vectors are
        recorded under)."""
        return str(self.state.runs.knowledge.embedder().name)

    async def open(self) -> None:
        self.hnsw = await self._decide_hnsw()
        await super().open()

    async def aclose(self) -> None:
        await super().aclose()
        try:
            async with self.state.pool.connection() as conn:
                released = await knowledge_store.release(conn, self.worker_id)
            if released:
                log.info("let go of %d document(s) being indexed", released)
        except Exception:
            log.warning("could not let go of the documents being indexed; taken over when stale")

    async def _decide_hnsw(self) -> bool:
        chosen = self.state.settings.knowledge_hnsw
        if isinstance(chosen, bool):
            return chosen
        async with self.state.pool.connection() as conn:
            usable = await pgvector.hnsw_usable(conn)
        if not usable:
            log.warning(
                "knowledge search is exact (no HNSW index): the embedded Postgres's pgvector "
                "needs AVX-512, which this CPU lacks; `switchboard db build-pgvector` builds "
                "one for it"
            )
        return usable

    async def step(self) -> bool:
        return await self.index_next()

    async def index_next(self) -> bool:
        """Claim and index one document; whether there was one."""
        settings = self.state.settings
        async with self.state.pool.connection() as conn:
            document = await knowledge_store.claim(
                conn, worker_id=self.worker_id, model=self.model,
                stale_seconds=settings.stale_seconds,
            )  # fmt: skip
        if document is None:
            return False
        try:
            await self._index(document)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("indexing document %s failed", document["id"], exc_info=exc)
            async with self.state.pool.connection() as conn:
                await knowledge_store.mark_failed(
                    conn, document["id"], self.worker_id,
                    f"Indexing failed ({type(exc).__name__}); delete it and upload it again"
                )  # fmt: skip
        return True

    async def _index(self, document: ClaimedDocumentRow) -> None:
        embedder: Any = self.state.runs.knowledge.embedder()
        chunks = await asyncio.to_thread(split, document["text"])
        vectors: list[list[float]] = []
        for start in range(0, len(chunks), EMBED_BATCH):
            vectors += await embedder.aembed_documents(chunks[start : start + EMBED_BATCH])
            async with self.state.pool.connection() as conn:
                if not await knowledge_store.heartbeat(conn, document["id"], self.worker_id):
                    return  # deleted meanwhile, or taken over
        async with self.state.pool.connection() as conn:
            if self.hnsw and embedder.name not in self._indexed_models:
                await knowledge_store.ensure_vector_index(conn, embedder.name, embedder.dims)
                self._indexed_models.add(embedder.name)
            stored = await knowledge_store.store_chunks(
                conn, document, worker_id=self.worker_id, model=embedder.name,
                chunks=list(zip(chunks, vectors, strict=True)),
            )  # fmt: skip
        if stored:
            log.info("indexed document %s: %d chunks", document["id"], len(chunks))

"""Making the memory store's vectors again after a change of embedding model, in the background.

At start, ``storage.store.setup`` found the store's vectors made by another model: it queued
them in ``store_reindex`` and deleted them. One task per API process takes up to ``BATCH``
queued vectors at a time (``FOR UPDATE SKIP LOCKED``, so processes share the work), embeds the
text each was made from with the model in use, stores the new vectors as LangGraph does, and
takes them off the queue, all in one transaction: a process that stops in the middle (shutdown
or crash) leaves its batch queued, for the next process or the next start. An item deleted
meanwhile, or whose text is gone, is taken off without a vector. It looks every
``poll_seconds`` while the queue is empty.

Until an item's vector is made, semantic searches do not find it, and the memories route and
the ``recall`` tool say that memories are being re-indexed (``Store.areindexing``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final

from api.services.background import BackgroundJob
from storage import store as store_storage

if TYPE_CHECKING:
    from api.state import AppState

log = logging.getLogger(__name__)

BATCH: Final = 32
POLL_SECONDS: Final = 5.0


class MemoryReindexer(BackgroundJob):
    name = "memory-reindexer"

    def __init__(self, state: AppState, *, poll_seconds: float = POLL_SECONDS) -> None:
        super().__init__(poll_seconds=poll_seconds)
        self.state = state
        # Read here, not as a default argument: a test sets a smaller one before start.
        self.batch = BATCH
        self._made = 0

    async def aclose(self) -> None:
        """Stop; a batch in progress is rolled back and stays queued."""
        await super().aclose()

    async def step(self) -> bool:
        taken = await self.reindex_next()
        self._made += taken
        return taken > 0

    def finished_round(self, steps: int) -> None:
        log.info("re-indexed %d memory store vectors; none is queued now", self._made)
        self._made = 0

    async def reindex_next(self) -> int:
        """Make one batch of queued vectors again; how many queued vectors it took off."""
        store = self.state.store
        embedder = store.embedder
        assert embedder is not None, "the store was opened without its embedder"
        async with self.state.pool.connection() as conn, conn.transaction():
            rows = await store_storage.claim_reindex(
                conn, model=store.model, dims=store.dims, limit=self.batch
            )
            if not rows:
                return 0
            # Deleted meanwhile, or the text is gone: taken off the queue without a vector.
            wanted = [
                (row, text)
                for row in rows
                if (text := store_storage.field_text(row["value"], row["field_name"])) is not None
            ]
            vectors: list[list[float]] = []
            if wanted:
                vectors = await embedder.aembed_documents([text for _, text in wanted])
            stored = await store_storage.insert_vectors(
                conn,
                [
                    (row["prefix"], row["key"], row["field_name"], vector)
                    for (row, _), vector in zip(wanted, vectors, strict=True)
                ],
            )
            await store_storage.finish_reindex(conn, rows)
        log.debug("re-indexed %d memory store vectors (%d skipped)", stored, len(rows) - stored)
        return len(rows)

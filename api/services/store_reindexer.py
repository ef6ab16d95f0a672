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

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Final

from storage import store as store_storage

if TYPE_CHECKING:
    from api.state import AppState

log = logging.getLogger(__name__)

BATCH: Final = 32
POLL_SECONDS: Final = 5.0


class MemoryReindexer:
    def __init__(self, state: AppState, *, poll_seconds: float = POLL_SECONDS) -> None:
        self.state = state
        self.poll_seconds = poll_seconds
        # Read here, not as a default argument: a test sets a smaller one before start.
        self.batch = BATCH
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="memory-reindexer")

    async def aclose(self) -> None:
        """Stop; a batch in progress is rolled back and stays queued."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def wake(self) -> None:
        self._wake.set()

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                made = 0
                while taken := await self.reindex_next():
                    made += taken
                if made:
                    log.info("re-indexed %d memory store vectors; none is queued now", made)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("re-indexing memories failed; trying again")
            # asyncio.timeout, not wait_for: Python 3.11's wait_for returns the result when the
            # event is set as the task is cancelled, swallowing the cancellation.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_seconds):
                    await self._wake.wait()

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

"""The LangGraph Postgres checkpointer, plus what its Postgres saver leaves unimplemented.

LangGraph owns the ``checkpoint*`` tables; the only SQL here is the deletion of one run's
checkpoints (``adelete_for_runs``, part of the saver interface) that the multitask strategy
``rollback`` needs. It relies on each run stamping ``run_id`` into its checkpoints' metadata.
"""

from __future__ import annotations

from collections.abc import Sequence

from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

DELETE_WRITES_FOR_RUNS = """
DELETE FROM checkpoint_writes w USING checkpoints c
WHERE c.metadata->>'run_id' = ANY(%s)
  AND w.thread_id = c.thread_id AND w.checkpoint_ns = c.checkpoint_ns
  AND w.checkpoint_id = c.checkpoint_id
"""
DELETE_CHECKPOINTS_FOR_RUNS = "DELETE FROM checkpoints WHERE metadata->>'run_id' = ANY(%s)"


class Checkpointer(AsyncPostgresSaver):
    """``AsyncPostgresSaver`` that can also forget everything given runs wrote.

    Channel blobs are left in place: they are keyed by version and only read through the
    checkpoints that remain, which never reference the removed versions.
    """

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        ids = [str(r) for r in run_ids]
        async with self._cursor(pipeline=True) as cur:
            await cur.execute(DELETE_WRITES_FOR_RUNS, (ids,))
            await cur.execute(DELETE_CHECKPOINTS_FOR_RUNS, (ids,))

"""What a metrics scrape reads from Postgres: cheap counts the runs' indexes answer."""

from __future__ import annotations

from storage.db import Conn

# Served by the partial index on pending runs (runs_pending_idx): as cheap as the queue is short.
COUNT_QUEUED = "SELECT count(*) AS queued FROM runs WHERE status = 'pending'"


async def queued_runs(conn: Conn) -> int:
    """Runs waiting in the queue, of every process (the queue is shared)."""
    cur = await conn.execute(COUNT_QUEUED)
    row = await cur.fetchone()
    assert row is not None
    return int(row["queued"])

"""Webhook deliveries: one per run that named a webhook, made when the run ends.

The row is made by a trigger on ``runs`` (``storage/migrations/0016_webhooks.sql``), in the
transaction that records the run's final status, whichever statement that is; so a run that
ends always has its delivery, and one that is not over has none. Processes claim due deliveries
with ``FOR UPDATE SKIP LOCKED`` and record each attempt.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast
from uuid import UUID

from psycopg.types.json import Jsonb

from storage.db import Conn
from storage.rows import ClaimedDeliveryRow, DeliveryStateRow, RunRow

# Up to ``limit`` pending deliveries that are due, oldest first, each leased for ``lease``
# seconds (its next attempt moved that far): another process skips the locked rows now and
# finds them not due afterwards, unless this one died before recording the attempt. The run is
# returned as the row it was when it ended, typed as ``runs`` is.
CLAIM_DUE = """
WITH claimed AS (
    UPDATE webhook_deliveries SET next_attempt_at = now() + make_interval(secs => %(lease)s)
    WHERE run_id IN (
        SELECT run_id FROM webhook_deliveries
        WHERE status = 'pending' AND next_attempt_at <= now()
        ORDER BY next_attempt_at
        LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
    )
    RETURNING url, jsonb_array_length(attempts) AS attempted, run
)
SELECT claimed.url AS delivery_url, claimed.attempted AS delivery_attempted, r.*
FROM claimed, jsonb_populate_record(NULL::runs, claimed.run) r
"""
# One attempt's outcome. Settled (``delivered`` or ``failed``), the run's copy is dropped.
RECORD_ATTEMPT = """
UPDATE webhook_deliveries
SET attempts = attempts || jsonb_build_array(%(attempt)s::jsonb),
    status = %(status)s,
    run = CASE WHEN %(status)s::text = 'pending' THEN run END,
    next_attempt_at = now() + make_interval(secs => %(retry_in)s),
    updated_at = now()
WHERE run_id = %(run_id)s AND status = 'pending'
"""
# Then, in the same transaction: settled, and its run deleted meanwhile (a stateless run's, or
# one whose chat was deleted), the delivery goes too; nothing is kept about a run nobody can
# read any more. (Deleted later, the run takes its settled delivery with it: the trigger
# ``runs_forget_webhook``.) A statement of its own, so it sees a deletion the update waited for.
DELETE_SETTLED = """
DELETE FROM webhook_deliveries WHERE run_id = %s AND status <> 'pending' AND run_deleted
"""
# Deliveries this process claimed and did not finish (it is stopping): due again at once.
RELEASE = """
UPDATE webhook_deliveries SET next_attempt_at = now()
WHERE run_id = ANY(%s) AND status = 'pending'
"""
SELECT_STATES = """
SELECT run_id, status, attempts FROM webhook_deliveries WHERE run_id = ANY(%s)
"""


async def claim_due(conn: Conn, *, limit: int, lease_seconds: float) -> list[ClaimedDeliveryRow]:
    """Claim up to ``limit`` due deliveries for ``lease_seconds``, each with its run as it
    ended and how many attempts were made before."""
    cur = await conn.execute(CLAIM_DUE, {"limit": limit, "lease": lease_seconds})
    claimed = []
    for row in await cur.fetchall():
        url, attempted = row.pop("delivery_url"), row.pop("delivery_attempted")
        claimed.append(ClaimedDeliveryRow(url=url, attempted=attempted, run=cast(RunRow, row)))
    return claimed


async def record_attempt(
    conn: Conn, run_id: UUID, *, attempt: dict[str, Any], status: str, retry_in: float
) -> None:
    """Append ``attempt`` and set the delivery's ``status``; a ``pending`` one is due again in
    ``retry_in`` seconds, a settled one whose run is gone is deleted."""
    params = {"run_id": run_id, "attempt": Jsonb(attempt), "status": status, "retry_in": retry_in}
    async with conn.pipeline(), conn.transaction():
        await conn.execute(RECORD_ATTEMPT, params)
        await conn.execute(DELETE_SETTLED, (run_id,))


async def release(conn: Conn, run_ids: Sequence[UUID]) -> None:
    if run_ids:
        await conn.execute(RELEASE, (list(run_ids),))


async def states(conn: Conn, run_ids: Sequence[UUID]) -> dict[UUID, DeliveryStateRow]:
    """The deliveries of those runs that have one (runs that ended), by run id."""
    if not run_ids:
        return {}
    cur = await conn.execute(SELECT_STATES, (list(run_ids),))
    rows = cast(list[DeliveryStateRow], await cur.fetchall())
    return {row["run_id"]: row for row in rows}

"""Crons: a user's schedules, each tick of which starts a run (the Agent Protocol's crons).

Every read and write is scoped by ``user_id``: another user's cron does not exist for the
caller. The schedulers of all processes share the table: ``claim_due`` locks the due crons it
takes (``FOR UPDATE SKIP LOCKED``, so two processes never take the same one) and the caller
moves each one's ``next_run_date`` on (``advance``) in the same transaction, before it starts
any run: a tick is claimed once, whichever process looks first.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast
from uuid import UUID

from psycopg.types.json import Jsonb

from storage.db import Conn
from storage.rows import CronRow, DueCronRow

CRON_COLUMNS = """
    id, user_id, agent_id, chat_id, schedule, timezone, end_time, enabled, on_run_completed,
    payload, metadata, next_run_date, created_at, updated_at
"""
# Only for a user who exists, and only on a thread of theirs (when it names one), checked in
# the statement that inserts: a thread deleted meanwhile leaves no cron behind.
INSERT = f"""
INSERT INTO crons (user_id, agent_id, chat_id, schedule, timezone, end_time, enabled,
                   on_run_completed, payload, metadata, next_run_date)
SELECT u.id, %(agent_id)s::uuid, %(chat_id)s::uuid, %(schedule)s::text, %(timezone)s::text,
       %(end_time)s::timestamptz, %(enabled)s::boolean, %(on_run_completed)s::text,
       %(payload)s::jsonb, %(metadata)s::jsonb, %(next_run_date)s::timestamptz
FROM users u
WHERE u.id = %(user_id)s
  AND (%(chat_id)s::uuid IS NULL
       OR EXISTS (SELECT 1 FROM chats c WHERE c.id = %(chat_id)s AND c.user_id = u.id))
RETURNING {CRON_COLUMNS}
"""
SELECT_OWNED = f"SELECT {CRON_COLUMNS} FROM crons WHERE id = %s AND user_id = %s"
# Read before a partial update, which is written whole: two updates at once apply one after
# the other, and a scheduler skips the row meanwhile.
LOCK_OWNED = SELECT_OWNED + " FOR UPDATE"
UPDATE_OWNED = f"""
UPDATE crons SET schedule = %(schedule)s, timezone = %(timezone)s, end_time = %(end_time)s,
                 enabled = %(enabled)s, on_run_completed = %(on_run_completed)s,
                 payload = %(payload)s, metadata = %(metadata)s,
                 next_run_date = %(next_run_date)s, updated_at = now()
WHERE id = %(id)s AND user_id = %(user_id)s
RETURNING {CRON_COLUMNS}
"""
DELETE_OWNED = "DELETE FROM crons WHERE id = %s AND user_id = %s"
DELETE_OF_USER = "DELETE FROM crons WHERE user_id = %s"
# The filters of search and count. An assistant is named by its id or by its graph name.
_MATCHING = """
FROM crons WHERE user_id = %(user_id)s
  AND (%(agent_id)s::uuid IS NULL OR agent_id = %(agent_id)s::uuid)
  AND (%(slug)s::text IS NULL
       OR agent_id IN (SELECT a.id FROM agents a WHERE a.slug = %(slug)s::text))
  AND (%(chat_id)s::uuid IS NULL OR chat_id = %(chat_id)s::uuid)
  AND (%(enabled)s::boolean IS NULL OR enabled = %(enabled)s::boolean)
  AND metadata @> %(metadata)s
"""
SORT_COLUMNS = {
    "cron_id": "id",
    "assistant_id": "agent_id",
    "thread_id": "chat_id",
    "next_run_date": "next_run_date",
    "end_time": "end_time",
    "created_at": "created_at",
    "updated_at": "updated_at",
}
SEARCH = f"SELECT {CRON_COLUMNS} {_MATCHING} ORDER BY {{order}} LIMIT %(limit)s OFFSET %(offset)s"
COUNT = f"SELECT count(*) AS n {_MATCHING}"
# The due crons no other process holds, earliest first, locked until the caller's transaction
# ends (it moves them on first). ``now()`` is the transaction's time: the next tick is counted
# from the database's clock, the one this statement compares with.
CLAIM_DUE = f"""
SELECT {CRON_COLUMNS}, now() AS now FROM crons
WHERE enabled AND next_run_date <= now()
ORDER BY next_run_date
LIMIT %(limit)s
FOR UPDATE SKIP LOCKED
"""
# Each claimed cron's next tick (null: none left), in one statement.
ADVANCE = """
UPDATE crons SET next_run_date = moved.next_run_date
FROM unnest(%(ids)s::uuid[], %(next_run_dates)s::timestamptz[]) AS moved (id, next_run_date)
WHERE crons.id = moved.id
"""
# How long until the earliest enabled cron is due (negative: overdue; null: none is).
SECONDS_UNTIL_DUE = """
SELECT extract(epoch FROM min(next_run_date) - now())::float8 AS seconds
FROM crons WHERE enabled AND next_run_date IS NOT NULL
"""


def _row(fields: dict[str, Any]) -> dict[str, Any]:
    return fields | {"payload": Jsonb(fields["payload"]), "metadata": Jsonb(fields["metadata"])}


async def insert(conn: Conn, *, user_id: UUID, **fields: Any) -> CronRow | None:
    """A new cron (``fields``: every column but the id and times); ``None`` when the user is
    gone or ``chat_id`` names no thread of theirs."""
    cur = await conn.execute(INSERT, _row(fields) | {"user_id": user_id})
    return cast(CronRow | None, await cur.fetchone())


async def get_owned(
    conn: Conn, cron_id: UUID, user_id: UUID, *, lock: bool = False
) -> CronRow | None:
    """The user's cron; with ``lock``, locked until the caller's transaction ends."""
    cur = await conn.execute(LOCK_OWNED if lock else SELECT_OWNED, (cron_id, user_id))
    return cast(CronRow | None, await cur.fetchone())


async def update_owned(conn: Conn, cron: CronRow) -> CronRow | None:
    """Write the user's cron back whole (what may change of it): ``None`` if it is gone."""
    cur = await conn.execute(UPDATE_OWNED, _row(dict(cron)))
    return cast(CronRow | None, await cur.fetchone())


async def delete_owned(conn: Conn, cron_id: UUID, user_id: UUID) -> bool:
    cur = await conn.execute(DELETE_OWNED, (cron_id, user_id))
    return cur.rowcount > 0


async def delete_of_user(conn: Conn, user_id: UUID) -> int:
    """Delete every cron of the user's (an account that goes); how many."""
    cur = await conn.execute(DELETE_OF_USER, (user_id,))
    return cur.rowcount


def _filters(
    user_id: UUID,
    agent: UUID | str | None,
    chat_id: UUID | None,
    enabled: bool | None,
    metadata: dict[str, Any] | None,
) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "agent_id": agent if isinstance(agent, UUID) else None,
        "slug": agent if isinstance(agent, str) else None,
        "chat_id": chat_id,
        "enabled": enabled,
        "metadata": Jsonb(metadata or {}),
    }


async def search(
    conn: Conn,
    user_id: UUID,
    *,
    agent: UUID | str | None,
    chat_id: UUID | None,
    enabled: bool | None,
    metadata: dict[str, Any] | None,
    sort_by: str,
    descending: bool,
    limit: int,
    offset: int,
) -> list[CronRow]:
    """A page of the user's crons that match, sorted by ``sort_by`` (a key of
    ``SORT_COLUMNS``; ties by id, nulls last)."""
    direction = "DESC" if descending else "ASC"
    order = f"{SORT_COLUMNS[sort_by]} {direction} NULLS LAST, id {direction}"
    params = _filters(user_id, agent, chat_id, enabled, metadata)
    cur = await conn.execute(
        SEARCH.format(order=order), params | {"limit": limit, "offset": offset}
    )
    return cast(list[CronRow], await cur.fetchall())


async def count(
    conn: Conn,
    user_id: UUID,
    *,
    agent: UUID | str | None,
    chat_id: UUID | None,
    metadata: dict[str, Any] | None,
    enabled: bool | None = None,
) -> int:
    cur = await conn.execute(COUNT, _filters(user_id, agent, chat_id, enabled, metadata))
    row = await cur.fetchone()
    assert row is not None
    return int(row["n"])


async def claim_due(conn: Conn, *, limit: int) -> list[DueCronRow]:
    """Lock up to ``limit`` due crons no other process holds (inside the caller's transaction,
    which must ``advance`` them before it commits)."""
    cur = await conn.execute(CLAIM_DUE, {"limit": limit})
    return cast(list[DueCronRow], await cur.fetchall())


async def advance(conn: Conn, moved: Sequence[tuple[UUID, datetime | None]]) -> None:
    """Set each claimed cron's ``next_run_date`` (``None``: no tick left)."""
    if moved:
        ids, dates = zip(*moved, strict=True)
        await conn.execute(ADVANCE, {"ids": list(ids), "next_run_dates": list(dates)})


async def seconds_until_due(conn: Conn) -> float | None:
    """How long until the earliest enabled cron is due (negative when it already is); ``None``
    when no cron has a tick left."""
    cur = await conn.execute(SECONDS_UNTIL_DUE)
    row = await cur.fetchone()
    return None if row is None or row["seconds"] is None else float(row["seconds"])

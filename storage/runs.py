"""Runs: the durable record of each agent answer."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from storage.db import Conn

RUN_COLUMNS = """
    id, chat_id, user_id, agent_id, agent_version, model_name, status, multitask_strategy,
    error, usage, worker_id, heartbeat_at, created_at, started_at, ended_at
"""

# ON CONFLICT DO NOTHING on the one-active-run-per-chat index: None means the chat is busy.
INSERT_RUNNING = f"""
INSERT INTO runs (chat_id, user_id, agent_id, agent_version, model_name, status, worker_id,
                  started_at, heartbeat_at)
VALUES (%(chat_id)s, %(user_id)s, %(agent_id)s, %(agent_version)s, %(model_name)s, 'running',
        %(worker_id)s, now(), now())
ON CONFLICT (chat_id) WHERE status IN ('pending', 'running') DO NOTHING
RETURNING {RUN_COLUMNS}
"""
SELECT_ACTIVE_FOR_CHAT = """
SELECT id FROM runs WHERE chat_id = %s AND status IN ('pending', 'running')
"""
FINISH = f"""
UPDATE runs SET status = %(status)s, error = %(error)s, usage = %(usage)s, ended_at = now()
WHERE id = %(id)s RETURNING {RUN_COLUMNS}
"""
SELECT_OWNED = f"SELECT {RUN_COLUMNS} FROM runs WHERE id = %s AND user_id = %s"
LIST_FOR_CHAT = f"""
SELECT {RUN_COLUMNS} FROM runs WHERE chat_id = %(chat_id)s
ORDER BY created_at DESC, id DESC LIMIT %(limit)s OFFSET %(offset)s
"""
COUNT_FOR_CHAT = "SELECT count(*) AS n FROM runs WHERE chat_id = %s"


async def insert_running(conn: Conn, **fields: Any) -> dict[str, Any] | None:
    """Record a run that starts now; ``None`` when the chat already has an active run."""
    cur = await conn.execute(INSERT_RUNNING, fields)
    return await cur.fetchone()


async def active_run_id(conn: Conn, chat_id: UUID) -> UUID | None:
    cur = await conn.execute(SELECT_ACTIVE_FOR_CHAT, (chat_id,))
    row = await cur.fetchone()
    return row["id"] if row else None


async def finish(
    conn: Conn, run_id: UUID, *, status: str, error: str | None, usage: dict[str, Any] | None
) -> dict[str, Any] | None:
    cur = await conn.execute(
        FINISH,
        {"id": run_id, "status": status, "error": error, "usage": Jsonb(usage) if usage else None},
    )
    return await cur.fetchone()


async def get_owned(conn: Conn, run_id: UUID, user_id: UUID) -> dict[str, Any] | None:
    cur = await conn.execute(SELECT_OWNED, (run_id, user_id))
    return await cur.fetchone()


async def list_for_chat(
    conn: Conn, chat_id: UUID, *, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    cur = await conn.execute(LIST_FOR_CHAT, {"chat_id": chat_id, "limit": limit, "offset": offset})
    rows = await cur.fetchall()
    cur = await conn.execute(COUNT_FOR_CHAT, (chat_id,))
    total = await cur.fetchone()
    assert total is not None
    return rows, total["n"]


HEARTBEAT = "UPDATE runs SET heartbeat_at = now() WHERE id = ANY(%s) AND status = 'running'"
ACTIVE_ON_HOST = """
SELECT id, worker_id FROM runs
WHERE status IN ('pending', 'running') AND worker_id LIKE %s
"""
# Runs whose process died: marked interrupted, which also frees their chat for the next message.
INTERRUPT_STALE = """
UPDATE runs SET status = 'interrupted', ended_at = now(),
                error = 'The process running it stopped before it finished'
WHERE status IN ('pending', 'running')
  AND (id = ANY(%(ids)s) OR heartbeat_at < now() - make_interval(secs => %(stale)s))
RETURNING id, chat_id
"""


async def heartbeat(conn: Conn, run_ids: list[UUID]) -> None:
    if run_ids:
        await conn.execute(HEARTBEAT, (run_ids,))


async def active_on_host(conn: Conn, host: str) -> list[dict[str, Any]]:
    """Active runs whose worker id says they run on ``host`` (``host:pid``)."""
    pattern = host.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + ":%"
    cur = await conn.execute(ACTIVE_ON_HOST, (pattern,))
    return await cur.fetchall()


async def interrupt_stale(
    conn: Conn, *, dead_ids: list[UUID], stale_seconds: float
) -> list[dict[str, Any]]:
    """Mark interrupted the runs in ``dead_ids`` and those whose heartbeat is too old."""
    cur = await conn.execute(INTERRUPT_STALE, {"ids": dead_ids, "stale": stale_seconds})
    return await cur.fetchall()

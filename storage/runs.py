"""Runs: the durable record of each agent answer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from storage import quotas as quotas_store
from storage.chats import NEEDS_CLOSING
from storage.db import Conn
from storage.rows import ActiveRunRow, InterruptedRunRow, RunRow
from storage.types import RunStatus
from storage.usage import USAGE_ADD, usage_params

RUN_COLUMNS = """
    id, chat_id, user_id, agent_id, agent_version, model_name, status, multitask_strategy,
    error, usage, worker_id, heartbeat_at, created_at, started_at, ended_at, input, webhook_url
"""

# ``created_at`` is the queue's order, so it is read after the chat's lock is held:
# ``now()`` is when the transaction began, before the wait, and two runs that waited for the
# lock would be ordered by when they asked, not by when they were queued.
_INSERT = """
INSERT INTO runs (chat_id, user_id, agent_id, agent_version, model_name, multitask_strategy,
                  status, worker_id, started_at, heartbeat_at, input, webhook_url, created_at)
SELECT %(chat_id)s, %(user_id)s, %(agent_id)s, %(agent_version)s, %(model_name)s,
       %(multitask_strategy)s, {status}, %(worker_id)s, {started}, now(), %(input)s,
       %(webhook_url)s, clock_timestamp()
"""
# Starts now if no run of the chat is active or queued; otherwise it is queued behind them,
# or (``queue`` false) not inserted at all. The unique index on running runs settles races
# with workers. ``needs_closing`` is read in the same statement, so a run that starts at once
# needs no further query to know whether tool calls were left open.
INSERT_STARTING = f"""
INSERT INTO runs (chat_id, user_id, agent_id, agent_version, model_name, multitask_strategy,
                  status, worker_id, started_at, heartbeat_at, input, webhook_url, created_at)
SELECT %(chat_id)s, %(user_id)s, %(agent_id)s, %(agent_version)s, %(model_name)s,
       %(multitask_strategy)s, CASE WHEN busy THEN 'pending' ELSE 'running' END,
       %(worker_id)s, CASE WHEN busy THEN NULL ELSE now() END, now(), %(input)s,
       %(webhook_url)s, clock_timestamp()
FROM (SELECT EXISTS (SELECT 1 FROM runs WHERE chat_id = %(chat_id)s
                     AND status IN ('pending', 'running')) AS busy) chat
WHERE %(queue)s OR NOT busy
ON CONFLICT (chat_id) WHERE status = 'running' DO NOTHING
RETURNING {RUN_COLUMNS}, {NEEDS_CLOSING} AS needs_closing
"""
INSERT_PENDING = _INSERT.format(status="'pending'", started="NULL") + "RETURNING " + RUN_COLUMNS
# New runs of one chat are inserted one at a time: "is the chat free?" and the insert must be
# one step, or a queued run and a starting one could both pass the check.
LOCK_CHAT = "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))"
# Queued for a worker, unless the chat has an active or queued run (strategy "reject").
INSERT_PENDING_IF_FREE = (
    _INSERT.format(status="'pending'", started="NULL")
    + """
WHERE NOT EXISTS (SELECT 1 FROM runs WHERE chat_id = %(chat_id)s
                  AND status IN ('pending', 'running'))
RETURNING """
    + RUN_COLUMNS
)
# A queued run starts when it is the oldest pending run of its chat and none is running.
CLAIM_PENDING = """
UPDATE runs SET status = 'running', started_at = now(), heartbeat_at = now(),
                worker_id = %(worker_id)s
WHERE id = %(id)s AND status = 'pending'
  AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.chat_id = runs.chat_id AND r.status = 'running')
  AND id = (SELECT r.id FROM runs r WHERE r.chat_id = runs.chat_id AND r.status = 'pending'
            ORDER BY r.created_at, r.id LIMIT 1)
"""
# A worker takes the oldest unclaimed run whose chat is free and that is first in its chat's
# queue. SKIP LOCKED lets workers claim side by side; the unique index on running runs settles
# the rare race between two queues of one chat.
CLAIM_NEXT = f"""
UPDATE runs SET status = 'running', started_at = now(), heartbeat_at = now(),
                worker_id = %(worker_id)s
WHERE id = (
    SELECT r.id FROM runs r
    WHERE r.status = 'pending' AND r.worker_id IS NULL
      AND NOT EXISTS (SELECT 1 FROM runs o WHERE o.chat_id = r.chat_id AND o.status = 'running')
      AND NOT EXISTS (SELECT 1 FROM runs o WHERE o.chat_id = r.chat_id AND o.status = 'pending'
                      AND (o.created_at, o.id) < (r.created_at, r.id))
    ORDER BY r.created_at, r.id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
) AND status = 'pending'
RETURNING {RUN_COLUMNS}
"""
# A queued run nobody has claimed yet is stopped by whoever asks, with no process to tell.
STOP_UNCLAIMED = f"""
UPDATE runs SET status = %(status)s, ended_at = now()
WHERE id = %(id)s AND status = 'pending' AND worker_id IS NULL
RETURNING {RUN_COLUMNS}
"""
SELECT_ACTIVE_FOR_CHAT = """
SELECT id FROM runs WHERE chat_id = %s AND status IN ('pending', 'running')
ORDER BY status = 'running' DESC, created_at LIMIT 1
"""
SELECT_ACTIVE_IDS_FOR_CHAT = """
SELECT id FROM runs WHERE chat_id = %s AND status IN ('pending', 'running')
ORDER BY status = 'running' DESC, created_at, id
"""
SELECT_RUNNING_FOR_CHAT = "SELECT id FROM runs WHERE chat_id = %s AND status = 'running'"
FINISH = f"""
UPDATE runs SET status = %(status)s, error = %(error)s, usage = %(usage)s, ended_at = now()
WHERE id = %(id)s RETURNING {RUN_COLUMNS}
"""
# A run's end and its chat's summary in one statement (one round trip, one commit). The count
# is either set (``message_count``, read from the thread) or increased (``added``).
# What the run used is added to its user's usage of the day in the same statement (one commit:
# a run's end is counted once, and never without its usage).
FINISH_WITH_SUMMARY = f"""
WITH finished AS (
    UPDATE runs SET status = %(status)s, error = %(error)s, usage = %(usage)s, ended_at = now()
    WHERE id = %(id)s RETURNING chat_id, user_id, agent_id, model_name
), counted AS (
    {USAGE_ADD}
)
UPDATE chats SET message_count = coalesce(%(message_count)s::int, message_count + %(added)s),
                 last_message_at = now(), updated_at = now(),
                 title = coalesce(title, %(title)s), thread_status = %(thread_status)s
WHERE id = (SELECT chat_id FROM finished)
"""
SELECT_OWNED = f"SELECT {RUN_COLUMNS} FROM runs WHERE id = %s AND user_id = %s"
SELECT_ONE = f"SELECT {RUN_COLUMNS} FROM runs WHERE id = %s"
# ``statuses`` NULL: every run of the chat.
_OF_CHAT = "chat_id = %(chat_id)s AND (%(statuses)s::text[] IS NULL OR status = ANY(%(statuses)s))"
LIST_FOR_CHAT = f"""
SELECT {RUN_COLUMNS} FROM runs WHERE {_OF_CHAT}
ORDER BY created_at DESC, id DESC LIMIT %(limit)s OFFSET %(offset)s
"""
COUNT_FOR_CHAT = f"SELECT count(*) AS n FROM runs WHERE {_OF_CHAT}"
DELETE_RUN = "DELETE FROM runs WHERE id = %s"
# Only the chat's own runs: a checkpoint copied from another chat (a fork) names that chat's.
AGENT_VERSIONS_IN_CHAT = """
SELECT id, agent_version FROM runs WHERE chat_id = %(chat_id)s AND id = ANY(%(ids)s)
"""
# A bulk cancel by ids: the user's runs among ``ids`` in their chat ``chat_id`` (primary key).
SELECT_OWNED_IN_CHAT = f"""
SELECT {RUN_COLUMNS} FROM runs
WHERE id = ANY(%(ids)s) AND chat_id = %(chat_id)s AND user_id = %(user_id)s
ORDER BY created_at, id
"""
# A bulk cancel by status: the user's active runs in ``statuses``, in every chat. The literal
# condition lets the planner read them through the partial index on active runs (a handful
# at any time, whatever the number of finished runs), whatever ``statuses`` holds.
SELECT_ACTIVE_OF_USER = f"""
SELECT {RUN_COLUMNS} FROM runs
WHERE status IN ('pending', 'running') AND status = ANY(%(statuses)s)
  AND user_id = %(user_id)s
ORDER BY created_at, id
"""
# What a thread's stream follows: the chat's oldest active run (the current one), or, when
# none is, the newest run it has (followed by the runs created after it).
SELECT_CURRENT_OF_CHAT = f"""
(SELECT {RUN_COLUMNS}, true AS active FROM runs
 WHERE chat_id = %(chat_id)s AND status IN ('pending', 'running')
 ORDER BY created_at, id LIMIT 1)
UNION ALL
(SELECT {RUN_COLUMNS}, false AS active FROM runs
 WHERE chat_id = %(chat_id)s
 ORDER BY created_at DESC, id DESC LIMIT 1)
"""
# A chat's runs whose event logs may still be held (active, or ended within the window), the
# newest ``limit`` of them.
SELECT_RECENT_OF_CHAT = f"""
SELECT {RUN_COLUMNS} FROM runs
WHERE chat_id = %(chat_id)s
  AND (ended_at IS NULL OR ended_at > now() - make_interval(secs => %(seconds)s))
ORDER BY created_at DESC, id DESC LIMIT %(limit)s
"""
# The run a thread's stream follows next: the first one created after the last it followed,
# if the chat is still the user's (``owned`` null: it was deleted, the stream ends).
SELECT_NEXT_OF_OWNED_CHAT = f"""
SELECT c.id AS owned, r.* FROM chats c
LEFT JOIN LATERAL (
    SELECT {RUN_COLUMNS} FROM runs
    WHERE runs.chat_id = c.id
      AND (%(after_created)s::timestamptz IS NULL
           OR (runs.created_at, runs.id) > (%(after_created)s::timestamptz, %(after_id)s::uuid))
    ORDER BY runs.created_at, runs.id LIMIT 1
) r ON true
WHERE c.id = %(chat_id)s AND c.user_id = %(user_id)s
"""


async def insert_starting(conn: Conn, *, queue: bool, **fields: Any) -> RunRow | None:
    """Record a run that starts now when its chat is free; otherwise queue it (``queue``) or
    return ``None``. Its row has ``needs_closing``, true when the thread may hold tool calls a
    stopped run left unanswered (meaningful for a run that starts now).

    ``fields["quotas"]``: each role's default quotas; a run over its user's raises
    ``QuotaExceeded`` and nothing is inserted (storage/quotas.py)."""
    params = {"webhook_url": None, **fields, "queue": queue}
    params["quotas"] = quotas_store.admit_params(fields.get("quotas"))
    try:
        # The lock and the insert are one transaction sent in one round trip (a pipeline);
        # each statement takes a fresh snapshot, so the insert sees what the lock waited for.
        # The user's quotas are checked in it too: a refusal (``QuotaExceeded``) inserts nothing.
        async with conn.pipeline():
            with quotas_store.caught() as refusal:
                async with conn.transaction():
                    await conn.execute(LOCK_CHAT, (str(fields["chat_id"]),))
                    await conn.execute(quotas_store.ADMIT, params)
                    cur = await conn.execute(INSERT_STARTING, params)
        refusal.check()
        return cast(RunRow | None, await cur.fetchone())
    except psycopg.errors.UniqueViolation:
        return None


async def insert_pending(conn: Conn, *, if_free: bool = False, **fields: Any) -> RunRow | None:
    """Queue a run behind the chat's active and queued runs.

    With ``if_free``, only when the chat has none (``None`` otherwise). A ``worker_id`` of
    ``None`` leaves the run to whichever worker claims it first. Quotas as in
    ``insert_starting``.
    """
    params = {"webhook_url": None, **fields}
    params["quotas"] = quotas_store.admit_params(fields.get("quotas"))
    async with conn.pipeline():
        with quotas_store.caught() as refusal:
            async with conn.transaction():
                await conn.execute(LOCK_CHAT, (str(fields["chat_id"]),))
                await conn.execute(quotas_store.ADMIT, params)
                statement = INSERT_PENDING_IF_FREE if if_free else INSERT_PENDING
                cur = await conn.execute(statement, params)
    refusal.check()
    return cast(RunRow | None, await cur.fetchone())


async def claim_next(conn: Conn, worker_id: str) -> RunRow | None:
    """Claim the next unclaimed queued run that may start now, or ``None``."""
    try:
        cur = await conn.execute(CLAIM_NEXT, {"worker_id": worker_id})
    except psycopg.errors.UniqueViolation:
        return None
    return cast(RunRow | None, await cur.fetchone())


async def stop_unclaimed(conn: Conn, run_id: UUID, status: str) -> RunRow | None:
    """End a queued run no process has claimed; ``None`` if it was claimed or has ended."""
    cur = await conn.execute(STOP_UNCLAIMED, {"id": run_id, "status": status})
    return cast(RunRow | None, await cur.fetchone())


async def get(conn: Conn, run_id: UUID) -> RunRow | None:
    cur = await conn.execute(SELECT_ONE, (run_id,))
    return cast(RunRow | None, await cur.fetchone())


async def claim_pending(conn: Conn, run_id: UUID, worker_id: str) -> bool:
    """Start a queued run if it is next in line and its chat is free."""
    try:
        cur = await conn.execute(CLAIM_PENDING, {"id": run_id, "worker_id": worker_id})
    except psycopg.errors.UniqueViolation:
        return False
    return cur.rowcount == 1


async def delete(conn: Conn, run_id: UUID) -> None:
    await conn.execute(DELETE_RUN, (run_id,))


async def running_run_id(conn: Conn, chat_id: UUID) -> UUID | None:
    cur = await conn.execute(SELECT_RUNNING_FOR_CHAT, (chat_id,))
    row = await cur.fetchone()
    return row["id"] if row else None


async def active_run_ids(conn: Conn, chat_id: UUID) -> list[UUID]:
    """The chat's running run first, then its queued runs in queue order."""
    cur = await conn.execute(SELECT_ACTIVE_IDS_FOR_CHAT, (chat_id,))
    return [row["id"] for row in await cur.fetchall()]


async def active_run_id(conn: Conn, chat_id: UUID) -> UUID | None:
    cur = await conn.execute(SELECT_ACTIVE_FOR_CHAT, (chat_id,))
    row = await cur.fetchone()
    return row["id"] if row else None


async def finish(
    conn: Conn, run_id: UUID, *, status: str, error: str | None, usage: dict[str, int] | None
) -> RunRow | None:
    cur = await conn.execute(
        FINISH,
        {"id": run_id, "status": status, "error": error, "usage": Jsonb(usage) if usage else None},
    )
    return cast(RunRow | None, await cur.fetchone())


async def finish_with_summary(
    conn: Conn,
    run_id: UUID,
    *,
    status: str,
    error: str | None,
    usage: dict[str, int] | None,
    added: int = 0,
    message_count: int | None = None,
    title: str | None,
    thread_status: str,
) -> None:
    """End a run and update its chat's summary: ``message_count`` if given, else ``+ added``;
    ``title`` only when the chat has none yet."""
    await conn.execute(
        FINISH_WITH_SUMMARY,
        {
            "id": run_id, "status": status, "error": error,
            "usage": Jsonb(usage) if usage else None, **usage_params(usage),
            "added": added, "message_count": message_count,
            "title": title, "thread_status": thread_status,
        },
    )  # fmt: skip


async def get_owned(conn: Conn, run_id: UUID, user_id: UUID) -> RunRow | None:
    cur = await conn.execute(SELECT_OWNED, (run_id, user_id))
    return cast(RunRow | None, await cur.fetchone())


async def list_for_chat(
    conn: Conn,
    chat_id: UUID,
    *,
    limit: int,
    offset: int,
    statuses: Sequence[RunStatus] | None = None,
) -> tuple[list[RunRow], int]:
    """A page of the chat's runs, newest first, and how many there are (in ``statuses``)."""
    where = {"chat_id": chat_id, "statuses": list(statuses) if statuses is not None else None}
    cur = await conn.execute(LIST_FOR_CHAT, {**where, "limit": limit, "offset": offset})
    rows = cast(list[RunRow], await cur.fetchall())
    cur = await conn.execute(COUNT_FOR_CHAT, where)
    total = await cur.fetchone()
    assert total is not None
    return rows, total["n"]


async def owned_in_chat(
    conn: Conn, run_ids: Sequence[UUID], chat_id: UUID, user_id: UUID
) -> list[RunRow]:
    """The runs among ``run_ids`` that ``user_id`` started in chat ``chat_id``, oldest first
    (the others, anyone else's included, are left out)."""
    cur = await conn.execute(
        SELECT_OWNED_IN_CHAT, {"ids": list(run_ids), "chat_id": chat_id, "user_id": user_id}
    )
    return cast(list[RunRow], await cur.fetchall())


async def active_of_user(conn: Conn, user_id: UUID, statuses: Sequence[RunStatus]) -> list[RunRow]:
    """The user's active runs whose status is in ``statuses``, in every chat, oldest first."""
    cur = await conn.execute(
        SELECT_ACTIVE_OF_USER, {"user_id": user_id, "statuses": list(statuses)}
    )
    return cast(list[RunRow], await cur.fetchall())


async def current_of_chat(conn: Conn, chat_id: UUID) -> tuple[RunRow | None, bool]:
    """The chat's oldest active run and ``True``; else its newest run (or ``None``) and
    ``False``."""
    cur = await conn.execute(SELECT_CURRENT_OF_CHAT, {"chat_id": chat_id})
    rows = await cur.fetchall()
    if not rows:
        return None, False
    row = dict(rows[0])
    active = bool(row.pop("active"))
    return cast(RunRow, row), active


async def recent_of_chat(conn: Conn, chat_id: UUID, seconds: float, limit: int) -> list[RunRow]:
    """The chat's runs that are active or ended less than ``seconds`` ago, oldest first (the
    newest ``limit`` of them)."""
    params = {"chat_id": chat_id, "seconds": seconds, "limit": limit}
    cur = await conn.execute(SELECT_RECENT_OF_CHAT, params)
    return cast(list[RunRow], list(reversed(await cur.fetchall())))


async def next_of_owned_chat(
    conn: Conn, chat_id: UUID, user_id: UUID, after: RunRow | None
) -> tuple[bool, RunRow | None]:
    """Whether chat ``chat_id`` is still ``user_id``'s, and its first run created after run
    ``after`` (its first run at all without one; ``None`` when there is none yet)."""
    cur = await conn.execute(
        SELECT_NEXT_OF_OWNED_CHAT,
        {
            "chat_id": chat_id, "user_id": user_id,
            "after_created": after["created_at"] if after else None,
            "after_id": after["id"] if after else None,
        },
    )  # fmt: skip
    row = await cur.fetchone()
    if row is None:
        return False, None
    row = dict(row)
    row.pop("owned")
    return True, cast(RunRow, row) if row["id"] is not None else None


# Queued runs beat too: their waiting task is alive, so they are not orphans.
HEARTBEAT = """
UPDATE runs SET heartbeat_at = now() WHERE id = ANY(%s) AND status IN ('pending', 'running')
"""
ACTIVE_ON_HOST = """
SELECT id, worker_id FROM runs
WHERE status IN ('pending', 'running') AND worker_id LIKE %s
"""
# Runs whose process died: marked interrupted, which also frees their chat for the next message.
# Unclaimed queued runs have no process and no heartbeat; they wait for a worker.
INTERRUPT_STALE = """
UPDATE runs SET status = 'interrupted', ended_at = now(),
                error = 'The process running it stopped before it finished'
WHERE status IN ('pending', 'running') AND worker_id IS NOT NULL
  AND (id = ANY(%(ids)s) OR heartbeat_at < now() - make_interval(secs => %(stale)s))
RETURNING id, chat_id
"""


async def heartbeat(conn: Conn, run_ids: list[UUID]) -> None:
    if run_ids:
        await conn.execute(HEARTBEAT, (run_ids,))


async def active_on_host(conn: Conn, host: str) -> list[ActiveRunRow]:
    """Active runs whose worker id says they run on ``host`` (``host:pid``)."""
    pattern = host.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + ":%"
    cur = await conn.execute(ACTIVE_ON_HOST, (pattern,))
    return cast(list[ActiveRunRow], await cur.fetchall())


async def interrupt_stale(
    conn: Conn, *, dead_ids: list[UUID], stale_seconds: float
) -> list[InterruptedRunRow]:
    """Mark interrupted the runs in ``dead_ids`` and those whose heartbeat is too old."""
    cur = await conn.execute(INTERRUPT_STALE, {"ids": dead_ids, "stale": stale_seconds})
    return cast(list[InterruptedRunRow], await cur.fetchall())


async def agent_versions_in_chat(
    conn: Conn, chat_id: UUID, run_ids: Sequence[UUID]
) -> dict[UUID, int]:
    """The agent version each of ``run_ids`` that is a run of ``chat_id`` recorded."""
    if not run_ids:
        return {}
    cur = await conn.execute(AGENT_VERSIONS_IN_CHAT, {"chat_id": chat_id, "ids": list(run_ids)})
    return {row["id"]: row["agent_version"] for row in await cur.fetchall()}

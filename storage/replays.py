"""Replays: a chat's user messages sent again to a new chat, and the turn-by-turn comparison.

A replay row is owned by one process at a time (``worker_id``, ``heartbeat_at``), like a run:
that process's background task sends the turns. A replay whose process is gone (its pid is dead
on this host, its heartbeat is stale, or it let go of it at shutdown) is adopted by another.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast
from uuid import UUID

from psycopg.types.json import Jsonb

from storage.db import Conn
from storage.rows import AdoptedReplayRow, ReplayRow, ReplayTurnRow

REPLAY_COLUMNS = """
    id, user_id, source_chat_id, target_chat_id, agent_id, model_name, status, total, done,
    error, worker_id, heartbeat_at, resumes, created_at, started_at, ended_at
"""
TURN_COLUMNS = """
    replay_id, position, message_id, content, parts, original, status, run_id, answer,
    similarity, started_at, ended_at
"""
_ACTIVE = "status IN ('pending', 'running')"

INSERT = f"""
INSERT INTO replays (user_id, source_chat_id, target_chat_id, agent_id, model_name, total,
                     worker_id, heartbeat_at)
VALUES (%(user_id)s, %(source_chat_id)s, %(target_chat_id)s, %(agent_id)s, %(model_name)s,
        %(total)s, %(worker_id)s, now())
RETURNING {REPLAY_COLUMNS}
"""
INSERT_TURN = """
INSERT INTO replay_turns (replay_id, position, message_id, content, parts, original)
VALUES (%(replay_id)s, %(position)s, %(message_id)s, %(content)s, %(parts)s, %(original)s)
"""
SELECT_ONE = f"SELECT {REPLAY_COLUMNS} FROM replays WHERE id = %s"
SELECT_OWNED = f"SELECT {REPLAY_COLUMNS} FROM replays WHERE id = %s AND user_id = %s"
LIST_FOR_CHAT = f"""
SELECT {REPLAY_COLUMNS} FROM replays WHERE source_chat_id = %(chat_id)s AND user_id = %(user_id)s
ORDER BY created_at DESC, id DESC LIMIT %(limit)s OFFSET %(offset)s
"""
COUNT_FOR_CHAT = """
SELECT count(*) AS n FROM replays WHERE source_chat_id = %(chat_id)s AND user_id = %(user_id)s
"""
# With the agent version each turn's run recorded (the definition it ran on).
SELECT_TURNS = """
SELECT t.replay_id, t.position, t.message_id, t.content, t.parts, t.original, t.status, t.run_id,
       t.answer, t.similarity, t.started_at, t.ended_at, r.agent_version
FROM replay_turns t LEFT JOIN runs r ON r.id = t.run_id
WHERE t.replay_id = %s ORDER BY t.position
"""
# The turn to work on: the first one whose run has not been seen to end.
SELECT_NEXT_TURN = f"""
SELECT {TURN_COLUMNS} FROM replay_turns WHERE replay_id = %s AND {_ACTIVE}
ORDER BY position LIMIT 1
"""
# The turn's run was started: recorded only while the replay is going, in one statement, so a
# cancel that came first is seen (the caller then stops the run it just started).
TURN_STARTED = f"""
WITH replay AS (
    UPDATE replays SET status = 'running', started_at = coalesce(started_at, now()),
                       heartbeat_at = now()
    WHERE id = %(replay_id)s AND {_ACTIVE} RETURNING id
)
UPDATE replay_turns SET status = 'running', run_id = %(run_id)s, started_at = now(),
                        answer = NULL, similarity = NULL
WHERE replay_id = (SELECT id FROM replay) AND position = %(position)s
RETURNING position
"""
# The turn's run ended: the turn is recorded once (whoever sees the end first: the driver, or a
# cancel), and counts as done only while the replay is going.
# The replay's row is locked before its turn's, as everything else that locks both does
# (deleting either chat locks the replay, then its turns): the other order deadlocked with a
# delete of the replay's chat while its turn ended.
TURN_ENDED = f"""
WITH replay AS (
    SELECT id FROM replays WHERE id = %(replay_id)s FOR UPDATE
), turn AS (
    UPDATE replay_turns SET status = %(status)s, answer = %(answer)s,
                            similarity = %(similarity)s, ended_at = now()
    WHERE replay_id = (SELECT id FROM replay) AND position = %(position)s AND {_ACTIVE}
    RETURNING replay_id
)
UPDATE replays SET done = done + 1, resumes = 0, heartbeat_at = now()
WHERE id = (SELECT replay_id FROM turn) AND {_ACTIVE}
"""
SELECT_RUNNING_TURNS = f"""
SELECT {TURN_COLUMNS} FROM replay_turns WHERE replay_id = %s AND status = 'running'
ORDER BY position
"""
# A turn still running when its replay ends (failed, interrupted) is one the replay stopped
# following: interrupted, whatever its run goes on to do.
FINISH = f"""
WITH replay AS (
    UPDATE replays SET status = %(status)s, error = %(error)s, ended_at = now()
    WHERE id = %(id)s AND {_ACTIVE}
    RETURNING {REPLAY_COLUMNS}
), turns AS (
    UPDATE replay_turns SET status = 'interrupted', ended_at = now()
    WHERE replay_id = (SELECT id FROM replay) AND status = 'running'
)
SELECT {REPLAY_COLUMNS} FROM replay
"""
CANCEL_OWNED = f"""
UPDATE replays SET status = 'cancelled', ended_at = now()
WHERE id = %(id)s AND user_id = %(user_id)s AND {_ACTIVE}
RETURNING {REPLAY_COLUMNS}
"""
HEARTBEAT = f"""
UPDATE replays SET heartbeat_at = now()
WHERE id = ANY(%(ids)s) AND worker_id = %(worker_id)s AND {_ACTIVE}
"""
OWNERS_ON_HOST = f"""
SELECT DISTINCT worker_id FROM replays WHERE {_ACTIVE} AND worker_id LIKE %s
"""
# Replays nobody drives any more: let go of at a shutdown (no worker), of a dead process on
# this host, or silent too long. Taken in one statement: of two processes adopting at once,
# the second sees the first's fresh worker id and heartbeat and leaves the row. A crash counts
# towards ``resumes``; a shutdown that let go of the replay does not.
ADOPT = f"""
UPDATE replays SET worker_id = %(worker_id)s, heartbeat_at = now(),
                   resumes = resumes + CASE WHEN worker_id IS NULL THEN 0 ELSE 1 END
WHERE {_ACTIVE}
  AND (worker_id IS NULL OR worker_id = ANY(%(dead)s)
       OR heartbeat_at < now() - make_interval(secs => %(stale)s))
RETURNING id, resumes
"""
RELEASE = f"""
UPDATE replays SET worker_id = NULL WHERE id = ANY(%(ids)s) AND worker_id = %(worker_id)s
  AND {_ACTIVE}
"""


async def insert(
    conn: Conn,
    *,
    user_id: UUID,
    source_chat_id: UUID,
    target_chat_id: UUID,
    agent_id: UUID,
    model_name: str | None,
    worker_id: str,
    turns: Sequence[tuple[str, str, list[dict[str, Any]] | None, dict[str, Any]]],
) -> ReplayRow:
    """A new replay owned by ``worker_id`` with its turns ((message id, text, content blocks
    when it has images, original) in order); call inside the transaction that creates its
    chat."""
    params = {
        "user_id": user_id, "source_chat_id": source_chat_id, "target_chat_id": target_chat_id,
        "agent_id": agent_id, "model_name": model_name, "total": len(turns),
        "worker_id": worker_id,
    }  # fmt: skip
    cur = await conn.execute(INSERT, params)
    replay = cast(ReplayRow | None, await cur.fetchone())
    assert replay is not None
    rows = [
        {
            "replay_id": replay["id"],
            "position": position,
            "message_id": message_id,
            "content": content,
            "parts": Jsonb(parts) if parts is not None else None,
            "original": Jsonb(original),
        }
        for position, (message_id, content, parts, original) in enumerate(turns)
    ]
    async with conn.cursor() as turns_cur:
        await turns_cur.executemany(INSERT_TURN, rows)
    return replay


async def get(conn: Conn, replay_id: UUID) -> ReplayRow | None:
    cur = await conn.execute(SELECT_ONE, (replay_id,))
    return cast(ReplayRow | None, await cur.fetchone())


async def get_owned(conn: Conn, replay_id: UUID, user_id: UUID) -> ReplayRow | None:
    cur = await conn.execute(SELECT_OWNED, (replay_id, user_id))
    return cast(ReplayRow | None, await cur.fetchone())


async def list_for_chat(
    conn: Conn, chat_id: UUID, user_id: UUID, *, limit: int, offset: int
) -> tuple[list[ReplayRow], int]:
    """A page of the user's replays of the chat, newest first, and how many there are."""
    params = {"chat_id": chat_id, "user_id": user_id, "limit": limit, "offset": offset}
    cur = await conn.execute(LIST_FOR_CHAT, params)
    rows = cast(list[ReplayRow], await cur.fetchall())
    cur = await conn.execute(COUNT_FOR_CHAT, params)
    total = await cur.fetchone()
    assert total is not None
    return rows, total["n"]


async def turns(conn: Conn, replay_id: UUID) -> list[ReplayTurnRow]:
    cur = await conn.execute(SELECT_TURNS, (replay_id,))
    return cast(list[ReplayTurnRow], await cur.fetchall())


async def next_turn(conn: Conn, replay_id: UUID) -> ReplayTurnRow | None:
    cur = await conn.execute(SELECT_NEXT_TURN, (replay_id,))
    return cast(ReplayTurnRow | None, await cur.fetchone())


async def running_turns(conn: Conn, replay_id: UUID) -> list[ReplayTurnRow]:
    cur = await conn.execute(SELECT_RUNNING_TURNS, (replay_id,))
    return cast(list[ReplayTurnRow], await cur.fetchall())


async def turn_started(conn: Conn, replay_id: UUID, position: int, run_id: UUID) -> bool:
    """Record the run of a turn; ``False`` (nothing recorded) when the replay has ended."""
    params = {"replay_id": replay_id, "position": position, "run_id": run_id}
    cur = await conn.execute(TURN_STARTED, params)
    return cur.rowcount == 1


async def turn_ended(
    conn: Conn,
    replay_id: UUID,
    position: int,
    *,
    status: str,
    answer: dict[str, Any] | None,
    similarity: float | None,
) -> None:
    """Record how a turn's run ended (once; later calls change nothing)."""
    await conn.execute(
        TURN_ENDED,
        {
            "replay_id": replay_id, "position": position, "status": status,
            "answer": Jsonb(answer) if answer is not None else None, "similarity": similarity,
        },
    )  # fmt: skip


async def finish(
    conn: Conn, replay_id: UUID, status: str, error: str | None = None
) -> ReplayRow | None:
    """End a replay that is still going; ``None`` if it had ended (or is gone)."""
    cur = await conn.execute(FINISH, {"id": replay_id, "status": status, "error": error})
    return cast(ReplayRow | None, await cur.fetchone())


async def cancel_owned(conn: Conn, replay_id: UUID, user_id: UUID) -> ReplayRow | None:
    """Mark the user's replay cancelled if it is going; ``None`` otherwise."""
    cur = await conn.execute(CANCEL_OWNED, {"id": replay_id, "user_id": user_id})
    return cast(ReplayRow | None, await cur.fetchone())


async def heartbeat(conn: Conn, replay_ids: list[UUID], worker_id: str) -> None:
    if replay_ids:
        await conn.execute(HEARTBEAT, {"ids": replay_ids, "worker_id": worker_id})


async def owners_on_host(conn: Conn, host: str) -> list[str]:
    """The worker ids (``host:pid``) of ``host`` that own a replay still going."""
    pattern = host.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + ":%"
    cur = await conn.execute(OWNERS_ON_HOST, (pattern,))
    return [row["worker_id"] for row in await cur.fetchall()]


async def adopt(
    conn: Conn, worker_id: str, *, dead: list[str], stale_seconds: float
) -> list[AdoptedReplayRow]:
    """Take over the replays nobody drives (see ``ADOPT``)."""
    params = {"worker_id": worker_id, "dead": dead, "stale": stale_seconds}
    cur = await conn.execute(ADOPT, params)
    return cast(list[AdoptedReplayRow], await cur.fetchall())


async def release(conn: Conn, replay_ids: list[UUID], worker_id: str) -> None:
    """Let go of replays this process drove, so the next process takes them at once."""
    if replay_ids:
        await conn.execute(RELEASE, {"ids": replay_ids, "worker_id": worker_id})

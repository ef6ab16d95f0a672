"""Usage: what runs used per user, agent, model and UTC day (``usage_daily``), and the
operator's statistics (counts, database size by table)."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal
from uuid import UUID

from storage.db import Conn

# The counts a day's row adds up (``estimated_tokens``: the part of ``total_tokens`` that was
# estimated, as the provider reported none).
COUNTS = ("runs", "input_tokens", "output_tokens", "total_tokens", "estimated_tokens")
GroupBy = Literal["user", "agent", "model"]

# One ended run's usage added to its user's day (UTC), inside the statement that records the
# run's end (storage/runs.py: a CTE over ``finished``, the updated run).
USAGE_ADD = """
INSERT INTO usage_daily AS u (user_id, day, agent_id, model_name, runs, input_tokens,
                              output_tokens, total_tokens, estimated_tokens)
SELECT user_id, (now() AT TIME ZONE 'UTC')::date, agent_id, model_name, 1,
       %(input_tokens)s, %(output_tokens)s, %(total_tokens)s, %(estimated_tokens)s
FROM finished
ON CONFLICT (user_id, day, agent_id, model_name) DO UPDATE SET
    runs = u.runs + 1, input_tokens = u.input_tokens + excluded.input_tokens,
    output_tokens = u.output_tokens + excluded.output_tokens,
    total_tokens = u.total_tokens + excluded.total_tokens,
    estimated_tokens = u.estimated_tokens + excluded.estimated_tokens
"""

_SUMS = """
sum(runs)::bigint AS runs, sum(input_tokens)::bigint AS input_tokens,
sum(output_tokens)::bigint AS output_tokens, sum(total_tokens)::bigint AS total_tokens,
sum(estimated_tokens)::bigint AS estimated_tokens
"""
_IN_RANGE = "day BETWEEN %(from)s AND %(to)s"
# A user's usage per day and model (their agents summed), oldest day first.
USER_DAYS = f"""
SELECT day, model_name, {_SUMS} FROM usage_daily
WHERE user_id = %(user_id)s AND {_IN_RANGE}
GROUP BY day, model_name ORDER BY day, model_name
"""
# Everyone's usage per group; each group's name where it has one (a deleted agent keeps its
# row, soft-deleted; a user's usage goes with their account).
GROUPED: dict[GroupBy, str] = {
    "user": f"""
SELECT g.user_id::text AS key, us.name, us.email, g.runs, g.input_tokens, g.output_tokens,
       g.total_tokens, g.estimated_tokens
FROM (SELECT user_id, {_SUMS} FROM usage_daily WHERE {_IN_RANGE} GROUP BY user_id) g
JOIN users us ON us.id = g.user_id
ORDER BY g.total_tokens DESC, key
""",
    "agent": f"""
SELECT g.agent_id::text AS key, a.name, NULL::text AS email, g.runs, g.input_tokens,
       g.output_tokens, g.total_tokens, g.estimated_tokens
FROM (SELECT agent_id, {_SUMS} FROM usage_daily WHERE {_IN_RANGE} GROUP BY agent_id) g
LEFT JOIN agents a ON a.id = g.agent_id
ORDER BY g.total_tokens DESC, key
""",
    "model": f"""
SELECT model_name AS key, NULL::text AS name, NULL::text AS email, {_SUMS}
FROM usage_daily WHERE {_IN_RANGE} GROUP BY model_name
ORDER BY total_tokens DESC, key
""",
}

COUNT_USERS = "SELECT count(*) AS n FROM users"
COUNT_CHATS = "SELECT count(*) AS n FROM chats"
# Runs created in the range (UTC days), per day and status.
RUNS_PER_DAY = """
SELECT (created_at AT TIME ZONE 'UTC')::date AS day, status, count(*) AS n FROM runs
WHERE created_at >= %(from)s::date AT TIME ZONE 'UTC'
  AND created_at < (%(to)s::date + 1) AT TIME ZONE 'UTC'
GROUP BY day, status ORDER BY day, status
"""
# Every table of the schema (ours and LangGraph's), with its indexes and TOAST.
TABLE_SIZES = """
SELECT tablename AS name,
       pg_total_relation_size((quote_ident(schemaname) || '.' || quote_ident(tablename))::regclass)
           AS bytes
FROM pg_tables WHERE schemaname = current_schema()
ORDER BY bytes DESC, name
"""


def usage_params(usage: dict[str, Any] | None) -> dict[str, int]:
    """``USAGE_ADD``'s parameters for a run's usage (``estimated``: a provider reported none)."""
    usage = usage or {}
    counts = {key: int(usage.get(key, 0)) for key in ("input_tokens", "output_tokens")}
    counts["total_tokens"] = int(usage.get("total_tokens", 0))
    counts["estimated_tokens"] = counts["total_tokens"] if usage.get("estimated") else 0
    return counts


async def user_days(conn: Conn, user_id: UUID, start: date, end: date) -> list[dict[str, Any]]:
    """The user's usage per day and model in ``start..end`` (UTC days, both included)."""
    cur = await conn.execute(USER_DAYS, {"user_id": user_id, "from": start, "to": end})
    return await cur.fetchall()


async def grouped(conn: Conn, group_by: GroupBy, start: date, end: date) -> list[dict[str, Any]]:
    """Everyone's usage in ``start..end`` per user, agent or model, the largest first."""
    cur = await conn.execute(GROUPED[group_by], {"from": start, "to": end})
    return await cur.fetchall()


async def stats(conn: Conn, start: date, end: date) -> dict[str, Any]:
    """Users and chats (now), runs created in ``start..end`` per day and status, and the
    size of every table."""
    users = await (await conn.execute(COUNT_USERS)).fetchone()
    chats = await (await conn.execute(COUNT_CHATS)).fetchone()
    cur = await conn.execute(RUNS_PER_DAY, {"from": start, "to": end})
    runs = await cur.fetchall()
    tables = await (await conn.execute(TABLE_SIZES)).fetchall()
    assert users is not None and chats is not None
    return {"users": users["n"], "chats": chats["n"], "runs": runs, "tables": tables}

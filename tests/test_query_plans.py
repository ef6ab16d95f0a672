"""Every periodic query, every query a chat turn makes on the runs table, the pages of an export
of all chats and the reads of shared chats can use an index: their cost must not grow with the
number of finished runs (or of chats and shares) in the database.

``enable_seqscan = off`` makes the planner take an index whenever one can serve the query (on
tables this small it would otherwise always scan), so a sequential scan left in a plan means
no index can serve it.
"""

from __future__ import annotations

import socket
import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from storage import chats, crons, runs, shares, store, usage, webhooks

ANY_ID = uuid.uuid4()
HOST_PATTERN = socket.gethostname() + ":%"

# (query, parameters): the heartbeat's and recovery's queries, then a turn's.
QUERIES: dict[str, tuple[str, Any]] = {
    "heartbeat": (runs.HEARTBEAT, ([ANY_ID],)),
    "active_on_host": (runs.ACTIVE_ON_HOST, (HOST_PATTERN,)),
    "interrupt_stale": (runs.INTERRUPT_STALE, {"ids": [ANY_ID], "stale": 30}),
    "claim_next": (runs.CLAIM_NEXT, {"worker_id": "w:1"}),
    "claim_pending": (runs.CLAIM_PENDING, {"id": ANY_ID, "worker_id": "w:1"}),
    "active_for_chat": (runs.SELECT_ACTIVE_FOR_CHAT, (ANY_ID,)),
    "active_ids_for_chat": (runs.SELECT_ACTIVE_IDS_FOR_CHAT, (ANY_ID,)),
    "running_for_chat": (runs.SELECT_RUNNING_FOR_CHAT, (ANY_ID,)),
    "needs_closing": (chats.SELECT_NEEDS_CLOSING, {"chat_id": ANY_ID}),
    # A page of GET /chats/export, after the first: it starts where the last one ended.
    "export_page": (
        chats.EXPORT_PAGE,
        {
            "user_id": ANY_ID,
            "after_created": datetime(2026, 1, 1, tzinfo=UTC),
            "after_id": ANY_ID,
            "limit": 50,
        },
    ),
    "run_owned": (runs.SELECT_OWNED, (ANY_ID, ANY_ID)),
    "runs_of_chat": (
        runs.LIST_FOR_CHAT,
        {"chat_id": ANY_ID, "statuses": None, "limit": 20, "offset": 0},
    ),
    "runs_of_chat_by_status": (
        runs.LIST_FOR_CHAT,
        {"chat_id": ANY_ID, "statuses": ["success"], "limit": 20, "offset": 0},
    ),
    # A bulk cancel (POST /runs/cancel) by ids and by status; a thread's stream finding its
    # current run, then each next one.
    "runs_owned_in_chat": (
        runs.SELECT_OWNED_IN_CHAT,
        {"ids": [ANY_ID], "chat_id": ANY_ID, "user_id": ANY_ID},
    ),
    "active_runs_of_user": (
        runs.SELECT_ACTIVE_OF_USER,
        {"statuses": ["pending", "running"], "user_id": ANY_ID},
    ),
    "current_run_of_chat": (runs.SELECT_CURRENT_OF_CHAT, {"chat_id": ANY_ID}),
    "next_run_of_chat": (
        runs.SELECT_NEXT_OF_OWNED_CHAT,
        {
            "chat_id": ANY_ID,
            "user_id": ANY_ID,
            "after_created": datetime(2026, 1, 1, tzinfo=UTC),
            "after_id": ANY_ID,
        },
    ),
    "first_run_of_chat": (
        runs.SELECT_NEXT_OF_OWNED_CHAT,
        {"chat_id": ANY_ID, "user_id": ANY_ID, "after_created": None, "after_id": None},
    ),
    # Every read of a chat (the owner's too) checks for a share; "shared with me"; a link.
    "readable_chat": (shares.SELECT_READABLE, {"chat_id": ANY_ID, "user_id": ANY_ID}),
    "shares_of_chat": (shares.SELECT_SHARES, {"chat_id": ANY_ID, "limit": 50, "offset": 0}),
    "count_shares_of_chat": (shares.COUNT_SHARES, (ANY_ID,)),
    "shared_with": (shares.SELECT_SHARED_WITH, {"user_id": ANY_ID, "limit": 20, "offset": 0}),
    "count_shared_with": (shares.COUNT_SHARED_WITH, (ANY_ID,)),
    "link_by_token": (shares.SELECT_LINK_BY_HASH, (b"hash",)),
    # The memory re-indexer's look for work (every few seconds in every process), and whether
    # a memory search may miss memories still queued.
    "claim_reindex": (store.CLAIM_REINDEX, {"model": "m", "dims": 8, "limit": 32}),
    "reindexing_prefix": (
        store.REINDEXING_PREFIX,
        {"prefix": f"users.{ANY_ID}.memories", "pattern": f"users.{ANY_ID}.memories.%"},
    ),
    # Every process looks for due webhook deliveries every few seconds and after each run;
    # GET run reads a run's delivery; each attempt is recorded.
    "claim_webhooks": (webhooks.CLAIM_DUE, {"limit": 16, "lease": 15.0}),
    "webhook_states": (webhooks.SELECT_STATES, ([ANY_ID],)),
    "record_webhook_attempt": (
        webhooks.RECORD_ATTEMPT,
        {"run_id": ANY_ID, "attempt": "{}", "status": "pending", "retry_in": 5.0},
    ),
    "delete_settled_webhook": (webhooks.DELETE_SETTLED, (ANY_ID,)),
    # The cron schedulers' rounds (every few seconds in every process), and a user's crons.
    "claim_due_crons": (crons.CLAIM_DUE, {"limit": 100}),
    "seconds_until_a_cron_is_due": (crons.SECONDS_UNTIL_DUE, None),
    "search_crons": (
        crons.SEARCH.format(order="created_at DESC NULLS LAST, id DESC"),
        {
            "user_id": ANY_ID,
            "agent_id": None,
            "slug": None,
            "chat_id": None,
            "enabled": None,
            "metadata": Jsonb({}),
            "limit": 10,
            "offset": 0,
        },
    ),
    "finish_with_summary": (
        runs.FINISH_WITH_SUMMARY,
        {
            "id": ANY_ID,
            "status": "success",
            "error": None,
            "usage": None,
            "added": 2,
            "message_count": None,
            "title": None,
            "thread_status": "idle",
            # Its usage added to the user's day (usage_daily, by its primary key).
            **usage.usage_params({"input_tokens": 3, "output_tokens": 5, "total_tokens": 8}),
        },
    ),
    # A user's usage report (GET /users/me/usage).
    "usage_of_a_user": (
        usage.USER_DAYS,
        {
            "user_id": ANY_ID,
            "from": datetime(2026, 1, 1, tzinfo=UTC).date(),
            "to": datetime(2026, 1, 30, tzinfo=UTC).date(),
        },
    ),
}


def _seq_scans(plan: dict[str, Any]) -> list[str]:
    found = []
    if plan.get("Node Type") == "Seq Scan":
        found.append(plan.get("Relation Name", "?"))
    for child in plan.get("Plans", []):
        found.extend(_seq_scans(child))
    return found


@pytest.mark.parametrize("name", list(QUERIES))
async def test_the_query_uses_an_index(database_url: str, name: str) -> None:
    query, params = QUERIES[name]
    async with await psycopg.AsyncConnection.connect(
        database_url, autocommit=True, row_factory=dict_row
    ) as conn:
        await conn.execute("SET enable_seqscan = off")
        cur = await conn.execute("EXPLAIN (FORMAT JSON) " + query, params)
        plan = (await cur.fetchone())["QUERY PLAN"][0]["Plan"]
    assert _seq_scans(plan) == [], plan

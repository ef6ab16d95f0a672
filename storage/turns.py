"""What starting a run needs, in one round trip: the user, their interests, the chat, the agent.

Every message starts a run, and these were four queries (the user for authentication, the
chat, its agent, the user's interests) before the run was even recorded. Read together they
are one statement, and the caller learns from one row what it would have learnt from four.
An Agent Protocol run also binds a thread that has no agent yet in that same statement.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast
from uuid import UUID

from storage.agents import AGENT_COLUMNS
from storage.chats import CHAT_COLUMNS
from storage.db import Conn
from storage.rows import AgentRow, ChatRow, UserRow
from storage.users import USER_COLUMNS


def _names(columns: str) -> list[str]:
    return [c.strip() for c in columns.split(",") if c.strip()]


_PARTS = {"user": ("u", _names(USER_COLUMNS)), "chat": ("c", _names(CHAT_COLUMNS)),
          "agent": ("a", _names(AGENT_COLUMNS))}  # fmt: skip
_SELECT = ",\n       ".join(
    f"{alias}.{column} AS {part}__{column}"
    for part, (alias, columns) in _PARTS.items()
    for column in columns
)
# The same order as ``users.interests``: the personalized prompt lists them this way.
_INTERESTS = """
CASE WHEN u.onboarding_completed THEN ARRAY(
    SELECT ia.name FROM user_interests ui JOIN interest_areas ia ON ia.id = ui.interest_area_id
    WHERE ui.user_id = u.id ORDER BY ui.priority DESC, ia.name) END AS interest_names
"""
# A message to a chat: its agent, retired or not (the caller decides what a retired one means).
SELECT_FOR_MESSAGE = f"""
SELECT {_SELECT}, {_INTERESTS}
FROM users u
LEFT JOIN chats c ON c.id = %(chat_id)s AND c.user_id = u.id
LEFT JOIN agents a ON a.id = c.agent_id
WHERE u.id = %(user_id)s
"""
_CHAT = ", ".join("c." + column for column in _PARTS["chat"][1])
# An Agent Protocol run: the live assistant it names (by id or by graph name) and the user's
# thread, which is bound to that assistant in the same statement if it had no agent yet and
# is not archived (as the official server does, with graph_id and assistant_id in its
# metadata). A thread that is already bound writes nothing.
SELECT_FOR_PROTOCOL_RUN = f"""
WITH agent AS (
    SELECT {AGENT_COLUMNS} FROM agents
    WHERE (id = %(agent_id)s OR slug = %(slug)s) AND deleted_at IS NULL
), bound AS (
    UPDATE chats c SET agent_id = agent.id,
        metadata = jsonb_build_object('graph_id', agent.slug, 'assistant_id', agent.id::text)
                   || c.metadata
    FROM agent
    WHERE c.id = %(chat_id)s AND c.user_id = %(user_id)s AND c.agent_id IS NULL
      AND c.status <> 'archived'
    RETURNING {_CHAT}
), chat AS (
    SELECT * FROM bound
    UNION ALL
    SELECT {_CHAT} FROM chats c
    WHERE c.id = %(chat_id)s AND c.user_id = %(user_id)s AND NOT EXISTS (SELECT 1 FROM bound)
)
SELECT {_SELECT}, {_INTERESTS}
FROM users u
LEFT JOIN chat c ON true
LEFT JOIN agent a ON true
WHERE u.id = %(user_id)s
"""


@dataclass(frozen=True)
class Turn:
    """The rows a new run starts from; ``chat`` and ``agent`` are ``None`` when not found."""

    user: UserRow
    chat: ChatRow | None
    agent: AgentRow | None
    interests: list[str]


def _split(row: dict[str, Any]) -> Turn:
    parts: dict[str, dict[str, Any]] = {part: {} for part in _PARTS}
    for key, value in row.items():
        part, _, column = key.partition("__")
        if column:
            parts[part][column] = value
    return Turn(
        user=cast(UserRow, parts["user"]),
        chat=cast(ChatRow, parts["chat"]) if parts["chat"]["id"] is not None else None,
        agent=cast(AgentRow, parts["agent"]) if parts["agent"]["id"] is not None else None,
        interests=row["interest_names"] or [],
    )


async def for_message(conn: Conn, user_id: UUID, chat_id: UUID) -> Turn | None:
    """The user (``None`` if there is none), their chat ``chat_id`` and its agent."""
    cur = await conn.execute(SELECT_FOR_MESSAGE, {"user_id": user_id, "chat_id": chat_id})
    row = await cur.fetchone()
    return _split(row) if row is not None else None


async def for_protocol_run(
    conn: Conn, user_id: UUID, chat_id: UUID | None, assistant: UUID | str
) -> Turn | None:
    """The user (``None`` if there is none), their thread ``chat_id`` (bound to the agent if
    it had none) and the live agent ``assistant`` names (its id, or its graph name)."""
    params = {
        "user_id": user_id,
        "chat_id": chat_id,
        "agent_id": assistant if isinstance(assistant, UUID) else None,
        "slug": assistant if isinstance(assistant, str) else None,
    }
    cur = await conn.execute(SELECT_FOR_PROTOCOL_RUN, params)
    row = await cur.fetchone()
    return _split(row) if row is not None else None

"""Agents: the configured assistants users chat with.

Deletion is soft (``deleted_at``): chats that already talk to an agent keep a valid reference
and stay readable, while listings and new chats no longer see it.
"""

from __future__ import annotations

from typing import Any, cast
from uuid import UUID

from psycopg.types.json import Jsonb

from storage.db import Conn
from storage.rows import AgentRow

AGENT_COLUMNS = """
    id, slug, name, description, system_prompt, avatar_url, model_name, tools_enabled,
    tools_requiring_approval, interest_area_ids, kind, version, created_by, created_at,
    updated_at, deleted_at
"""

SELECT_LIVE = f"SELECT {AGENT_COLUMNS} FROM agents WHERE id = %s AND deleted_at IS NULL"
SELECT_ANY = f"SELECT {AGENT_COLUMNS} FROM agents WHERE id = %s"
SELECT_LIVE_BY_SLUG = f"SELECT {AGENT_COLUMNS} FROM agents WHERE slug = %s AND deleted_at IS NULL"
# The agent an imported chat names: the one with its id, else the one with its slug (another
# server's agents have other ids, the same slugs); retired ones too, so the caller can say so.
SELECT_BY_ID_OR_SLUG = f"""
SELECT {AGENT_COLUMNS} FROM agents WHERE id = %(id)s OR slug = %(slug)s
ORDER BY id = %(id)s DESC NULLS LAST LIMIT 1
"""
COUNT_LIVE = "SELECT count(*) AS n FROM agents WHERE deleted_at IS NULL"
LIST_BY_NAME = f"""
SELECT {AGENT_COLUMNS} FROM agents WHERE deleted_at IS NULL
ORDER BY name, id LIMIT %(limit)s OFFSET %(offset)s
"""
# Agents sharing more of the user's interest areas come first; among equal overlaps, the one
# matching the interests the user ranked higher wins.
LIST_RECOMMENDED = f"""
SELECT {AGENT_COLUMNS}, m.overlap, m.weight
FROM agents a
CROSS JOIN LATERAL (
    SELECT count(ui.interest_area_id) AS overlap, coalesce(sum(ui.priority), 0) AS weight
    FROM user_interests ui
    WHERE ui.user_id = %(user_id)s AND ui.interest_area_id = ANY(a.interest_area_ids)
) m
WHERE a.deleted_at IS NULL
ORDER BY m.overlap DESC, m.weight DESC, a.name, a.id
LIMIT %(limit)s OFFSET %(offset)s
"""
# The Agent Protocol's assistant search: by graph id (slug) and a piece of the name.
_MATCHING = """deleted_at IS NULL AND (%(slug)s::text IS NULL OR slug = %(slug)s)
  AND (%(name)s::text IS NULL OR strpos(lower(name), lower(%(name)s)) > 0)"""
# Sort keys map to columns from code, never from input; names sort by code point.
SEARCH_ORDER = {
    "id": "id",
    "slug": 'slug COLLATE "C"',
    "name": 'name COLLATE "C"',
    "created_at": "created_at",
    "updated_at": "updated_at",
}
SEARCH = f"""
SELECT {AGENT_COLUMNS} FROM agents WHERE {_MATCHING}
ORDER BY {{order}} {{direction}}, id {{direction}} LIMIT %(limit)s OFFSET %(offset)s
"""
COUNT_MATCHING = f"SELECT count(*) AS n FROM agents WHERE {_MATCHING}"
SLUG_TAKEN = "SELECT 1 FROM agents WHERE slug = %s"
INSERT_AGENT = f"""
INSERT INTO agents (slug, name, description, system_prompt, avatar_url, model_name,
                    tools_enabled, tools_requiring_approval, interest_area_ids, created_by)
VALUES (%(slug)s, %(name)s, %(description)s, %(system_prompt)s, %(avatar_url)s, %(model_name)s,
        %(tools_enabled)s, %(tools_requiring_approval)s, %(interest_area_ids)s, %(created_by)s)
RETURNING {AGENT_COLUMNS}
"""
SOFT_DELETE = """
UPDATE agents SET deleted_at = now(), updated_at = now(), version = version + 1
WHERE id = %s AND deleted_at IS NULL
"""
COUNT_ALL = "SELECT count(*) AS n FROM agents"
# A graph of langgraph.json, as an agent: added once, found again by its slug on every start.
INSERT_GRAPH = f"""
INSERT INTO agents (slug, name, description, kind) VALUES (%(slug)s, %(name)s, %(description)s,
                                                           'graph')
ON CONFLICT (slug) DO NOTHING
RETURNING {AGENT_COLUMNS}
"""
# Taken by the seeding transaction so two replicas starting at once cannot both seed.
LOCK_TABLE = "LOCK TABLE agents IN SHARE ROW EXCLUSIVE MODE"

# Columns an update may set; keys come from code, never from input.
UPDATABLE = (
    "name",
    "description",
    "system_prompt",
    "avatar_url",
    "model_name",
    "tools_enabled",
    "tools_requiring_approval",
    "interest_area_ids",
)


JSON_COLUMNS = ("tools_enabled", "tools_requiring_approval")


def _params(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: Jsonb(v) if k in JSON_COLUMNS else v for k, v in fields.items()}


async def get(conn: Conn, agent_id: UUID, *, include_deleted: bool = False) -> AgentRow | None:
    cur = await conn.execute(SELECT_ANY if include_deleted else SELECT_LIVE, (agent_id,))
    return cast(AgentRow | None, await cur.fetchone())


async def get_by_slug(conn: Conn, slug: str) -> AgentRow | None:
    cur = await conn.execute(SELECT_LIVE_BY_SLUG, (slug,))
    return cast(AgentRow | None, await cur.fetchone())


async def by_id_or_slug(conn: Conn, agent_id: UUID | None, slug: str | None) -> AgentRow | None:
    """The agent with id ``agent_id``, or else with slug ``slug`` (retired or not)."""
    cur = await conn.execute(SELECT_BY_ID_OR_SLUG, {"id": agent_id, "slug": slug})
    return cast(AgentRow | None, await cur.fetchone())


async def count(conn: Conn) -> int:
    cur = await conn.execute(COUNT_LIVE)
    row = await cur.fetchone()
    assert row is not None
    return row["n"]


async def list_page(
    conn: Conn, *, limit: int, offset: int, recommended_for: UUID | None = None
) -> list[AgentRow]:
    """Live agents, by name, or by overlap with ``recommended_for``'s interests when given
    (those rows also have ``overlap`` and ``weight``)."""
    if recommended_for is None:
        cur = await conn.execute(LIST_BY_NAME, {"limit": limit, "offset": offset})
    else:
        cur = await conn.execute(
            LIST_RECOMMENDED, {"limit": limit, "offset": offset, "user_id": recommended_for}
        )
    return cast(list[AgentRow], await cur.fetchall())


async def search(
    conn: Conn,
    *,
    slug: str | None,
    name: str | None,
    order: str,
    descending: bool,
    limit: int,
    offset: int,
) -> list[AgentRow]:
    """Live agents with ``slug`` and a name holding ``name`` (either ``None``: any), sorted
    by ``order`` (a key of ``SEARCH_ORDER``)."""
    query = SEARCH.format(order=SEARCH_ORDER[order], direction="DESC" if descending else "ASC")
    params = {"slug": slug, "name": name, "limit": limit, "offset": offset}
    cur = await conn.execute(query, params)
    return cast(list[AgentRow], await cur.fetchall())


async def count_matching(conn: Conn, *, slug: str | None, name: str | None) -> int:
    cur = await conn.execute(COUNT_MATCHING, {"slug": slug, "name": name})
    row = await cur.fetchone()
    assert row is not None
    return row["n"]


async def free_slug(conn: Conn, base: str) -> str:
    """``base``, or ``base-2``, ``base-3`` … whichever no agent (live or deleted) uses yet."""
    candidate, n = base, 1
    while True:
        cur = await conn.execute(SLUG_TAKEN, (candidate,))
        if await cur.fetchone() is None:
            return candidate
        n += 1
        candidate = f"{base}-{n}"


async def ensure_graph(conn: Conn, *, slug: str, name: str, description: str) -> AgentRow | None:
    """The agent serving graph ``slug`` (added the first time); ``None`` when the slug is an
    agent's of another kind."""
    cur = await conn.execute(INSERT_GRAPH, {"slug": slug, "name": name, "description": description})
    row = await cur.fetchone() or await by_id_or_slug(conn, None, slug)
    return cast(AgentRow, row) if row is not None and row["kind"] == "graph" else None


async def insert(conn: Conn, fields: dict[str, Any]) -> AgentRow:
    cur = await conn.execute(INSERT_AGENT, _params(fields))
    row = await cur.fetchone()
    assert row is not None
    return cast(AgentRow, row)


async def update(conn: Conn, agent_id: UUID, fields: dict[str, Any]) -> AgentRow | None:
    """Apply ``fields`` to a live agent and bump its version; ``None`` if there is no such agent."""
    unknown = set(fields) - set(UPDATABLE)
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    assignments = "".join(f"{column} = %({column})s, " for column in fields)
    params = _params(fields)
    params["id"] = agent_id
    cur = await conn.execute(
        f"UPDATE agents SET {assignments}version = version + 1, updated_at = now() "
        f"WHERE id = %(id)s AND deleted_at IS NULL RETURNING {AGENT_COLUMNS}",
        params,
    )
    return cast(AgentRow | None, await cur.fetchone())


async def soft_delete(conn: Conn, agent_id: UUID) -> bool:
    cur = await conn.execute(SOFT_DELETE, (agent_id,))
    return cur.rowcount == 1


async def count_all(conn: Conn) -> int:
    """Agents ever created, deleted ones included."""
    cur = await conn.execute(COUNT_ALL)
    row = await cur.fetchone()
    assert row is not None
    return row["n"]


async def lock_table(conn: Conn) -> None:
    """Block concurrent inserts until the current transaction ends."""
    await conn.execute(LOCK_TABLE)

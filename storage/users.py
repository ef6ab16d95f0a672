"""Users, their professional profile and their interests."""

from __future__ import annotations

from typing import Any, cast
from uuid import UUID

from psycopg.types.json import Jsonb

from storage.db import Conn
from storage.rows import UserInterestRow, UserRow

USER_COLUMNS = """
    id, name, email, role, password_hash, created_at, updated_at, professional_role, organization,
    experience_level, preferred_interaction_style, onboarding_completed, onboarding_data
"""

INSERT_USER = f"""
INSERT INTO users (name, email, password_hash, role)
VALUES (%(name)s, %(email)s, %(password_hash)s, %(role)s)
ON CONFLICT DO NOTHING
RETURNING {USER_COLUMNS}
"""
SELECT_USER_BY_ID = f"SELECT {USER_COLUMNS} FROM users WHERE id = %s"
SELECT_USER_BY_EMAIL = f"SELECT {USER_COLUMNS} FROM users WHERE lower(email) = lower(%s)"
# The row locked against every insert that references it (a chat's, a run's, a refresh
# token's foreign key check takes a key-share lock on it), until the transaction ends.
LOCK_USER = "SELECT id FROM users WHERE id = %s FOR UPDATE"
DELETE_USER = "DELETE FROM users WHERE id = %s"
UPDATE_ROLE = f"""
UPDATE users SET role = %s, updated_at = now() WHERE id = %s RETURNING {USER_COLUMNS}
"""

# Only these columns can be changed by update_profile; keys come from code, never from input.
PROFILE_COLUMNS = (
    "professional_role",
    "organization",
    "experience_level",
    "preferred_interaction_style",
    "onboarding_completed",
    "onboarding_data",
)

SELECT_INTERESTS = """
SELECT ia.id, ia.slug, ia.name, ui.priority
FROM user_interests ui JOIN interest_areas ia ON ia.id = ui.interest_area_id
WHERE ui.user_id = %s
ORDER BY ui.priority DESC, ia.name
"""
DELETE_INTERESTS = "DELETE FROM user_interests WHERE user_id = %s"
INSERT_INTEREST = """
INSERT INTO user_interests (user_id, interest_area_id, priority) VALUES (%s, %s, %s)
"""


async def insert(
    conn: Conn, *, name: str, email: str, password_hash: str, role: str = "user"
) -> UserRow | None:
    """Create a user; ``None`` when the email is already taken (case-insensitively)."""
    cur = await conn.execute(
        INSERT_USER, {"name": name, "email": email, "password_hash": password_hash, "role": role}
    )
    return cast(UserRow | None, await cur.fetchone())


async def get(conn: Conn, user_id: UUID) -> UserRow | None:
    cur = await conn.execute(SELECT_USER_BY_ID, (user_id,))
    return cast(UserRow | None, await cur.fetchone())


async def get_by_email(conn: Conn, email: str) -> UserRow | None:
    cur = await conn.execute(SELECT_USER_BY_EMAIL, (email,))
    return cast(UserRow | None, await cur.fetchone())


async def lock(conn: Conn, user_id: UUID) -> bool:
    """Lock the user's row until the transaction ends; ``False`` when there is none.

    Run it inside a transaction: nothing that references the user (a chat, a run, a refresh
    token) can be inserted meanwhile, and reads after it see every such row committed before.
    """
    cur = await conn.execute(LOCK_USER, (user_id,))
    return await cur.fetchone() is not None


async def delete(conn: Conn, user_id: UUID) -> bool:
    """Delete the user. Their refresh tokens, interests, chats (with their runs, shares,
    feedback, replays and files), their shares of others' chats and their replays go with the
    row (``ON DELETE CASCADE``); the agents they made and the agent documents they uploaded
    stay, with no author (``ON DELETE SET NULL``)."""
    cur = await conn.execute(DELETE_USER, (user_id,))
    return cur.rowcount == 1


async def set_role(conn: Conn, user_id: UUID, role: str) -> UserRow:
    cur = await conn.execute(UPDATE_ROLE, (role, user_id))
    row = await cur.fetchone()
    assert row is not None
    return cast(UserRow, row)


async def update_profile(conn: Conn, user_id: UUID, fields: dict[str, Any]) -> None:
    """Set the given profile columns (a subset of ``PROFILE_COLUMNS``)."""
    unknown = set(fields) - set(PROFILE_COLUMNS)
    if unknown:
        raise ValueError(f"not profile columns: {sorted(unknown)}")
    if not fields:
        return
    assignments = ", ".join(f"{column} = %({column})s" for column in fields)
    params = {
        k: Jsonb(v) if k == "onboarding_data" and v is not None else v for k, v in fields.items()
    }
    params["id"] = user_id
    await conn.execute(
        f"UPDATE users SET {assignments}, updated_at = now() WHERE id = %(id)s",
        params,
    )


async def interests(conn: Conn, user_id: UUID) -> list[UserInterestRow]:
    """The user's interest areas, highest priority first."""
    cur = await conn.execute(SELECT_INTERESTS, (user_id,))
    return cast(list[UserInterestRow], await cur.fetchall())


async def replace_interests(conn: Conn, user_id: UUID, priorities: dict[UUID, int]) -> None:
    """Replace the user's interests with ``{interest_area_id: priority}``.

    Run it inside a transaction: it deletes before it inserts.
    """
    await conn.execute(DELETE_INTERESTS, (user_id,))
    async with conn.cursor() as cur:
        await cur.executemany(
            INSERT_INTEREST, [(user_id, area_id, prio) for area_id, prio in priorities.items()]
        )

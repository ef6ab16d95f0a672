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

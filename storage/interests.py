"""The interest-area catalog."""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast
from uuid import UUID

from storage.db import Conn
from storage.rows import InterestAreaRow

SELECT_ALL = "SELECT id, slug, name, description FROM interest_areas ORDER BY name"
SELECT_EXISTING_IDS = "SELECT id FROM interest_areas WHERE id = ANY(%s)"
SELECT_IDS_BY_SLUG = "SELECT slug, id FROM interest_areas WHERE slug = ANY(%s)"


async def list_all(conn: Conn) -> list[InterestAreaRow]:
    cur = await conn.execute(SELECT_ALL)
    return cast(list[InterestAreaRow], await cur.fetchall())


async def missing_ids(conn: Conn, ids: Iterable[UUID]) -> list[UUID]:
    """The ids among ``ids`` that name no interest area, in the order given."""
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return []
    cur = await conn.execute(SELECT_EXISTING_IDS, (wanted,))
    found = {row["id"] for row in await cur.fetchall()}
    return [i for i in wanted if i not in found]


async def ids_by_slug(conn: Conn, slugs: Iterable[str]) -> dict[str, UUID]:
    cur = await conn.execute(SELECT_IDS_BY_SLUG, (list(slugs),))
    return {row["slug"]: row["id"] for row in await cur.fetchall()}

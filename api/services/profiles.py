"""Onboarding and the professional profile."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from api.errors import NotFound
from api.schemas.onboarding import OnboardingQuestionnaireDTO, ProfessionalProfileUpdateDTO
from storage import interests as interests_store
from storage import users as users_store
from storage.db import Conn
from storage.rows import InterestAreaRow, UserRow

DEFAULT_PRIORITY = 3


async def interest_areas(conn: Conn) -> list[InterestAreaRow]:
    """The interest areas users choose from and agents are tagged with."""
    return await interests_store.list_all(conn)


async def profile(conn: Conn, user: UserRow) -> dict[str, Any]:
    """The user's professional profile as the API shows it."""
    data = user["onboarding_data"] or {}
    return {
        "professional_role": user["professional_role"],
        "organization": user["organization"],
        "experience_level": user["experience_level"],
        "preferred_interaction_style": user["preferred_interaction_style"],
        "interests": await users_store.interests(conn, user["id"]),
        "use_cases": data.get("use_cases"),
        "goals": data.get("goals"),
        "onboarding_completed": user["onboarding_completed"],
        "completed_at": data.get("completed_at"),
    }


async def check_areas(conn: Conn, ids: list[UUID]) -> None:
    """404 naming the ids that are no interest area (of an agent, a questionnaire, a profile)."""
    missing = await interests_store.missing_ids(conn, ids)
    if missing:
        raise NotFound(
            "Unknown interest area id(s): " + ", ".join(str(i) for i in missing),
            code="interest_area_not_found",
        )


async def complete_onboarding(
    conn: Conn, user_id: UUID, dto: OnboardingQuestionnaireDTO
) -> dict[str, Any]:
    """Store the questionnaire: profile columns, interests and the raw answers, atomically."""
    area_ids = list(dict.fromkeys(dto.interest_area_ids))
    async with conn.transaction():
        await check_areas(conn, area_ids)
        answers = dto.model_dump(mode="json")
        answers["interest_area_ids"] = [str(i) for i in area_ids]
        answers["completed_at"] = datetime.now(UTC).isoformat()
        await users_store.update_profile(
            conn,
            user_id,
            {
                "professional_role": dto.professional_role.value,
                "organization": dto.organization,
                "experience_level": dto.experience_level.value,
                "preferred_interaction_style": dto.preferred_interaction_style.value,
                "onboarding_completed": True,
                "onboarding_data": answers,
            },
        )
        await users_store.replace_interests(
            conn, user_id, dict.fromkeys(area_ids, DEFAULT_PRIORITY)
        )
        user = await users_store.get(conn, user_id)
        assert user is not None
        return await profile(conn, user)


async def update_profile(
    conn: Conn, user: UserRow, dto: ProfessionalProfileUpdateDTO
) -> dict[str, Any]:
    """Apply a partial profile update; interests, when given, replace the whole set."""
    given = dto.model_fields_set
    columns: dict[str, Any] = {}
    for name in ("professional_role", "experience_level", "preferred_interaction_style"):
        if name in given:
            columns[name] = getattr(dto, name).value
    if "organization" in given:
        columns["organization"] = dto.organization
    priorities: dict[UUID, int] | None = None
    if dto.interests is not None:
        priorities = {i.interest_area_id: i.priority for i in dto.interests}
    elif dto.interest_area_ids is not None:
        priorities = dict.fromkeys(dto.interest_area_ids, DEFAULT_PRIORITY)

    # The stored answers follow the profile, so they never contradict it.
    data = dict(user["onboarding_data"] or {})
    for name in ("use_cases", "goals"):
        if name in given:
            data[name] = getattr(dto, name)
    if priorities is not None:
        data["interest_area_ids"] = [str(i) for i in priorities]
    if data != (user["onboarding_data"] or {}):
        columns["onboarding_data"] = data

    async with conn.transaction():
        if priorities is not None:
            await check_areas(conn, list(priorities))
            await users_store.replace_interests(conn, user["id"], priorities)
        await users_store.update_profile(conn, user["id"], columns)
        fresh = await users_store.get(conn, user["id"])
        assert fresh is not None
        return await profile(conn, fresh)

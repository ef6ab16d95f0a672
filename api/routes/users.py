"""``/users/me``: the signed-in user, onboarding and the professional profile."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from fastapi import APIRouter

from api.deps import CurrentUser, Pool
from api.openapi import errors
from api.schemas.auth import UserOut
from api.schemas.onboarding import (
    ExperienceLevelEnum,
    InteractionStyleEnum,
    OnboardingOptions,
    OnboardingQuestionnaireDTO,
    OnboardingResponse,
    OnboardingStatus,
    ProfessionalProfile,
    ProfessionalProfileUpdateDTO,
    ProfessionalRoleEnum,
)
from api.services import auth as auth_service
from api.services import profiles

router = APIRouter(prefix="/users/me", tags=["users"])


def _options(enum: type[StrEnum]) -> list[dict[str, str]]:
    return [{"value": m.value, "label": m.value.replace("_", " ").capitalize()} for m in enum]


@router.get("", response_model=UserOut)
async def me(user: CurrentUser) -> dict[str, Any]:
    """The signed-in user."""
    return auth_service.user_out(user)


@router.post("/onboarding", response_model=OnboardingResponse, responses=errors(404))
async def complete_onboarding(
    body: OnboardingQuestionnaireDTO, user: CurrentUser, pool: Pool
) -> dict[str, Any]:
    """Complete the onboarding questionnaire (again, if it was completed before)."""
    async with pool.connection() as conn:
        profile = await profiles.complete_onboarding(conn, user["id"], body)
    return {"message": "Onboarding completed successfully", "professional_profile": profile}


@router.get("/onboarding-status", response_model=OnboardingStatus)
async def onboarding_status(user: CurrentUser, pool: Pool) -> dict[str, Any]:
    async with pool.connection() as conn:
        profile = await profiles.profile(conn, user)
    return {"onboarding_completed": user["onboarding_completed"], "professional_profile": profile}


@router.get("/onboarding-options", response_model=OnboardingOptions)
async def onboarding_options(_: CurrentUser, pool: Pool) -> dict[str, Any]:
    """Every value the questionnaire accepts, for building its form."""
    async with pool.connection() as conn:
        areas = await profiles.interest_areas(conn)
    return {
        "professional_roles": _options(ProfessionalRoleEnum),
        "experience_levels": _options(ExperienceLevelEnum),
        "interaction_styles": _options(InteractionStyleEnum),
        "interest_areas": areas,
    }


@router.get("/professional-profile", response_model=ProfessionalProfile)
async def get_professional_profile(user: CurrentUser, pool: Pool) -> dict[str, Any]:
    async with pool.connection() as conn:
        return await profiles.profile(conn, user)


@router.put("/professional-profile", response_model=ProfessionalProfile, responses=errors(404))
async def update_professional_profile(
    body: ProfessionalProfileUpdateDTO, user: CurrentUser, pool: Pool
) -> dict[str, Any]:
    """Change some profile fields; fields left out keep their value."""
    async with pool.connection() as conn:
        return await profiles.update_profile(conn, user, body)

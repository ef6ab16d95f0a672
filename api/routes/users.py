"""``/users/me``: the signed-in user, onboarding, the professional profile, and deleting the
account."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from fastapi import APIRouter, Request, Response, status

from api.deps import CurrentUser, Pool, State
from api.openapi import errors
from api.schemas.auth import AccountDeletion, UserOut
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
from api.services import accounts as accounts_service
from api.services import auth as auth_service
from api.services import profiles

router = APIRouter(prefix="/users/me", tags=["users"])

_REFUSED = "The password is not the account's (`wrong_password`); nothing changed"


def _options(enum: type[StrEnum]) -> list[dict[str, str]]:
    return [{"value": m.value, "label": m.value.replace("_", " ").capitalize()} for m in enum]


@router.get("", response_model=UserOut)
async def me(user: CurrentUser) -> dict[str, Any]:
    """The signed-in user."""
    return auth_service.user_out(user)


@router.delete(
    "",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={**errors(409, 429), 403: {**errors(403)[403], "description": _REFUSED}},
)
async def delete_account(
    body: AccountDeletion, request: Request, user: CurrentUser, state: State
) -> Response:
    """Delete your account and everything of yours: every chat (as `DELETE /chats/{id}` does:
    runs stopped, history, runs, files, shares, feedback, replays), your memories and store
    items, your refresh tokens, your profile. The agents and agent documents you made as an
    admin stay. Your tokens stop working at once; the email can register again.

    The password is asked again: a wrong one is a 403 `wrong_password` and changes nothing;
    it counts as a failed login for your email from this address (429 past the login
    limits)."""
    client = auth_service.client_key(request.client.host if request.client else None)
    await accounts_service.delete(state, user, body.password, client=client)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


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

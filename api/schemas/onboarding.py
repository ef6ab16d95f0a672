"""The onboarding questionnaire (the product spec's OnboardingQuestionnaireDTO) and the profile."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.schemas.common import (
    JsonInt,
    NoNul,
    NotBlank,
    NotNull,
    RequestModel,
    UniqueItems,
    text_rules,
)


class ProfessionalRoleEnum(StrEnum):
    lawyer = "lawyer"
    paralegal = "paralegal"
    software_engineer = "software_engineer"
    data_scientist = "data_scientist"
    product_manager = "product_manager"
    designer = "designer"
    marketer = "marketer"
    sales_representative = "sales_representative"
    financial_analyst = "financial_analyst"
    accountant = "accountant"
    consultant = "consultant"
    entrepreneur = "entrepreneur"
    teacher = "teacher"
    researcher = "researcher"
    healthcare_professional = "healthcare_professional"
    hr_professional = "hr_professional"
    writer = "writer"
    manager = "manager"
    executive = "executive"
    student = "student"
    other = "other"


class ExperienceLevelEnum(StrEnum):
    beginner = "beginner"
    intermediate = "intermediate"
    advanced = "advanced"
    expert = "expert"


class InteractionStyleEnum(StrEnum):
    formal = "formal"
    casual = "casual"
    concise = "concise"
    detailed = "detailed"
    technical = "technical"
    friendly = "friendly"


UseCase = Annotated[str, text_rules(min_length=1, max_length=200), NotBlank]
Organization = Annotated[str, text_rules(max_length=200), NoNul]
Goals = Annotated[str, text_rules(max_length=1000), NoNul]


class OnboardingQuestionnaireDTO(RequestModel):
    """Data Transfer Object for user onboarding questionnaire."""

    professional_role: ProfessionalRoleEnum = Field(description="User's professional role")
    organization: Organization | None = Field(None, description="User's organization")
    experience_level: ExperienceLevelEnum = Field(description="User's experience level")
    interest_area_ids: list[UUID] = Field(
        min_length=1, max_length=50, description="User's interest area IDs"
    )
    preferred_interaction_style: InteractionStyleEnum = Field(
        description="Preferred interaction style"
    )
    use_cases: list[UseCase] | None = Field(
        None, max_length=20, description="Specific use cases for AI agents"
    )
    goals: Goals | None = Field(None, description="User's goals with AI agents")

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "professional_role": "lawyer",
                "organization": "ABC Law Firm",
                "experience_level": "intermediate",
                "interest_area_ids": ["<uuid from GET /interest-areas>"],
                "preferred_interaction_style": "formal",
                "use_cases": ["Legal document review", "Case law research"],
                "goals": "Improve efficiency in legal research and document analysis",
            }
        },
    )


class InterestPriority(RequestModel):
    interest_area_id: UUID
    priority: JsonInt = Field(3, ge=1, le=5)


class ProfessionalProfileUpdateDTO(RequestModel):
    """A partial update: only the fields present change; ``null`` clears an optional field.

    Interests are given either as ``interest_area_ids`` (priority 3 each) or as ``interests``
    with explicit priorities; either replaces the whole set.
    """

    model_config = ConfigDict(
        json_schema_extra={"not": {"required": ["interest_area_ids", "interests"]}}
    )

    professional_role: Annotated[ProfessionalRoleEnum | None, NotNull] = None
    organization: Organization | None = None
    experience_level: Annotated[ExperienceLevelEnum | None, NotNull] = None
    preferred_interaction_style: Annotated[InteractionStyleEnum | None, NotNull] = None
    interest_area_ids: Annotated[list[UUID] | None, NotNull, UniqueItems] = Field(
        None, min_length=1, max_length=50
    )
    interests: Annotated[list[InterestPriority] | None, NotNull] = Field(
        None,
        min_length=1,
        max_length=50,
        description="An interest area given more than once takes its last priority",
    )
    use_cases: list[UseCase] | None = Field(None, max_length=20)
    goals: Goals | None = None

    @model_validator(mode="after")
    def _check(self) -> ProfessionalProfileUpdateDTO:
        fields = self.model_fields_set
        if "interest_area_ids" in fields and "interests" in fields:
            raise ValueError("give either interest_area_ids or interests, not both")
        for name in (
            "professional_role",
            "experience_level",
            "preferred_interaction_style",
            "interest_area_ids",
            "interests",
        ):
            if name in fields and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        if self.interests is not None:
            # An interest area given twice takes its last priority.
            last = {i.interest_area_id: i for i in self.interests}
            self.interests = list(last.values())
        return self


class InterestOut(BaseModel):
    id: UUID
    slug: str
    name: str
    priority: int


class ProfessionalProfile(BaseModel):
    professional_role: str | None
    organization: str | None
    experience_level: str | None
    preferred_interaction_style: str | None
    interests: list[InterestOut]
    use_cases: list[str] | None
    goals: str | None
    onboarding_completed: bool
    completed_at: datetime | None


class OnboardingResponse(BaseModel):
    message: str
    professional_profile: ProfessionalProfile


class OnboardingStatus(BaseModel):
    onboarding_completed: bool
    professional_profile: ProfessionalProfile


class Option(BaseModel):
    value: str
    label: str


class OnboardingOptions(BaseModel):
    professional_roles: list[Option]
    experience_levels: list[Option]
    interaction_styles: list[Option]
    interest_areas: list[InterestAreaOut]


class InterestAreaOut(BaseModel):
    id: UUID
    slug: str
    name: str
    description: str


OnboardingOptions.model_rebuild()

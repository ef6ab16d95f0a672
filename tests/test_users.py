"""``/users/me``: the user, onboarding, the professional profile; the interest-area catalog."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg
import pytest

from storage.db import connection_kwargs
from tests.conftest import User, assert_error

EMPTY_PROFILE: dict[str, Any] = {
    "professional_role": None,
    "organization": None,
    "experience_level": None,
    "preferred_interaction_style": None,
    "interests": [],
    "use_cases": None,
    "goals": None,
    "onboarding_completed": False,
    "completed_at": None,
}
SEED_SLUGS = {
    "law",
    "finance",
    "personal-finance",
    "marketing",
    "sales",
    "software-engineering",
    "data-science",
    "healthcare",
    "education",
    "human-resources",
    "product-management",
    "design",
    "writing",
    "research",
    "entrepreneurship",
    "operations",
}
USE_CASES = ["Legal document review", "Case law research"]
GOALS = "Improve efficiency in legal research and document analysis"


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[psycopg.AsyncConnection[dict[str, Any]]]:
    """A direct connection to the test database, to look at rows."""
    async with await psycopg.AsyncConnection.connect(database_url, **connection_kwargs()) as conn:
        yield conn


@pytest.fixture
async def catalog(client: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    """The interest areas as ``{slug: area}``."""
    response = await client.get("/interest-areas")
    assert response.status_code == 200
    return {area["slug"]: area for area in response.json()}


def questionnaire(areas: dict[str, str], *slugs: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "professional_role": "lawyer",
        "organization": "ABC Law Firm",
        "experience_level": "intermediate",
        "interest_area_ids": [areas[s] for s in slugs or ("law", "finance")],
        "preferred_interaction_style": "formal",
        "use_cases": USE_CASES,
        "goals": GOALS,
    }
    body.update(overrides)
    return body


def interest(area: dict[str, Any], priority: int = 3) -> dict[str, Any]:
    return {"id": area["id"], "slug": area["slug"], "name": area["name"], "priority": priority}


async def onboard(client: httpx.AsyncClient, user: User, body: dict[str, Any]) -> httpx.Response:
    return await client.post("/users/me/onboarding", json=body, headers=user.headers)


async def get_profile(client: httpx.AsyncClient, user: User) -> dict[str, Any]:
    response = await client.get("/users/me/professional-profile", headers=user.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def put_profile(client: httpx.AsyncClient, user: User, body: Any) -> httpx.Response:
    return await client.put("/users/me/professional-profile", json=body, headers=user.headers)


async def stored_state(db: psycopg.AsyncConnection[dict[str, Any]], user: User) -> dict[str, Any]:
    """Everything onboarding and the profile write, straight from the database."""
    cur = await db.execute(
        "SELECT professional_role, organization, experience_level, preferred_interaction_style,"
        " onboarding_completed, onboarding_data, updated_at FROM users WHERE id = %s",
        (user.id,),
    )
    row = await cur.fetchone()
    assert row is not None
    cur = await db.execute(
        "SELECT interest_area_id, priority FROM user_interests WHERE user_id = %s"
        " ORDER BY interest_area_id",
        (user.id,),
    )
    row["interests"] = await cur.fetchall()
    return row


def without_completed_at(profile: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in profile.items() if k != "completed_at"}


# --- /users/me --------------------------------------------------------------------------------


async def test_me_returns_the_signed_in_user(
    client: httpx.AsyncClient, user: User, other_user: User
) -> None:
    response = await client.get("/users/me", headers=user.headers)
    assert response.status_code == 200
    assert response.json() == user.body["user"]
    assert response.json()["name"] == "Alice"
    other = await client.get("/users/me", headers=other_user.headers)
    assert other.json() == other_user.body["user"]
    assert other.json()["id"] != user.id


ME_ROUTES = [
    ("GET", "/users/me", None),
    ("POST", "/users/me/onboarding", None),  # a valid questionnaire is sent
    ("GET", "/users/me/onboarding-status", None),
    ("GET", "/users/me/onboarding-options", None),
    ("GET", "/users/me/professional-profile", None),
    ("PUT", "/users/me/professional-profile", {"organization": "Nope"}),
]


@pytest.mark.parametrize(
    ("method", "path", "body"), ME_ROUTES, ids=[f"{m} {p}" for m, p, _ in ME_ROUTES]
)
async def test_every_users_me_route_needs_a_token(
    client: httpx.AsyncClient,
    db: psycopg.AsyncConnection[dict[str, Any]],
    user: User,
    interest_areas: dict[str, str],
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    if method == "POST":
        body = questionnaire(interest_areas)
    before = await stored_state(db, user)
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        response = await client.request(method, path, json=body, headers=headers)
        assert_error(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer"
    assert await stored_state(db, user) == before


# --- onboarding -------------------------------------------------------------------------------


async def test_onboarding_status_before_onboarding(client: httpx.AsyncClient, user: User) -> None:
    response = await client.get("/users/me/onboarding-status", headers=user.headers)
    assert response.status_code == 200
    assert response.json() == {"onboarding_completed": False, "professional_profile": EMPTY_PROFILE}
    assert await get_profile(client, user) == EMPTY_PROFILE


async def test_complete_onboarding(
    client: httpx.AsyncClient,
    db: psycopg.AsyncConnection[dict[str, Any]],
    user: User,
    interest_areas: dict[str, str],
    catalog: dict[str, dict[str, Any]],
) -> None:
    before = datetime.now(UTC)
    response = await onboard(client, user, questionnaire(interest_areas, "law", "finance"))
    after = datetime.now(UTC)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"message", "professional_profile"}
    assert body["message"] == "Onboarding completed successfully"
    profile = body["professional_profile"]
    assert without_completed_at(profile) == {
        "professional_role": "lawyer",
        "organization": "ABC Law Firm",
        "experience_level": "intermediate",
        "preferred_interaction_style": "formal",
        # Equal priority: ordered by name.
        "interests": [interest(catalog["finance"]), interest(catalog["law"])],
        "use_cases": USE_CASES,
        "goals": GOALS,
        "onboarding_completed": True,
    }
    assert before <= datetime.fromisoformat(profile["completed_at"]) <= after

    me = await client.get("/users/me", headers=user.headers)
    assert me.json() == {**user.body["user"], "onboarding_completed": True}
    status = await client.get("/users/me/onboarding-status", headers=user.headers)
    assert status.json() == {"onboarding_completed": True, "professional_profile": profile}
    assert await get_profile(client, user) == profile

    stored = await stored_state(db, user)
    assert stored["onboarding_completed"] is True
    assert stored["professional_role"] == "lawyer"
    assert sorted((str(i["interest_area_id"]), i["priority"]) for i in stored["interests"]) == (
        sorted([(interest_areas["law"], 3), (interest_areas["finance"], 3)])
    )


async def test_onboarding_with_only_the_required_fields(
    client: httpx.AsyncClient,
    user: User,
    interest_areas: dict[str, str],
    catalog: dict[str, dict[str, Any]],
) -> None:
    body = {
        "professional_role": "software_engineer",
        "experience_level": "expert",
        "interest_area_ids": [interest_areas["software-engineering"]],
        "preferred_interaction_style": "concise",
    }
    response = await onboard(client, user, body)
    assert response.status_code == 200, response.text
    profile = response.json()["professional_profile"]
    assert without_completed_at(profile) == {
        "professional_role": "software_engineer",
        "organization": None,
        "experience_level": "expert",
        "preferred_interaction_style": "concise",
        "interests": [interest(catalog["software-engineering"])],
        "use_cases": None,
        "goals": None,
        "onboarding_completed": True,
    }
    assert profile["completed_at"] is not None


async def test_onboarding_accepts_the_longest_organization_and_goals(
    client: httpx.AsyncClient, user: User, interest_areas: dict[str, str]
) -> None:
    body = questionnaire(interest_areas, organization="o" * 200, goals="g" * 1000)
    response = await onboard(client, user, body)
    assert response.status_code == 200, response.text
    profile = response.json()["professional_profile"]
    assert profile["organization"] == "o" * 200
    assert profile["goals"] == "g" * 1000


async def test_onboarding_stores_a_repeated_interest_once(
    client: httpx.AsyncClient,
    user: User,
    interest_areas: dict[str, str],
    catalog: dict[str, dict[str, Any]],
) -> None:
    law = interest_areas["law"]
    response = await onboard(
        client, user, questionnaire(interest_areas, interest_area_ids=[law, law])
    )
    assert response.status_code == 200, response.text
    assert response.json()["professional_profile"]["interests"] == [interest(catalog["law"])]


async def test_onboarding_again_replaces_the_answers_and_interests(
    client: httpx.AsyncClient,
    db: psycopg.AsyncConnection[dict[str, Any]],
    user: User,
    interest_areas: dict[str, str],
    catalog: dict[str, dict[str, Any]],
) -> None:
    first = await onboard(client, user, questionnaire(interest_areas, "law", "finance"))
    assert first.status_code == 200
    second_body = questionnaire(
        interest_areas,
        "healthcare",
        "education",
        "research",
        professional_role="researcher",
        organization=None,
        experience_level="beginner",
        preferred_interaction_style="detailed",
        use_cases=["Literature review"],
        goals=None,
    )
    second = await onboard(client, user, second_body)
    assert second.status_code == 200, second.text
    profile = second.json()["professional_profile"]
    assert without_completed_at(profile) == {
        "professional_role": "researcher",
        "organization": None,
        "experience_level": "beginner",
        "preferred_interaction_style": "detailed",
        "interests": [
            interest(catalog["education"]),
            interest(catalog["healthcare"]),
            interest(catalog["research"]),
        ],
        "use_cases": ["Literature review"],
        "goals": None,
        "onboarding_completed": True,
    }
    first_done = datetime.fromisoformat(first.json()["professional_profile"]["completed_at"])
    assert datetime.fromisoformat(profile["completed_at"]) >= first_done
    assert await get_profile(client, user) == profile
    assert len((await stored_state(db, user))["interests"]) == 3


@pytest.mark.parametrize("known", [False, True], ids=["only-unknown", "with-known"])
async def test_onboarding_with_an_unknown_interest_stores_nothing(
    client: httpx.AsyncClient,
    db: psycopg.AsyncConnection[dict[str, Any]],
    user: User,
    interest_areas: dict[str, str],
    known: bool,
) -> None:
    unknown = str(uuid.uuid4())
    ids = [interest_areas["law"], unknown] if known else [unknown]
    before = await stored_state(db, user)
    response = await onboard(client, user, questionnaire(interest_areas, interest_area_ids=ids))
    body = assert_error(response, 404, "interest_area_not_found")
    assert body["detail"] == f"Unknown interest area id(s): {unknown}"

    assert await stored_state(db, user) == before
    assert before["interests"] == [] and before["onboarding_data"] is None
    status = await client.get("/users/me/onboarding-status", headers=user.headers)
    assert status.json() == {"onboarding_completed": False, "professional_profile": EMPTY_PROFILE}
    me = await client.get("/users/me", headers=user.headers)
    assert me.json()["onboarding_completed"] is False


async def test_failed_reonboarding_keeps_the_old_profile(
    client: httpx.AsyncClient,
    db: psycopg.AsyncConnection[dict[str, Any]],
    user: User,
    interest_areas: dict[str, str],
) -> None:
    first = await onboard(client, user, questionnaire(interest_areas, "law", "finance"))
    assert first.status_code == 200
    profile = first.json()["professional_profile"]
    before = await stored_state(db, user)

    retry = questionnaire(
        interest_areas,
        professional_role="teacher",
        organization="Somewhere Else",
        interest_area_ids=[interest_areas["education"], str(uuid.uuid4())],
    )
    assert_error(await onboard(client, user, retry), 404, "interest_area_not_found")
    assert await stored_state(db, user) == before
    assert await get_profile(client, user) == profile


def _onboarding_cases() -> list[Any]:
    def body(areas: dict[str, str], **changes: Any) -> dict[str, Any]:
        result = questionnaire(areas, **changes)
        return {k: v for k, v in result.items() if v is not _MISSING}

    return [
        pytest.param(lambda a: body(a, interest_area_ids=[]), "too_short", id="no-interests"),
        pytest.param(lambda a: body(a, professional_role="astronaut"), "enum", id="bad-role"),
        pytest.param(lambda a: body(a, professional_role="LAWYER"), "enum", id="uppercase-role"),
        pytest.param(lambda a: body(a, experience_level="novice"), "enum", id="bad-level"),
        pytest.param(
            lambda a: body(a, preferred_interaction_style="Formal"), "enum", id="uppercase-style"
        ),
        pytest.param(lambda a: body(a, organization="o" * 201), "string_too_long", id="org-201"),
        pytest.param(lambda a: body(a, goals="g" * 1001), "string_too_long", id="goals-1001"),
        pytest.param(
            lambda a: body(a, interest_area_ids=["not-a-uuid"]), "uuid_parsing", id="bad-uuid"
        ),
        pytest.param(lambda a: body(a, professional_role=_MISSING), "missing", id="missing-role"),
        pytest.param(lambda a: body(a, experience_level=_MISSING), "missing", id="missing-level"),
        pytest.param(
            lambda a: body(a, interest_area_ids=_MISSING), "missing", id="missing-interests"
        ),
        pytest.param(
            lambda a: body(a, preferred_interaction_style=_MISSING), "missing", id="missing-style"
        ),
        pytest.param(lambda a: body(a, favourite_color="blue"), "extra_forbidden", id="extra"),
        pytest.param(lambda a: body(a, use_cases=[""]), "string_too_short", id="empty-use-case"),
        pytest.param(lambda a: body(a, use_cases="review"), "list_type", id="use-cases-str"),
        pytest.param(lambda a: body(a, goals="a\x00b"), "value_error", id="nul-in-goals"),
        pytest.param(
            lambda a: body(a, interest_area_ids=[a["law"]] * 51), "too_long", id="51-interests"
        ),
    ]


_MISSING = object()


@pytest.mark.parametrize(("make_body", "error_type"), _onboarding_cases())
async def test_onboarding_rejects_invalid_answers(
    client: httpx.AsyncClient,
    db: psycopg.AsyncConnection[dict[str, Any]],
    user: User,
    interest_areas: dict[str, str],
    make_body: Any,
    error_type: str,
) -> None:
    before = await stored_state(db, user)
    response = await onboard(client, user, make_body(interest_areas))
    body = assert_error(response, 422, "validation_error")
    assert [e["type"] for e in body["detail"]] == [error_type]
    assert await stored_state(db, user) == before
    assert await get_profile(client, user) == EMPTY_PROFILE


# --- the professional profile -----------------------------------------------------------------


@pytest.fixture
async def onboarded(
    client: httpx.AsyncClient, user: User, interest_areas: dict[str, str]
) -> dict[str, Any]:
    """``user`` after onboarding as a lawyer interested in law and finance; the profile."""
    response = await onboard(client, user, questionnaire(interest_areas, "law", "finance"))
    assert response.status_code == 200, response.text
    return response.json()["professional_profile"]


async def test_professional_profile_matches_the_onboarding_status(
    client: httpx.AsyncClient, user: User, onboarded: dict[str, Any]
) -> None:
    assert await get_profile(client, user) == onboarded
    status = await client.get("/users/me/onboarding-status", headers=user.headers)
    assert status.json()["professional_profile"] == onboarded


async def test_updating_only_the_organization_keeps_the_rest(
    client: httpx.AsyncClient, user: User, onboarded: dict[str, Any]
) -> None:
    response = await put_profile(client, user, {"organization": "  New Firm LLP  "})
    assert response.status_code == 200, response.text
    expected = {**onboarded, "organization": "New Firm LLP"}
    assert response.json() == expected
    assert await get_profile(client, user) == expected


async def test_an_empty_update_changes_nothing(
    client: httpx.AsyncClient, user: User, onboarded: dict[str, Any]
) -> None:
    response = await put_profile(client, user, {})
    assert response.status_code == 200, response.text
    assert response.json() == onboarded
    assert await get_profile(client, user) == onboarded


async def test_updating_several_fields(
    client: httpx.AsyncClient, user: User, onboarded: dict[str, Any]
) -> None:
    change = {
        "professional_role": "manager",
        "experience_level": "advanced",
        "preferred_interaction_style": "casual",
        "use_cases": ["Team planning"],
        "goals": "Run better meetings",
    }
    response = await put_profile(client, user, change)
    assert response.status_code == 200, response.text
    expected = {**onboarded, **change}
    assert response.json() == expected
    assert await get_profile(client, user) == expected


async def test_organization_null_clears_it(
    client: httpx.AsyncClient, user: User, onboarded: dict[str, Any]
) -> None:
    response = await put_profile(client, user, {"organization": None, "goals": None})
    assert response.status_code == 200, response.text
    expected = {**onboarded, "organization": None, "goals": None}
    assert response.json() == expected
    assert await get_profile(client, user) == expected


async def test_interests_with_priorities_replace_the_set(
    client: httpx.AsyncClient,
    user: User,
    onboarded: dict[str, Any],
    interest_areas: dict[str, str],
    catalog: dict[str, dict[str, Any]],
) -> None:
    interests = [
        {"interest_area_id": interest_areas["marketing"], "priority": 1},
        {"interest_area_id": interest_areas["law"], "priority": 5},
        {"interest_area_id": interest_areas["sales"], "priority": 2},
        {"interest_area_id": interest_areas["design"], "priority": 4},
        {"interest_area_id": interest_areas["writing"]},
    ]
    response = await put_profile(client, user, {"interests": interests})
    assert response.status_code == 200, response.text
    expected = {
        **onboarded,
        "interests": [
            interest(catalog["law"], 5),
            interest(catalog["design"], 4),
            interest(catalog["writing"], 3),
            interest(catalog["sales"], 2),
            interest(catalog["marketing"], 1),
        ],
    }
    assert response.json() == expected
    assert await get_profile(client, user) == expected


async def test_an_interest_given_twice_takes_its_last_priority(
    client: httpx.AsyncClient,
    user: User,
    onboarded: dict[str, Any],
    interest_areas: dict[str, str],
    catalog: dict[str, dict[str, Any]],
) -> None:
    interests = [
        {"interest_area_id": interest_areas["law"], "priority": 2},
        {"interest_area_id": interest_areas["sales"], "priority": 1},
        {"interest_area_id": interest_areas["law"], "priority": 4},
    ]
    response = await put_profile(client, user, {"interests": interests})
    assert response.status_code == 200, response.text
    expected = {
        **onboarded,
        "interests": [interest(catalog["law"], 4), interest(catalog["sales"], 1)],
    }
    assert response.json() == expected
    assert await get_profile(client, user) == expected


async def test_interest_area_ids_replace_the_set_at_priority_3(
    client: httpx.AsyncClient,
    db: psycopg.AsyncConnection[dict[str, Any]],
    user: User,
    onboarded: dict[str, Any],
    interest_areas: dict[str, str],
    catalog: dict[str, dict[str, Any]],
) -> None:
    response = await put_profile(
        client, user, {"interest_area_ids": [interest_areas["operations"]]}
    )
    assert response.status_code == 200, response.text
    expected = {**onboarded, "interests": [interest(catalog["operations"])]}
    assert response.json() == expected
    assert await get_profile(client, user) == expected
    # The stored questionnaire follows, so it never contradicts the profile.
    stored = await stored_state(db, user)
    assert stored["onboarding_data"]["interest_area_ids"] == [interest_areas["operations"]]


async def test_updating_the_profile_before_onboarding(
    client: httpx.AsyncClient, user: User
) -> None:
    response = await put_profile(client, user, {"organization": "Acme", "goals": "Learn"})
    assert response.status_code == 200, response.text
    expected = {**EMPTY_PROFILE, "organization": "Acme", "goals": "Learn"}
    assert response.json() == expected
    assert await get_profile(client, user) == expected
    me = await client.get("/users/me", headers=user.headers)
    assert me.json()["onboarding_completed"] is False


@pytest.mark.parametrize(
    ("make_body", "error_type"),
    [
        pytest.param(
            lambda a: {"interests": [{"interest_area_id": a["law"], "priority": 0}]},
            "greater_than_equal",
            id="priority-0",
        ),
        pytest.param(
            lambda a: {"interests": [{"interest_area_id": a["law"], "priority": 6}]},
            "less_than_equal",
            id="priority-6",
        ),
        pytest.param(
            lambda a: {
                "interests": [{"interest_area_id": a["law"], "priority": 2}],
                "interest_area_ids": [a["finance"]],
            },
            "value_error",
            id="interests-and-ids",
        ),
        pytest.param(lambda a: {"professional_role": None}, "value_error", id="null-role"),
        pytest.param(lambda a: {"experience_level": None}, "value_error", id="null-level"),
        pytest.param(
            lambda a: {"preferred_interaction_style": None}, "value_error", id="null-style"
        ),
        pytest.param(lambda a: {"interests": None}, "value_error", id="null-interests"),
        pytest.param(lambda a: {"interest_area_ids": None}, "value_error", id="null-ids"),
        pytest.param(lambda a: {"interests": []}, "too_short", id="empty-interests"),
        pytest.param(lambda a: {"interest_area_ids": []}, "too_short", id="empty-ids"),
        pytest.param(lambda a: {"professional_role": "Lawyer"}, "enum", id="bad-role"),
        pytest.param(lambda a: {"organization": "o" * 201}, "string_too_long", id="org-201"),
        pytest.param(lambda a: {"goals": "g" * 1001}, "string_too_long", id="goals-1001"),
        pytest.param(lambda a: {"interest_area_ids": ["nope"]}, "uuid_parsing", id="bad-uuid"),
        pytest.param(lambda a: {"onboarding_completed": False}, "extra_forbidden", id="extra"),
        pytest.param(
            lambda a: {"interests": [{"interest_area_id": a["law"], "weight": 2}]},
            "extra_forbidden",
            id="extra-in-interest",
        ),
    ],
)
async def test_invalid_profile_updates_change_nothing(
    client: httpx.AsyncClient,
    db: psycopg.AsyncConnection[dict[str, Any]],
    user: User,
    onboarded: dict[str, Any],
    interest_areas: dict[str, str],
    make_body: Any,
    error_type: str,
) -> None:
    before = await stored_state(db, user)
    response = await put_profile(client, user, make_body(interest_areas))
    body = assert_error(response, 422, "validation_error")
    assert [e["type"] for e in body["detail"]] == [error_type]
    assert await stored_state(db, user) == before
    assert await get_profile(client, user) == onboarded


@pytest.mark.parametrize("field", ["interests", "interest_area_ids"])
async def test_an_unknown_interest_in_an_update_changes_nothing(
    client: httpx.AsyncClient,
    db: psycopg.AsyncConnection[dict[str, Any]],
    user: User,
    onboarded: dict[str, Any],
    interest_areas: dict[str, str],
    field: str,
) -> None:
    unknown = str(uuid.uuid4())
    ids = [interest_areas["marketing"], unknown]
    value: list[Any] = (
        [{"interest_area_id": i, "priority": 5} for i in ids] if field == "interests" else ids
    )
    before = await stored_state(db, user)
    response = await put_profile(
        client, user, {field: value, "organization": "Not Applied Inc", "goals": "Not applied"}
    )
    body = assert_error(response, 404, "interest_area_not_found")
    assert body["detail"] == f"Unknown interest area id(s): {unknown}"
    assert await stored_state(db, user) == before
    profile = await get_profile(client, user)
    assert profile == onboarded
    assert profile["organization"] == "ABC Law Firm"


async def test_profiles_are_per_user(
    client: httpx.AsyncClient,
    user: User,
    other_user: User,
    onboarded: dict[str, Any],
    interest_areas: dict[str, str],
) -> None:
    assert await get_profile(client, other_user) == EMPTY_PROFILE
    response = await put_profile(
        client,
        other_user,
        {"organization": "Bob's", "interest_area_ids": [interest_areas["sales"]]},
    )
    assert response.status_code == 200
    assert await get_profile(client, user) == onboarded


# --- catalogs ---------------------------------------------------------------------------------


async def test_onboarding_options(
    client: httpx.AsyncClient, user: User, catalog: dict[str, dict[str, Any]]
) -> None:
    response = await client.get("/users/me/onboarding-options", headers=user.headers)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "professional_roles",
        "experience_levels",
        "interaction_styles",
        "interest_areas",
    }
    roles = [o["value"] for o in body["professional_roles"]]
    for role in (
        "lawyer",
        "software_engineer",
        "marketer",
        "financial_analyst",
        "teacher",
        "healthcare_professional",
        "student",
        "researcher",
        "manager",
        "other",
    ):
        assert role in roles, role
    assert len(roles) == len(set(roles))
    assert body["experience_levels"] == [
        {"value": "beginner", "label": "Beginner"},
        {"value": "intermediate", "label": "Intermediate"},
        {"value": "advanced", "label": "Advanced"},
        {"value": "expert", "label": "Expert"},
    ]
    styles = [o["value"] for o in body["interaction_styles"]]
    for style in ("formal", "casual", "concise", "detailed"):
        assert style in styles, style
    assert {"value": "software_engineer", "label": "Software engineer"} in body[
        "professional_roles"
    ]
    assert body["interest_areas"] == list(catalog.values())


async def test_every_offered_option_is_accepted_by_onboarding(
    client: httpx.AsyncClient, user: User, interest_areas: dict[str, str]
) -> None:
    options = (await client.get("/users/me/onboarding-options", headers=user.headers)).json()
    roles = [o["value"] for o in options["professional_roles"]]
    levels = [o["value"] for o in options["experience_levels"]]
    styles = [o["value"] for o in options["interaction_styles"]]
    for i, role in enumerate(roles):
        body = questionnaire(
            interest_areas,
            professional_role=role,
            experience_level=levels[i % len(levels)],
            preferred_interaction_style=styles[i % len(styles)],
            interest_area_ids=[options["interest_areas"][i % 16]["id"]],
        )
        response = await onboard(client, user, body)
        assert response.status_code == 200, response.text
        assert response.json()["professional_profile"]["professional_role"] == role


async def test_interest_areas_catalog(client: httpx.AsyncClient) -> None:
    # Public: no token needed.
    response = await client.get("/interest-areas")
    assert response.status_code == 200
    areas = response.json()
    assert len(areas) == 16
    assert {a["slug"] for a in areas} == SEED_SLUGS
    for slug in ("law", "finance", "marketing", "software-engineering", "healthcare", "education"):
        assert slug in {a["slug"] for a in areas}
    for area in areas:
        assert set(area) == {"id", "slug", "name", "description"}
        uuid.UUID(area["id"])
        assert area["name"] and area["description"]
    assert [a["name"] for a in areas] == sorted(a["name"] for a in areas)
    law = next(a for a in areas if a["slug"] == "law")
    assert law["name"] == "Law"
    assert law["description"] == "Contracts, litigation, compliance and legal research"

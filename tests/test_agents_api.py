"""``/agents``: listing, recommendations, admin writes, validation and soft delete."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.conftest import User, assert_error

SEED_NAMES = [
    "General Assistant",
    "Legal Research Assistant",
    "Marketing Specialist",
    "Personal Finance Specialist",
    "Software Engineering Mentor",
]


async def _list(client: httpx.AsyncClient, user: User, **params: Any) -> dict[str, Any]:
    response = await client.get("/agents/", params=params, headers=user.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def test_list_is_paginated_by_name(client: httpx.AsyncClient, user: User) -> None:
    everything = await _list(client, user)
    assert [a["name"] for a in everything["items"]] == SEED_NAMES
    assert (everything["total"], everything["limit"], everything["offset"]) == (5, 20, 0)
    agent = everything["items"][0]
    assert set(agent) == {
        "id", "slug", "name", "description", "system_prompt", "avatar_url", "model_name",
        "tools_enabled", "tools_requiring_approval", "interest_area_ids", "kind", "version",
        "created_at", "updated_at",
    }  # fmt: skip
    assert agent["slug"] == "assistant"
    assert agent["tools_enabled"] == ["calculator", "current_datetime", "unit_converter"]
    assert agent["model_name"] is None
    page = await _list(client, user, limit=2, offset=2)
    assert [a["name"] for a in page["items"]] == SEED_NAMES[2:4]
    assert page["total"] == 5
    assert (await _list(client, user, offset=5))["items"] == []
    for params in ({"limit": 0}, {"limit": 101}, {"offset": -1}, {"limit": "x"}):
        assert_error(await client.get("/agents/", params=params, headers=user.headers), 422)


async def test_recommended_orders_by_interest_overlap(
    client: httpx.AsyncClient, user: User, interest_areas: dict[str, str]
) -> None:
    # Without interests, recommended is the plain order.
    assert [a["name"] for a in (await _list(client, user, recommended="true"))["items"]] == (
        SEED_NAMES
    )
    await client.post(
        "/users/me/onboarding",
        json={
            "professional_role": "financial_analyst",
            "experience_level": "expert",
            "interest_area_ids": [interest_areas["personal-finance"], interest_areas["finance"]],
            "preferred_interaction_style": "concise",
        },
        headers=user.headers,
    )
    ranked = (await _list(client, user, recommended="true"))["items"]
    assert [a["slug"] for a in ranked] == [
        "personal-finance", "assistant", "legal-research", "marketing", "software-engineer",
    ]  # fmt: skip

    # Equal overlap (one interest each): the interest ranked higher wins.
    update = await client.put(
        "/users/me/professional-profile",
        json={
            "interests": [
                {"interest_area_id": interest_areas["law"], "priority": 2},
                {"interest_area_id": interest_areas["marketing"], "priority": 5},
            ]
        },
        headers=user.headers,
    )
    assert update.status_code == 200
    ranked = (await _list(client, user, recommended="true"))["items"]
    assert [a["slug"] for a in ranked][:2] == ["marketing", "legal-research"]


async def test_get_one(client: httpx.AsyncClient, user: User) -> None:
    agent = (await _list(client, user))["items"][1]
    response = await client.get(f"/agents/{agent['id']}", headers=user.headers)
    assert response.json() == agent
    assert_error(await client.get(f"/agents/{uuid.uuid4()}", headers=user.headers), 404)


async def test_admin_creates_agents_with_unique_slugs(
    client: httpx.AsyncClient, admin: User, user: User, interest_areas: dict[str, str]
) -> None:
    body = {
        "name": "Tax Helper!",
        "description": "Taxes",
        "system_prompt": "Help with taxes.",
        "avatar_url": "https://example.org/tax.png",
        "model_name": "fake:tokens-5",
        "tools_enabled": ["calculator"],
        "interest_area_ids": [interest_areas["finance"]],
    }
    first = await client.post("/agents/", json=body, headers=admin.headers)
    assert first.status_code == 201, first.text
    created = first.json()
    assert created["slug"] == "tax-helper"
    assert created["version"] == 1
    assert {k: created[k] for k in body} == body
    second = await client.post("/agents/", json={"name": "Tax  helper"}, headers=admin.headers)
    assert second.json()["slug"] == "tax-helper-2"
    assert second.json()["model_name"] is None
    assert second.json()["tools_enabled"] == []
    assert (await _list(client, user))["total"] == 7


@pytest.mark.parametrize(
    "model_name",
    ["openai:gpt-4o-mini", "fake:echo", "fake:tokens-50", "fake:tokens-10@5", "fake:tools",
     "local:smollm2"],
)  # fmt: skip
async def test_known_models_are_accepted(
    client: httpx.AsyncClient, admin: User, model_name: str
) -> None:
    response = await client.post(
        "/agents/", json={"name": "M", "model_name": model_name}, headers=admin.headers
    )
    assert response.status_code == 201
    assert response.json()["model_name"] == model_name


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"name": ""}, 422, "validation_error"),
        ({"name": "x" * 101}, 422, "validation_error"),
        ({"name": "ok", "description": "d" * 1001}, 422, "validation_error"),
        ({"name": "ok", "model_name": "acme:x"}, 422, "invalid_input"),
        ({"name": "ok", "model_name": "fake:nope"}, 422, "invalid_input"),
        ({"name": "ok", "model_name": "gpt-4o"}, 422, "invalid_input"),
        ({"name": "ok", "model_name": "local:llama70b"}, 422, "invalid_input"),
        ({"name": "ok", "tools_enabled": ["web_search"]}, 422, "invalid_input"),
        ({"name": "ok", "tools_enabled": ["calculator", "calculator"]}, 422, "validation_error"),
        ({"name": "ok", "interest_area_ids": [str(uuid.uuid4())]}, 404, "interest_area_not_found"),
        ({"name": "ok", "interest_area_ids": ["nope"]}, 422, "validation_error"),
        ({"name": "ok", "avatar_url": "not a url"}, 422, "validation_error"),
        ({"name": "ok", "avatar_url": "javascript:alert(1)"}, 422, "validation_error"),
        ({"name": "ok", "role": "admin"}, 422, "validation_error"),
        ({"name": 5}, 422, "validation_error"),
        ({"name": "ok", "tools_enabled": "calculator"}, 422, "validation_error"),
        ({"name": "nul\x00"}, 422, "validation_error"),
        ({}, 422, "validation_error"),
    ],
)
async def test_invalid_agents_are_refused_and_not_created(
    client: httpx.AsyncClient, admin: User, body: dict[str, Any], status: int, code: str
) -> None:
    response = await client.post("/agents/", json=body, headers=admin.headers)
    assert_error(response, status, code)
    assert (await _list(client, admin))["total"] == 5


async def test_unknown_tool_message_lists_the_available_tools(
    client: httpx.AsyncClient, admin: User
) -> None:
    response = await client.post(
        "/agents/", json={"name": "x", "tools_enabled": ["web_search"]}, headers=admin.headers
    )
    assert response.json()["detail"] == (
        "Unknown tool(s): web_search; available: ask_human, calculator, current_datetime, "
        "http_fetch, knowledge_search, recall, remember, unit_converter"
    )


async def test_update_is_partial_and_bumps_the_version(
    client: httpx.AsyncClient, admin: User, user: User
) -> None:
    agent = (await _list(client, user))["items"][0]
    url = f"/agents/{agent['id']}"
    renamed = (await client.put(url, json={"name": "Renamed"}, headers=admin.headers)).json()
    assert renamed["version"] == agent["version"] + 1
    assert renamed["name"] == "Renamed"
    assert renamed["updated_at"] > agent["updated_at"]
    unchanged = {k: v for k, v in agent.items() if k not in ("name", "version", "updated_at")}
    assert {k: renamed[k] for k in unchanged} == unchanged
    again = (await client.put(url, json={"model_name": "fake:echo"}, headers=admin.headers)).json()
    assert again["version"] == agent["version"] + 2
    assert again["name"] == "Renamed"

    for body in ({"name": None}, {"tools_enabled": ["nope"]}, {"model_name": "x:y"}):
        assert_error(await client.put(url, json=body, headers=admin.headers), 422)
    assert (await client.get(url, headers=user.headers)).json() == again
    assert_error(
        await client.put(f"/agents/{uuid.uuid4()}", json={"name": "x"}, headers=admin.headers),
        404,
    )


async def test_soft_delete_keeps_existing_chats_and_refuses_new_ones(
    client: httpx.AsyncClient, admin: User, user: User
) -> None:
    agent = (await _list(client, user))["items"][0]
    chat = (
        await client.post("/chats/", json={"agent_id": agent["id"]}, headers=user.headers)
    ).json()
    url = f"/agents/{agent['id']}"
    deleted = await client.delete(url, headers=admin.headers)
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert agent["id"] not in [a["id"] for a in (await _list(client, user))["items"]]
    assert (await _list(client, user))["total"] == 4
    assert_error(await client.get(url, headers=user.headers), 404)
    assert_error(await client.delete(url, headers=admin.headers), 404)
    assert_error(await client.put(url, json={"name": "x"}, headers=admin.headers), 404)

    kept = await client.get(f"/chats/{chat['id']}", headers=user.headers)
    assert kept.status_code == 200
    assert [
        c["id"] for c in (await client.get("/chats/", headers=user.headers)).json()["items"]
    ] == [chat["id"]]
    assert_error(
        await client.post("/chats/", json={"agent_id": agent["id"]}, headers=user.headers),
        409,
        "conflict",
    )

"""``/chats``: create, list with filters, read, rename, archive, delete."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.conftest import User, assert_error


async def _create(client: httpx.AsyncClient, user: User, agent_id: str, **extra: Any) -> dict:
    response = await client.post(
        "/chats/", json={"agent_id": agent_id, **extra}, headers=user.headers
    )
    assert response.status_code == 201, response.text
    return response.json()


def _as_read(chat: dict[str, Any], owner: User) -> dict[str, Any]:
    """``chat`` as its owner reads it back: it also says whose it is (a chat can be shared,
    tests/test_sharing.py)."""
    return {**chat, "access": "owner", "owner": {"id": owner.id, "name": "Alice"}}


async def _count(client: httpx.AsyncClient, user: User) -> int:
    return (await client.get("/chats/", headers=user.headers)).json()["total"]


async def test_create_a_chat(
    client: httpx.AsyncClient, user: User, seeded_agents: dict[str, Any]
) -> None:
    agent_id = seeded_agents["marketing"]["id"]
    chat = await _create(client, user, agent_id, title="  Launch plan  ")
    assert set(chat) == {
        "id", "agent_id", "title", "status", "created_at", "updated_at", "last_message_at",
        "message_count", "forked_from",
    }  # fmt: skip
    assert (chat["agent_id"], chat["title"], chat["status"]) == (agent_id, "Launch plan", "active")
    assert chat["forked_from"] is None
    assert (chat["message_count"], chat["last_message_at"]) == (0, None)
    assert chat["created_at"] == chat["updated_at"]
    untitled = await _create(client, user, agent_id)
    assert untitled["title"] is None
    read = (await client.get(f"/chats/{chat['id']}", headers=user.headers)).json()
    assert read == _as_read(chat, user)


@pytest.mark.parametrize(
    "body",
    [
        {"agent_id": "nope"},
        {},
        {"agent_id": "AGENT", "title": "x" * 201},
        {"agent_id": "AGENT", "title": ""},
        {"agent_id": "AGENT", "title": "   "},
        {"agent_id": "AGENT", "title": "nul\x00"},
        {"agent_id": "AGENT", "status": "archived"},
        {"agent_id": "AGENT", "title": 7},
    ],
)
async def test_invalid_chats_are_422_and_not_created(
    client: httpx.AsyncClient, user: User, seeded_agents: dict[str, Any], body: dict
) -> None:
    agent_id = seeded_agents["assistant"]["id"]
    body = {k: agent_id if v == "AGENT" else v for k, v in body.items()}
    assert_error(await client.post("/chats/", json=body, headers=user.headers), 422)
    assert await _count(client, user) == 0


async def test_a_chat_with_an_unknown_agent_is_404(client: httpx.AsyncClient, user: User) -> None:
    response = await client.post(
        "/chats/", json={"agent_id": str(uuid.uuid4())}, headers=user.headers
    )
    assert_error(response, 404, "not_found")
    assert await _count(client, user) == 0


async def test_a_chat_with_a_retired_agent_is_409(
    client: httpx.AsyncClient, user: User, admin: User
) -> None:
    agent = (
        await client.post("/agents/", json={"name": "Old timer"}, headers=admin.headers)
    ).json()
    assert (await client.delete(f"/agents/{agent['id']}", headers=admin.headers)).status_code == 204
    response = await client.post("/chats/", json={"agent_id": agent["id"]}, headers=user.headers)
    assert_error(response, 409, "conflict")
    assert await _count(client, user) == 0


async def test_list_filters_and_pages(
    client: httpx.AsyncClient, user: User, other_user: User, seeded_agents: dict[str, Any]
) -> None:
    a, b = seeded_agents["assistant"]["id"], seeded_agents["marketing"]["id"]
    created = [
        await _create(client, user, agent, title=f"c{i}") for i, agent in enumerate([a, b, a])
    ]
    await _create(client, other_user, a, title="theirs")
    await client.put(
        f"/chats/{created[0]['id']}", json={"status": "archived"}, headers=user.headers
    )

    def titles(body: dict) -> list[str]:
        return [c["title"] for c in body["items"]]

    listing = (await client.get("/chats/", headers=user.headers)).json()
    # Most recently updated first: archiving c0 touched it last.
    assert titles(listing) == ["c0", "c2", "c1"]
    assert (listing["total"], listing["limit"], listing["offset"]) == (3, 20, 0)
    get = lambda **params: client.get("/chats/", params=params, headers=user.headers)  # noqa: E731
    assert titles((await get(status="active")).json()) == ["c2", "c1"]
    assert titles((await get(status="archived")).json()) == ["c0"]
    assert titles((await get(agent_id=a)).json()) == ["c0", "c2"]
    assert titles((await get(agent_id=a, status="active")).json()) == ["c2"]
    page = (await get(limit=1, offset=1)).json()
    assert (titles(page), page["total"]) == (["c2"], 3)
    for params in ({"status": "finished"}, {"agent_id": "x"}, {"limit": 0}, {"offset": -1}):
        assert_error(await get(**params), 422, "validation_error")


async def test_search_by_title(
    client: httpx.AsyncClient, user: User, other_user: User, seeded_agents: dict[str, Any]
) -> None:
    agent = seeded_agents["assistant"]["id"]
    for title in ("Budget 2027", "budget review", "Trip to Porto", "50% off_sale", None):
        await _create(client, user, agent, title=title)
    await _create(client, other_user, agent, title="their budget")

    async def search(q: str, **params: Any) -> tuple[list[str], int]:
        response = await client.get("/chats/", params={"q": q, **params}, headers=user.headers)
        assert response.status_code == 200, response.text
        body = response.json()
        return sorted(c["title"] for c in body["items"]), body["total"]

    assert await search("BUDGET") == (["Budget 2027", "budget review"], 2)
    assert await search("budget", limit=1) == (["budget review"], 2)
    # Plain text, not a LIKE pattern: % and _ match themselves only.
    assert await search("%") == (["50% off_sale"], 1)
    assert await search("f_s") == (["50% off_sale"], 1)
    assert await search("_") == (["50% off_sale"], 1)
    assert await search("porto trip") == ([], 0)
    for bad in ("", "x" * 201, "a\x00b"):
        assert_error(await client.get("/chats/", params={"q": bad}, headers=user.headers), 422)


async def test_rename_archive_unarchive(
    client: httpx.AsyncClient, user: User, seeded_agents: dict[str, Any]
) -> None:
    chat = await _create(client, user, seeded_agents["assistant"]["id"], title="old")
    url = f"/chats/{chat['id']}"
    renamed = (await client.put(url, json={"title": "new"}, headers=user.headers)).json()
    assert (renamed["title"], renamed["status"]) == ("new", "active")
    assert renamed["updated_at"] > chat["updated_at"]
    archived = (await client.put(url, json={"status": "archived"}, headers=user.headers)).json()
    assert (archived["title"], archived["status"]) == ("new", "archived")
    active = (await client.put(url, json={"status": "active"}, headers=user.headers)).json()
    assert active["status"] == "active"
    cleared = (await client.put(url, json={"title": None}, headers=user.headers)).json()
    assert cleared["title"] is None
    for body in ({"status": None}, {"status": "finished"}, {"title": "x" * 201}, {"agent_id": "x"}):
        assert_error(await client.put(url, json=body, headers=user.headers), 422)
    assert (await client.get(url, headers=user.headers)).json() == _as_read(cleared, user)
    assert_error(
        await client.put(f"/chats/{uuid.uuid4()}", json={"title": "x"}, headers=user.headers), 404
    )


async def test_delete(client: httpx.AsyncClient, user: User, seeded_agents: dict[str, Any]) -> None:
    chat = await _create(client, user, seeded_agents["assistant"]["id"])
    url = f"/chats/{chat['id']}"
    deleted = await client.delete(url, headers=user.headers)
    assert (deleted.status_code, deleted.content) == (204, b"")
    assert_error(await client.get(url, headers=user.headers), 404)
    assert_error(await client.delete(url, headers=user.headers), 404)
    assert await _count(client, user) == 0

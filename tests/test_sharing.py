"""Sharing a chat read-only: with users by email, and by a public link that shows a snapshot.

Who may call which route (viewers read and are strangers everywhere else; only the owner
manages shares) is table-driven in tests/test_access_matrix.py; this file is what sharing
does.
"""

from __future__ import annotations

import asyncio
import hashlib
import signal
import uuid
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI

from api.app import create_app
from api.security import redact_path
from tests.conftest import User, assert_error, make_settings, running
from tests.servers import ADMIN, Server, admin_env
from tests.test_forks import echo_chat, send
from tests.test_messages import MakeAgent, make_agent, open_chat

__all__ = ["make_agent"]


async def share(client: httpx.AsyncClient, owner: User, chat_id: str, body: Any) -> httpx.Response:
    return await client.post(f"/chats/{chat_id}/shares", json=body, headers=owner.headers)


async def get(client: httpx.AsyncClient, user: User, path: str, **params: Any) -> Any:
    response = await client.get(path, params=params, headers=user.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def make_link(client: httpx.AsyncClient, owner: User, chat_id: str) -> dict[str, Any]:
    response = await client.post(f"/chats/{chat_id}/share-link", headers=owner.headers)
    assert response.status_code == 201, response.text
    return response.json()


def without_feedback(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages as anyone but their owner sees them: no vote on any agent message."""
    return [
        {**m, "metadata": {**m["metadata"], "feedback": None}} if m["sender"] == "agent" else m
        for m in messages
    ]


async def test_a_chat_shared_by_email_is_listed_and_read_by_its_viewer(
    client: httpx.AsyncClient, user: User, other_user: User, make_agent: MakeAgent
) -> None:
    chat_id = await echo_chat(client, user, make_agent, "hello", "again")
    # Emails match whatever their case, as at login.
    first = await share(client, user, chat_id, {"email": other_user.email.upper()})
    assert first.status_code == 201, first.text
    shared = first.json()
    assert set(shared) == {"user_id", "email", "role", "created_at"}
    assert (shared["user_id"], shared["email"], shared["role"]) == (
        other_user.id, other_user.email, "viewer",
    )  # fmt: skip
    # Sharing again is idempotent: 200, the same share, nothing changed.
    again = await share(client, user, chat_id, {"email": other_user.email, "role": "viewer"})
    assert (again.status_code, again.json()) == (200, shared)
    assert await get(client, user, f"/chats/{chat_id}/shares") == {
        "items": [shared], "total": 1, "limit": 50, "offset": 0,
    }  # fmt: skip

    # The viewer finds it among the chats shared with them (not among their own chats) ...
    owners_view = await get(client, user, f"/chats/{chat_id}")
    assert (owners_view["access"], owners_view["owner"]) == (
        "owner",
        {"id": user.id, "name": "Alice"},
    )
    listed = await get(client, other_user, "/chats/shared-with-me")
    assert listed == {
        "items": [{**owners_view, "access": "viewer", "shared_at": shared["created_at"]}],
        "total": 1, "limit": 20, "offset": 0,
    }  # fmt: skip
    assert (await get(client, other_user, "/chats/"))["total"] == 0
    assert (await get(client, user, "/chats/shared-with-me"))["total"] == 0

    # ... and reads it as its owner does, feedback included; the owner's email never shows.
    answer = (await get(client, user, f"/chats/{chat_id}/messages"))["items"][1]
    vote = await client.put(
        f"/chats/{chat_id}/messages/{answer['id']}/feedback",
        json={"score": -1, "comment": "too short"},
        headers=user.headers,
    )
    assert vote.status_code == 200
    history = await get(client, user, f"/chats/{chat_id}/history", limit=200)
    older = history["items"][len(history["items"]) // 2]["checkpoint_id"]
    for path, params in [
        (f"/chats/{chat_id}/messages", {}),
        (f"/chats/{chat_id}/messages", {"limit": 1, "before": answer["id"]}),
        (f"/chats/{chat_id}/history", {"limit": 200}),
        (f"/chats/{chat_id}/state", {}),
        (f"/chats/{chat_id}/state", {"checkpoint_id": older}),
    ]:
        response = await client.get(path, params=params, headers=other_user.headers)
        assert response.status_code == 200, response.text
        assert response.json() == await get(client, user, path, **params)
        assert user.email not in response.text
    viewers_messages = await get(client, other_user, f"/chats/{chat_id}/messages")
    assert viewers_messages["items"][1]["metadata"]["feedback"]["comment"] == "too short"
    viewers_view = await client.get(f"/chats/{chat_id}", headers=other_user.headers)
    assert viewers_view.json() == {**owners_view, "access": "viewer"}
    assert user.email not in viewers_view.text
    assert (
        user.email
        not in (await client.get("/chats/shared-with-me", headers=other_user.headers)).text
    )


async def test_chats_shared_with_me_page_most_recently_active_first(
    client: httpx.AsyncClient, user: User, other_user: User, make_agent: MakeAgent
) -> None:
    older = await echo_chat(client, user, make_agent, "first")
    newer = await echo_chat(client, user, make_agent, "second")
    for chat_id in (newer, older):
        assert (await share(client, user, chat_id, {"email": other_user.email})).status_code == 201
    await send(client, user, older, "now the most recent")
    pages = [
        await get(client, other_user, "/chats/shared-with-me", limit=1, offset=offset)
        for offset in (0, 1, 2)
    ]
    assert [[c["id"] for c in page["items"]] for page in pages] == [[older], [newer], []]
    assert {page["total"] for page in pages} == {2}


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"email": "SELF"}, 409, "cannot_share_with_self"),
        ({"email": "nobody-here@example.org"}, 404, "user_not_found"),
        ({"email": "OTHER", "role": "editor"}, 422, "validation_error"),
        ({"email": "OTHER", "role": "owner"}, 422, "validation_error"),
        ({"email": "OTHER", "role": None}, 422, "validation_error"),
        ({"email": "not-an-email"}, 422, "validation_error"),
        ({"email": "nul\x00@example.org"}, 422, "validation_error"),
        ({"email": "a" * 250 + "@example.org"}, 422, "validation_error"),
        ({"email": ""}, 422, "validation_error"),
        ({"email": 7}, 422, "validation_error"),
        ({}, 422, "validation_error"),
        ({"role": "viewer"}, 422, "validation_error"),
        ({"email": "OTHER", "can_write": True}, 422, "validation_error"),
        ([], 422, "validation_error"),
    ],
)
async def test_bad_shares_are_4xx_and_change_nothing(
    client: httpx.AsyncClient,
    user: User,
    other_user: User,
    make_agent: MakeAgent,
    body: Any,
    status: int,
    code: str,
) -> None:
    chat_id = await echo_chat(client, user, make_agent, "hello")
    if isinstance(body, dict):
        emails = {"SELF": user.email, "OTHER": other_user.email}
        body = {k: emails.get(v, v) if isinstance(v, str) else v for k, v in body.items()}
    error = assert_error(await share(client, user, chat_id, body), status, code)
    if code == "user_not_found":
        # Says what is wrong without echoing the address back.
        assert error["detail"] == "No account has this email"
    assert (await get(client, user, f"/chats/{chat_id}/shares"))["total"] == 0
    assert (await get(client, other_user, "/chats/shared-with-me"))["total"] == 0
    assert_error(await client.get(f"/chats/{chat_id}", headers=other_user.headers), 404)


async def test_a_revoked_share_is_gone_at_once_and_can_be_given_again(
    client: httpx.AsyncClient, user: User, other_user: User, make_agent: MakeAgent
) -> None:
    chat_id = await echo_chat(client, user, make_agent, "hello")
    given = (await share(client, user, chat_id, {"email": other_user.email})).json()
    assert (await get(client, other_user, f"/chats/{chat_id}"))["access"] == "viewer"
    revoke = f"/chats/{chat_id}/shares/{other_user.id}"
    assert (await client.delete(revoke, headers=user.headers)).status_code == 204
    for path in ("", "/messages", "/history", "/state"):
        response = await client.get(f"/chats/{chat_id}{path}", headers=other_user.headers)
        assert_error(response, 404, "not_found")
    assert (await get(client, user, f"/chats/{chat_id}/shares"))["items"] == []
    # Nothing left to revoke; an id that was never shared with is the same.
    assert_error(await client.delete(revoke, headers=user.headers), 404, "share_not_found")
    stranger = f"/chats/{chat_id}/shares/{uuid.uuid4()}"
    assert_error(await client.delete(stranger, headers=user.headers), 404, "share_not_found")

    regiven = await share(client, user, chat_id, {"email": other_user.email})
    assert regiven.status_code == 201
    assert regiven.json()["created_at"] > given["created_at"]
    assert (await get(client, other_user, f"/chats/{chat_id}"))["access"] == "viewer"


async def test_a_share_link_shows_the_messages_as_they_were_when_it_was_made(
    client: httpx.AsyncClient,
    user: User,
    make_agent: MakeAgent,
    database_url: str,
) -> None:
    chat_id = await echo_chat(client, user, make_agent, "one")
    messages = (await get(client, user, f"/chats/{chat_id}/messages"))["items"]
    vote = await client.put(
        f"/chats/{chat_id}/messages/{messages[1]['id']}/feedback",
        json={"score": 1, "comment": "private note"},
        headers=user.headers,
    )
    assert vote.status_code == 200
    messages = (await get(client, user, f"/chats/{chat_id}/messages"))["items"]
    assert messages[1]["metadata"]["feedback"]["comment"] == "private note"

    link = await make_link(client, user, chat_id)
    assert set(link) == {"token", "url", "created_at", "message_count"}
    assert (link["url"], link["message_count"]) == (f"/shared/{link['token']}", 2)
    await send(client, user, chat_id, "two")
    await send(client, user, chat_id, "three")
    chat = await get(client, user, f"/chats/{chat_id}")
    assert chat["message_count"] == 6

    # No sign-in needed; exactly the two messages there were, and no feedback.
    opened = await client.get(link["url"])
    assert opened.status_code == 200, opened.text
    assert opened.headers["cache-control"] == "no-store"
    agent = await get(client, user, f"/agents/{chat['agent_id']}")
    assert opened.json() == {
        "title": chat["title"],
        "agent_name": agent["name"],
        "shared_at": link["created_at"],
        "messages": without_feedback(messages),
    }
    assert "private note" not in opened.text
    assert user.email not in opened.text
    # With a token that says who you are, it is the same page.
    assert (await client.get(link["url"], headers=user.headers)).json() == opened.json()
    assert await get(client, user, f"/chats/{chat_id}/share-link") == {
        "created_at": link["created_at"], "message_count": 2,
    }  # fmt: skip

    # Only the token's hash is stored.
    async with await psycopg.AsyncConnection.connect(database_url) as db:
        stored = await (
            await db.execute("SELECT token_hash, chat_share_links::text FROM chat_share_links")
        ).fetchall()
    assert len(stored) == 1
    assert bytes(stored[0][0]) == hashlib.sha256(link["token"].encode()).digest()
    assert link["token"] not in stored[0][1]


async def test_a_new_link_replaces_the_old_one_and_a_revoked_link_is_404(
    client: httpx.AsyncClient, user: User, make_agent: MakeAgent
) -> None:
    chat_id = await echo_chat(client, user, make_agent, "one")
    old = await make_link(client, user, chat_id)
    await send(client, user, chat_id, "two")
    new = await make_link(client, user, chat_id)
    assert new["token"] != old["token"]
    assert_error(await client.get(old["url"]), 404, "not_found")
    shown = (await client.get(new["url"])).json()["messages"]
    assert [m["content"] for m in shown] == ["one", "You said: one", "two", "You said: two"]
    assert new["message_count"] == 4

    assert (
        await client.delete(f"/chats/{chat_id}/share-link", headers=user.headers)
    ).status_code == 204
    assert_error(await client.get(new["url"]), 404, "not_found")
    for method in ("GET", "DELETE"):
        response = await client.request(
            method, f"/chats/{chat_id}/share-link", headers=user.headers
        )
        assert_error(response, 404, "share_link_not_found")
    # A token that never was, or that could not be one.
    assert_error(await client.get("/shared/" + "A" * 43), 404, "not_found")
    for bad in ("not!a-token", "x" * 129):
        assert_error(await client.get(f"/shared/{bad}"), 422, "validation_error")


async def test_a_link_to_a_chat_without_messages_shows_none_ever(
    client: httpx.AsyncClient, user: User, make_agent: MakeAgent
) -> None:
    chat_id = await echo_chat(client, user, make_agent)
    link = await make_link(client, user, chat_id)
    assert link["message_count"] == 0
    await send(client, user, chat_id, "later")
    opened = await client.get(link["url"])
    assert (opened.status_code, opened.json()["messages"]) == (200, [])


async def test_a_link_made_while_a_run_is_going_shows_the_chat_before_that_run(
    client: httpx.AsyncClient, user: User, admin: User, make_agent: MakeAgent
) -> None:
    """What a running run checkpointed is not settled (a rollback deletes it): the link shows
    the chat as it was before the run, and still does after the rollback."""
    agent = await make_agent("fake:echo")
    chat_id = await open_chat(client, user, agent["id"])
    await send(client, user, chat_id, "zero")

    async def use_model(model_name: str) -> None:
        response = await client.put(
            f"/agents/{agent['id']}", json={"model_name": model_name}, headers=admin.headers
        )
        assert response.status_code == 200

    await use_model("fake:tokens-200@20")
    slow = asyncio.create_task(
        client.post(f"/chats/{chat_id}/messages", json={"content": "one"}, headers=user.headers)
    )
    # Until the run has checkpointed its user message (it then streams for 4 s).
    for _ in range(500):
        items = (await get(client, user, f"/chats/{chat_id}/messages"))["items"]
        if [m["content"] for m in items][-1:] == ["one"]:
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("the run never checkpointed its message")
    link = await make_link(client, user, chat_id)
    assert link["message_count"] == 2
    before_the_run = [m["content"] for m in (await client.get(link["url"])).json()["messages"]]
    assert before_the_run == ["zero", "You said: zero"]

    await use_model("fake:echo")
    rolled = await client.post(
        f"/chats/{chat_id}/messages",
        json={"content": "two", "multitask_strategy": "rollback"},
        headers=user.headers,
    )
    assert rolled.json()["status"] == "success"
    assert (await slow).json()["status"] == "interrupted"
    after = await get(client, user, f"/chats/{chat_id}/messages")
    assert [m["content"] for m in after["items"]] == [
        "zero", "You said: zero", "two", "You said: two",
    ]  # fmt: skip
    opened = await client.get(link["url"])
    assert opened.status_code == 200, opened.text
    assert [m["content"] for m in opened.json()["messages"]] == before_the_run


async def test_deleting_a_chat_removes_its_shares_and_link(
    client: httpx.AsyncClient,
    user: User,
    other_user: User,
    make_agent: MakeAgent,
    database_url: str,
) -> None:
    chat_id = await echo_chat(client, user, make_agent, "hello")
    assert (await share(client, user, chat_id, {"email": other_user.email})).status_code == 201
    link = await make_link(client, user, chat_id)
    assert (await client.delete(f"/chats/{chat_id}", headers=user.headers)).status_code == 204
    assert_error(await client.get(link["url"]), 404, "not_found")
    assert (await get(client, other_user, "/chats/shared-with-me"))["total"] == 0
    async with await psycopg.AsyncConnection.connect(database_url) as db:
        counts = await (
            await db.execute(
                "SELECT (SELECT count(*) FROM chat_shares), (SELECT count(*) FROM chat_share_links)"
            )
        ).fetchone()
    assert counts == (0, 0)


async def test_a_deleted_account_leaves_the_shares_it_had(
    client: httpx.AsyncClient,
    user: User,
    other_user: User,
    make_agent: MakeAgent,
    database_url: str,
) -> None:
    chat_id = await echo_chat(client, user, make_agent, "hello")
    assert (await share(client, user, chat_id, {"email": other_user.email})).status_code == 201
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as db:
        await db.execute("DELETE FROM users WHERE id = %s", (other_user.id,))
    assert (await get(client, user, f"/chats/{chat_id}/shares"))["total"] == 0


async def test_share_attempts_are_limited_per_user(
    database_url: str,
    client: httpx.AsyncClient,
    user: User,
    other_user: User,
    make_agent: MakeAgent,
) -> None:
    """Each answer tells whether an email has an account: a user may ask only so often."""
    chat_id = await echo_chat(client, user, make_agent, "hello")
    theirs = await echo_chat(client, other_user, make_agent, "hi")
    limited: FastAPI = create_app(make_settings(database_url, shares_per_minute=2))
    async with running(limited) as http:
        for _ in range(2):
            missing = await share(http, user, chat_id, {"email": "ghost@example.org"})
            assert_error(missing, 404, "user_not_found")
        refused = await share(http, user, chat_id, {"email": other_user.email})
        assert_error(refused, 429, "rate_limited")
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        # The limit is the user's: another user still shares.
        assert (await share(http, other_user, theirs, {"email": user.email})).status_code == 201
    assert (await get(client, user, f"/chats/{chat_id}/shares"))["total"] == 0


def test_share_link_tokens_never_reach_the_server_log(data_dir: Path) -> None:
    server = Server(data_dir, admin_env(data_dir))
    try:
        with httpx.Client(base_url=server.url) as http:
            owner = http.post(
                "/auth/register",
                json={"name": "Ann", "email": "ann@example.org", "password": ADMIN["password"]},
            ).json()
            headers = {"Authorization": f"Bearer {owner['access_token']}"}
            agent = http.get("/agents/", headers=headers).json()["items"][0]
            chat = http.post("/chats/", json={"agent_id": agent["id"]}, headers=headers).json()
            sent = http.post(
                f"/chats/{chat['id']}/messages", json={"content": "hi"}, headers=headers
            )
            assert sent.status_code == 201
            link = http.post(f"/chats/{chat['id']}/share-link", headers=headers).json()
            assert http.get(link["url"]).status_code == 200
            assert http.get(f"{link['url']}?utm=x").status_code == 200
    finally:
        server.stop_gracefully(signal.SIGTERM)
    log = server.log.read_text()
    assert link["token"] not in log
    # The requests were logged, with the token replaced.
    assert log.count('"GET /shared/<redacted> HTTP/1.1" 200') == 1
    assert log.count('"GET /shared/<redacted>?utm=x HTTP/1.1" 200') == 1


@pytest.mark.parametrize(
    ("path", "logged"),
    [
        ("/shared/s-pQ9jWpYtwj_WJRv_4ju", "/shared/<redacted>"),
        ("/shared/abc?utm=x", "/shared/<redacted>?utm=x"),
        ("/root/shared/abc/more", "/root/shared/<redacted>/more"),
        ("/chats/shared-with-me", "/chats/shared-with-me"),
        ("/chats/1/share-link", "/chats/1/share-link"),
    ],
)
def test_error_logs_name_the_path_without_a_share_token(path: str, logged: str) -> None:
    assert redact_path(path) == logged

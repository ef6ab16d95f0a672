"""``DELETE /users/me``: a user deletes their account with their password, and everything of
theirs goes with it (issue 14 item 8): chats as ``DELETE /chats/{id}`` deletes them (a running
run stopped first), checkpoints, runs, files and their chunks, feedback, shares both ways,
replays, memories and store items, refresh tokens, the profile, the user. Nothing of anyone
else's moves, an admin's agents and agent documents stay, and the email can register again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from psycopg.rows import dict_row

from tests.conftest import PASSWORD, RegisterFn, User, assert_error
from tests.knowledge_helpers import wait_indexed
from tests.sse import parse
from tests.test_delete_running import RUN_SECONDS, SLOW_MODEL, SSE

Db = psycopg.AsyncConnection[dict[str, Any]]


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Db]:
    """A direct connection to the test database, to count rows."""
    async with await psycopg.AsyncConnection.connect(
        database_url, autocommit=True, row_factory=dict_row
    ) as conn:
        yield conn


async def _delete_account(
    client: httpx.AsyncClient, who: User, password: str | None = None, **kwargs: Any
) -> httpx.Response:
    body = {"password": who.password if password is None else password}
    return await client.request("DELETE", "/users/me", json=body, headers=who.headers, **kwargs)


async def _default_agent(client: httpx.AsyncClient, who: User) -> str:
    agents = (await client.get("/agents/", headers=who.headers)).json()["items"]
    return str(agents[0]["id"])


async def _belongings(
    client: httpx.AsyncClient, who: User, *, share_with: list[User], onboarding_area: str
) -> dict[str, str]:
    """A chat with an answer, a vote on it, a file (indexed), shares with ``share_with``, a
    share link and a replay (done, so its own chat and runs exist); a memory, a store item,
    onboarding answers and a second login's refresh token."""
    agent = await _default_agent(client, who)
    chat = (await client.post("/chats/", json={"agent_id": agent}, headers=who.headers)).json()
    answer = await client.post(
        f"/chats/{chat['id']}/messages", json={"content": "hello there"}, headers=who.headers
    )
    assert answer.json()["status"] == "success", answer.text
    reply = answer.json()["messages"][-1]
    voted = await client.put(
        f"/chats/{chat['id']}/messages/{reply['id']}/feedback",
        json={"score": 1, "comment": "good"},
        headers=who.headers,
    )
    assert voted.status_code == 200, voted.text
    filed = await client.post(
        f"/chats/{chat['id']}/files",
        json={"title": "Notes", "text": "The meeting is on Tuesday in room four."},
        headers=who.headers,
    )
    assert filed.status_code == 202, filed.text
    [file] = await wait_indexed(client, who, f"/chats/{chat['id']}/files", 1)
    assert file["status"] == "indexed", file
    for viewer in share_with:
        shared = await client.post(
            f"/chats/{chat['id']}/shares", json={"email": viewer.email}, headers=who.headers
        )
        assert shared.status_code == 201, shared.text
    link = await client.post(f"/chats/{chat['id']}/share-link", headers=who.headers)
    assert link.status_code == 201, link.text
    replay = (
        await client.post(
            f"/chats/{chat['id']}/replays", json={"model_name": "fake:echo"}, headers=who.headers
        )
    ).json()
    while replay["status"] in ("pending", "running"):
        await asyncio.sleep(0.05)
        replay = (await client.get(f"/replays/{replay['id']}", headers=who.headers)).json()
    assert replay["status"] == "done", replay
    for namespace, key in ((["memories"], "colour"), (["notes", "work"], "desk")):
        put = await client.put(
            "/store/items",
            json={"namespace": namespace, "key": key, "value": {"text": f"{key} of {who.id}"}},
            headers=who.headers,
        )
        assert put.status_code == 204, put.text
    onboarded = await client.post(
        "/users/me/onboarding",
        json={
            "professional_role": "lawyer",
            "experience_level": "intermediate",
            "interest_area_ids": [onboarding_area],
            "preferred_interaction_style": "formal",
        },
        headers=who.headers,
    )
    assert onboarded.status_code == 200, onboarded.text
    login = await client.post("/auth/login", json={"email": who.email, "password": who.password})
    assert login.status_code == 200, login.text
    return {"chat": chat["id"], "link": link.json()["token"]}


async def _chat_ids(db: Db, user_id: str) -> list[str]:
    cur = await db.execute("SELECT id::text FROM chats WHERE user_id = %s ORDER BY id", (user_id,))
    return [row["id"] for row in await cur.fetchall()]


# Every table that holds something of a user's, counted for that user: by their id, by their
# chats' ids (the threads' checkpoints too), by their replays, by their store prefix.
COUNTS = {
    "users": "SELECT count(*) FROM users WHERE id = %(user)s",
    "refresh_tokens": "SELECT count(*) FROM refresh_tokens WHERE user_id = %(user)s",
    "user_interests": "SELECT count(*) FROM user_interests WHERE user_id = %(user)s",
    "chats": "SELECT count(*) FROM chats WHERE user_id = %(user)s OR id::text = ANY(%(chats)s)",
    "runs": "SELECT count(*) FROM runs WHERE user_id = %(user)s OR chat_id::text = ANY(%(chats)s)",
    "message_feedback": "SELECT count(*) FROM message_feedback"
    " WHERE user_id = %(user)s OR chat_id::text = ANY(%(chats)s)",
    "replays": "SELECT count(*) FROM replays WHERE user_id = %(user)s"
    " OR source_chat_id::text = ANY(%(chats)s)",
    "replay_turns": "SELECT count(*) FROM replay_turns WHERE replay_id::text = ANY(%(replays)s)",
    # Shares of their chats, and shares of others' chats with them.
    "chat_shares": "SELECT count(*) FROM chat_shares"
    " WHERE user_id = %(user)s OR chat_id::text = ANY(%(chats)s)",
    "chat_share_links": "SELECT count(*) FROM chat_share_links"
    " WHERE chat_id::text = ANY(%(chats)s)",
    "knowledge_documents": "SELECT count(*) FROM knowledge_documents"
    " WHERE chat_id::text = ANY(%(chats)s)",
    "knowledge_chunks": "SELECT count(*) FROM knowledge_chunks"
    " WHERE chat_id::text = ANY(%(chats)s)",
    "checkpoints": "SELECT count(*) FROM checkpoints WHERE thread_id = ANY(%(chats)s)",
    "checkpoint_writes": "SELECT count(*) FROM checkpoint_writes WHERE thread_id = ANY(%(chats)s)",
    "checkpoint_blobs": "SELECT count(*) FROM checkpoint_blobs WHERE thread_id = ANY(%(chats)s)",
    "store": "SELECT count(*) FROM store WHERE prefix LIKE %(prefix)s",
    "store_vectors": "SELECT count(*) FROM store_vectors WHERE prefix LIKE %(prefix)s",
}


async def _counts(db: Db, user_id: str, chats: list[str], replays: list[str]) -> dict[str, int]:
    params = {"user": user_id, "chats": chats, "replays": replays, "prefix": f"users.{user_id}%"}
    counts = {}
    for table, query in COUNTS.items():
        row = await (await db.execute(query, params)).fetchone()  # type: ignore[arg-type]
        assert row is not None
        counts[table] = row["count"]
    return counts


async def _replay_ids(db: Db, user_id: str) -> list[str]:
    cur = await db.execute("SELECT id::text FROM replays WHERE user_id = %s", (user_id,))
    return [row["id"] for row in await cur.fetchall()]


async def _until_checkpointed(db: Db, thread_id: str) -> None:
    for _ in range(500):
        cur = await db.execute(
            "SELECT count(*) FROM checkpoints WHERE thread_id = %s", (thread_id,)
        )
        row = await cur.fetchone()
        assert row is not None
        if row["count"] > 0:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the run never checkpointed")


async def test_deleting_an_account_leaves_nothing_of_theirs_and_moves_nothing_of_others(
    client: httpx.AsyncClient,
    user: User,
    other_user: User,
    admin: User,
    register: RegisterFn,
    db: Db,
    interest_areas: dict[str, str],
) -> None:
    alice, bob, carol = user, other_user, await register(name="Carol")
    mine = await _belongings(client, alice, share_with=[bob], onboarding_area=interest_areas["law"])
    theirs = await _belongings(
        client, bob, share_with=[alice, carol], onboarding_area=interest_areas["finance"]
    )
    # A second chat of Alice's, with a run going on a slow model when the account goes.
    slow = await client.post(
        "/agents/", json={"name": "Slow", "model_name": SLOW_MODEL}, headers=admin.headers
    )
    running = (
        await client.post("/chats/", json={"agent_id": slow.json()["id"]}, headers=alice.headers)
    ).json()["id"]
    streaming = asyncio.create_task(
        client.post(
            f"/chats/{running}/messages", json={"content": "go"}, headers=alice.headers | SSE
        )
    )
    await _until_checkpointed(db, running)

    alices_chats = await _chat_ids(db, alice.id)
    alices_replays = await _replay_ids(db, alice.id)
    # Her first chat, the replay's chat and the running one.
    assert len(alices_chats) == 3
    before = await _counts(db, alice.id, alices_chats, alices_replays)
    # Not vacuous: every table held something of hers.
    assert {table for table, n in before.items() if n == 0} == set()
    assert before["refresh_tokens"] == 2
    assert (before["store"], before["user_interests"], before["chat_shares"]) == (2, 1, 2)
    bobs_chats = await _chat_ids(db, bob.id)
    bobs_replays = await _replay_ids(db, bob.id)
    bobs_before = await _counts(db, bob.id, bobs_chats, bobs_replays)
    carols_before = await _counts(db, carol.id, [], [])
    shared_with_bob = (await client.get("/chats/shared-with-me", headers=bob.headers)).json()
    assert shared_with_bob["total"] == 1

    deleted = await _delete_account(client, alice)
    assert deleted.status_code == 204, deleted.text
    assert deleted.content == b""

    # The run was stopped first: its stream ended with `cancelled`, well before its end.
    events, _ = parse((await asyncio.wait_for(streaming, timeout=RUN_SECONDS)).text)
    assert (events[-1].event, events[-1].data["status"]) == ("end", "cancelled")
    assert sum(e.event == "token" for e in events) < 200
    # Past the time the run would have finished: nothing came back for any of her threads.
    await asyncio.sleep(RUN_SECONDS + 0.5)
    after = await _counts(db, alice.id, alices_chats, alices_replays)
    assert after == dict.fromkeys(COUNTS, 0)

    # Bob's rows are exactly as they were, but for the shares between him and Alice: of his
    # chat with her, and of hers with him (his chat's share with Carol stays).
    assert await _chat_ids(db, bob.id) == bobs_chats
    assert bobs_before["chat_shares"] == 3
    assert await _counts(db, bob.id, bobs_chats, bobs_replays) == {**bobs_before, "chat_shares": 1}
    assert await _counts(db, carol.id, [], []) == carols_before
    shared_with_bob = (await client.get("/chats/shared-with-me", headers=bob.headers)).json()
    assert (shared_with_bob["items"], shared_with_bob["total"]) == ([], 0)
    shared_with_carol = (await client.get("/chats/shared-with-me", headers=carol.headers)).json()
    assert [chat["id"] for chat in shared_with_carol["items"]] == [theirs["chat"]]
    bobs_memories = (await client.get("/users/me/memories", headers=bob.headers)).json()
    assert [memory["key"] for memory in bobs_memories["items"]] == ["colour"]
    # Her public link is gone with her chat; his still opens.
    assert_error(await client.get(f"/shared/{mine['link']}"), 404, "not_found")
    assert (await client.get(f"/shared/{theirs['link']}")).status_code == 200


async def test_afterwards_her_tokens_are_refused_and_the_email_registers_again(
    client: httpx.AsyncClient, user: User, register: RegisterFn, db: Db
) -> None:
    agent = await _default_agent(client, user)
    chat = await client.post("/chats/", json={"agent_id": agent}, headers=user.headers)
    assert chat.status_code == 201
    assert (await _delete_account(client, user)).status_code == 204

    for method, path in (("GET", "/users/me"), ("GET", "/chats/"), ("GET", "/users/me/memories")):
        assert_error(await client.request(method, path, headers=user.headers), 401, "unauthorized")
    # Deleting again with the same token: the account is no more.
    assert_error(await _delete_account(client, user), 401, "unauthorized")
    refreshed = await client.post("/auth/refresh", json={"refresh_token": user.refresh_token})
    assert_error(refreshed, 401, "unauthorized")
    login = await client.post("/auth/login", json={"email": user.email, "password": PASSWORD})
    assert_error(login, 401, "unauthorized")

    again = await register(name="Alice again", email=user.email.upper())
    assert again.id != user.id
    assert (await client.get("/users/me", headers=again.headers)).json()["name"] == "Alice again"
    chats = (await client.get("/chats/", headers=again.headers)).json()
    assert (chats["items"], chats["total"]) == ([], 0)
    memories = (await client.get("/users/me/memories", headers=again.headers)).json()
    assert memories["total"] == 0
    # The old token names the old id: still refused, the new account's data is not its.
    assert_error(await client.get("/chats/", headers=user.headers), 401, "unauthorized")
    row = await (await db.execute("SELECT count(*) FROM users")).fetchone()
    assert row == {"count": 1}


async def test_a_wrong_password_changes_nothing_and_counts_as_a_failed_login(
    app: FastAPI, client: httpx.AsyncClient, user: User, db: Db, interest_areas: dict[str, str]
) -> None:
    await _belongings(client, user, share_with=[], onboarding_area=interest_areas["law"])
    chats, replays = await _chat_ids(db, user.id), await _replay_ids(db, user.id)
    before = await _counts(db, user.id, chats, replays)
    me = (await client.get("/users/me", headers=user.headers)).json()

    # Five wrong passwords (the login limit for one email from one address) are each a 403.
    for password in ("wrong password", PASSWORD.upper(), PASSWORD + " ", "x", PASSWORD[:-1]):
        refused = await _delete_account(client, user, password)
        body = assert_error(refused, 403, "wrong_password")
        assert body["detail"] == "Incorrect password"
    # The sixth is refused unchecked, even the right one, and so is a login from here.
    limited = await _delete_account(client, user)
    assert_error(limited, 429, "rate_limited")
    assert 1 <= int(limited.headers["Retry-After"]) <= 15 * 60 + 1
    login = await client.post("/auth/login", json={"email": user.email, "password": PASSWORD})
    assert_error(login, 429, "rate_limited")

    assert await _counts(db, user.id, chats, replays) == before
    assert (await client.get("/users/me", headers=user.headers)).json() == me

    # Another address is not locked (as for login): the right password deletes the account.
    elsewhere = httpx.ASGITransport(app=app, client=("203.0.113.9", 4321))
    async with httpx.AsyncClient(transport=elsewhere, base_url="http://switchboard") as other:
        assert (await _delete_account(other, user)).status_code == 204
    assert await _counts(db, user.id, chats, replays) == dict.fromkeys(COUNTS, 0)


async def test_the_right_password_clears_the_failures_it_follows(
    client: httpx.AsyncClient, user: User, register: RegisterFn
) -> None:
    for _ in range(4):
        assert_error(await _delete_account(client, user, "not it"), 403, "wrong_password")
    assert (await _delete_account(client, user)).status_code == 204
    # The email's failures from this address went with the success: a new account with it
    # has the full five attempts of its own.
    again = await register(email=user.email)
    for _ in range(5):
        assert_error(await _delete_account(client, again, "not it"), 403, "wrong_password")
    assert_error(await _delete_account(client, again, "not it"), 429, "rate_limited")


@pytest.mark.parametrize(
    "body",
    [
        None,
        {},
        {"password": ""},
        {"password": 12345678},
        {"password": None},
        {"password": "x" * 257},
        {"password": "nul\x00byte"},
        {"password": PASSWORD, "confirm": True},
        ["password", PASSWORD],
    ],
)
async def test_a_missing_or_invalid_body_is_a_422_and_changes_nothing(
    client: httpx.AsyncClient, user: User, db: Db, body: Any
) -> None:
    response = await client.request("DELETE", "/users/me", json=body, headers=user.headers)
    assert_error(response, 422, "validation_error")
    assert (await client.get("/users/me", headers=user.headers)).status_code == 200
    row = await (await db.execute("SELECT count(*) FROM login_failures")).fetchone()
    assert row == {"count": 0}


async def test_an_admins_agents_and_their_documents_outlive_the_admin(
    client: httpx.AsyncClient, admin: User, user: User, db: Db
) -> None:
    made = await client.post(
        "/agents/", json={"name": "Kept", "model_name": "fake:echo"}, headers=admin.headers
    )
    agent = made.json()
    uploaded = await client.post(
        f"/agents/{agent['id']}/knowledge",
        json={"title": "Facts", "text": "The office opens at nine and closes at five."},
        headers=admin.headers,
    )
    assert uploaded.status_code == 202, uploaded.text
    [document] = await wait_indexed(client, admin, f"/agents/{agent['id']}/knowledge", 1)
    assert document["status"] == "indexed", document
    chat = await client.post("/chats/", json={"agent_id": agent["id"]}, headers=user.headers)
    answered = await client.post(
        f"/chats/{chat.json()['id']}/messages", json={"content": "hi"}, headers=user.headers
    )
    assert answered.json()["status"] == "success"
    chunks = "SELECT count(*) FROM knowledge_chunks WHERE document_id = %s"
    before = await (await db.execute(chunks, (document["id"],))).fetchone()
    assert before is not None and before["count"] > 0

    assert (await _delete_account(client, admin)).status_code == 204

    row = await (
        await db.execute("SELECT created_by, deleted_at FROM agents WHERE id = %s", (agent["id"],))
    ).fetchone()
    assert row == {"created_by": None, "deleted_at": None}
    row = await (
        await db.execute(
            "SELECT user_id, agent_id::text FROM knowledge_documents WHERE id = %s",
            (document["id"],),
        )
    ).fetchone()
    assert row == {"user_id": None, "agent_id": agent["id"]}
    assert await (await db.execute(chunks, (document["id"],))).fetchone() == before
    # The agent still answers its users, in the chat they had with it and in a new one.
    seen = await client.get(f"/agents/{agent['id']}", headers=user.headers)
    assert seen.status_code == 200
    again = await client.post(
        f"/chats/{chat.json()['id']}/messages", json={"content": "still there?"},
        headers=user.headers,
    )  # fmt: skip
    assert again.json()["status"] == "success", again.text
    assert len((await client.get("/chats/", headers=user.headers)).json()["items"]) == 1


async def test_a_chat_created_while_the_account_is_deleted_is_deleted_too(
    client: httpx.AsyncClient, user: User, database_url: str, db: Db
) -> None:
    """A chat whose insert is in flight when the account goes (it holds the user's row against
    deletion until it commits) is found under the lock and deleted like the others."""
    agent = await _default_agent(client, user)
    first = (await client.post("/chats/", json={"agent_id": agent}, headers=user.headers)).json()
    async with await psycopg.AsyncConnection.connect(database_url) as late:
        cur = await late.execute(
            "INSERT INTO chats (user_id, agent_id) VALUES (%s, %s) RETURNING id::text",
            (user.id, agent),
        )
        row = await cur.fetchone()
        assert row is not None
        # And its thread's first checkpoint: only deleting the chat as a chat removes it.
        await late.execute(
            "INSERT INTO checkpoints (thread_id, checkpoint_id, checkpoint) VALUES (%s, 'c', '{}')",
            (row[0],),
        )
        deleting = asyncio.create_task(_delete_account(client, user))
        # The deletion has deleted the chat it saw and waits for the user's row.
        for _ in range(500):
            cur = await db.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE wait_event_type = 'Lock' AND query LIKE 'SELECT id FROM users%%'"
            )
            waiting = await cur.fetchone()
            assert waiting is not None
            if waiting["count"] == 1:
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the deletion never waited for the user's row")
        assert await _chat_ids(db, user.id) == []
        await late.commit()
    assert (await asyncio.wait_for(deleting, timeout=10)).status_code == 204
    assert await _counts(db, user.id, [first["id"], row[0]], []) == dict.fromkeys(COUNTS, 0)

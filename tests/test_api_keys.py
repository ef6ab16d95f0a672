"""API keys (issue 18): made, listed and revoked by their user; used as `Authorization: Bearer`
and as `x-api-key` on both APIs and by the official SDK's `api_key`, in the user's own scope
(an administrator's only when asked for); revoked, expired and deleted-account keys refused."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import PASSWORD, RegisterFn, User, assert_error, sql
from tests.protocol import Live, hi, http, live

__all__ = ["http", "live"]  # a started server's fixtures, shared with the Agent Protocol tests

KEY = re.compile(r"^sb_live_[0-9A-Za-z]{43}$")
LISTED_FIELDS = {"id", "name", "prefix", "admin", "created_at", "last_used_at", "expires_at"}


async def _make(
    client: httpx.AsyncClient, owner: User, name: str = "ci", **fields: Any
) -> dict[str, Any]:
    response = await client.post(
        "/users/me/api-keys", json={"name": name, **fields}, headers=owner.headers
    )
    assert response.status_code == 201, response.text
    return response.json()


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _header(key: str) -> dict[str, str]:
    return {"x-api-key": key}


async def _keys(client: httpx.AsyncClient, owner: User) -> dict[str, Any]:
    response = await client.get("/users/me/api-keys", headers=owner.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def _agent_id(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    agents = (await client.get("/agents/", params={"limit": 100}, headers=headers)).json()
    return next(a["id"] for a in agents["items"] if a["slug"] == "assistant")


async def test_a_key_is_shown_once_then_listed_without_its_secret(
    client: httpx.AsyncClient, user: User, database_url: str
) -> None:
    made = await _make(client, user, name="  deploy bot  ")
    key = made.pop("key")
    assert KEY.match(key)
    assert made["name"] == "deploy bot"
    assert made["prefix"] == key[:14]
    assert made["prefix"].startswith("sb_live_")
    assert (made["admin"], made["last_used_at"], made["expires_at"]) == (False, None, None)
    assert set(made) == LISTED_FIELDS

    listing = await client.get("/users/me/api-keys", headers=user.headers)
    assert listing.json() == {"items": [made], "total": 1, "limit": 50, "offset": 0}
    assert key not in listing.text
    assert key[14:] not in listing.text
    # Stored as its SHA-256 only.
    rows = await sql(database_url, "SELECT key_hash, prefix FROM api_keys")
    assert len(rows) == 1
    assert rows[0]["prefix"] == key[:14]
    assert bytes(rows[0]["key_hash"]) == hashlib.sha256(key.encode()).digest()
    assert key.encode() not in bytes(rows[0]["key_hash"])


async def test_each_key_is_different_and_the_newest_is_listed_first(
    client: httpx.AsyncClient, user: User
) -> None:
    first = await _make(client, user, name="one")
    second = await _make(client, user, name="two")
    assert first["key"] != second["key"]
    assert first["prefix"] != second["prefix"]
    listed = await _keys(client, user)
    assert [k["name"] for k in listed["items"]] == ["two", "one"]
    page = await client.get("/users/me/api-keys?limit=1&offset=1", headers=user.headers)
    assert [k["name"] for k in page.json()["items"]] == ["one"]
    assert page.json()["total"] == 2


async def test_a_key_authenticates_on_the_native_api_with_either_header(
    client: httpx.AsyncClient, user: User
) -> None:
    key = (await _make(client, user))["key"]
    for headers in (_bearer(key), _header(key)):
        me = await client.get("/users/me", headers=headers)
        assert me.status_code == 200, me.text
        assert (me.json()["id"], me.json()["email"], me.json()["role"]) == (
            user.id, user.email, "user"
        )  # fmt: skip
        chat = await client.post(
            "/chats/", json={"agent_id": await _agent_id(client, headers)}, headers=headers
        )
        assert chat.status_code == 201, chat.text
        answer = await client.post(
            f"/chats/{chat.json()['id']}/messages", json={"content": "ping"}, headers=headers
        )
        assert answer.status_code == 201, answer.text
        assert [m["content"] for m in answer.json()["messages"]] == ["ping", "You said: ping"]
        run_id = answer.json()["run_id"]
        run = await client.get(f"/runs/{run_id}", headers=headers)
        assert run.json()["status"] == "success"
        # The run's stream: a route that reads its credential itself.
        stream = await client.get(f"/runs/{run_id}/stream", headers=headers)
        assert stream.status_code == 200, stream.text
        assert "event: end" in stream.text
    # The chats are the user's own, seen with the login's token too.
    mine = (await client.get("/chats/", headers=user.headers)).json()
    assert mine["total"] == 2


async def test_a_key_authenticates_on_the_agent_protocol_with_either_header(
    client: httpx.AsyncClient, user: User
) -> None:
    key = (await _make(client, user))["key"]
    for headers in (_bearer(key), _header(key)):
        thread = await client.post("/threads", json={"metadata": {"via": "key"}}, headers=headers)
        assert thread.status_code == 200, thread.text
        thread_id = thread.json()["thread_id"]
        body = {"assistant_id": "assistant", "input": hi("over the protocol")}
        waited = await client.post(f"/threads/{thread_id}/runs/wait", json=body, headers=headers)
        assert waited.status_code == 200, waited.text
        assert [m["content"] for m in waited.json()["messages"]] == [
            "over the protocol", "You said: over the protocol"
        ]  # fmt: skip
        # The thread is a chat of the key's user.
        chat = await client.get(f"/chats/{thread_id}", headers=user.headers)
        assert chat.status_code == 200, chat.text


async def test_the_official_sdk_runs_a_thread_with_its_api_key(
    live: Live, http: httpx.AsyncClient
) -> None:
    headers = live.user()
    made = await http.post("/users/me/api-keys", json={"name": "sdk"}, headers=headers)
    assert made.status_code == 201, made.text
    key = made.json()["key"]
    # No Authorization header: the SDK sends the key as `x-api-key`.
    client = live.client({}, api_key=key)
    thread = await client.threads.create(metadata={"from": "sdk"})
    values = await client.runs.wait(thread["thread_id"], "t5", input=hi("from the sdk"))
    assert [m["content"] for m in values["messages"]] == [
        "from the sdk",
        "tok0 tok1 tok2 tok3 tok4",
    ]
    streamed = [
        part.event
        async for part in client.runs.stream(thread["thread_id"], "t5", input=hi("again"))
    ]
    assert streamed == ["metadata", "values", "values", "end"]
    found = await client.threads.search(metadata={"from": "sdk"})
    assert [t["thread_id"] for t in found] == [thread["thread_id"]]
    # Another user's SDK does not see the thread.
    stranger = live.client(live.user())
    assert await stranger.threads.search(metadata={"from": "sdk"}) == []
    # Revoked: the SDK's next call is refused.
    key_id = made.json()["id"]
    revoked = await http.delete(f"/users/me/api-keys/{key_id}", headers=headers)
    assert revoked.status_code == 204
    with pytest.raises(httpx.HTTPStatusError) as refused:
        await client.threads.get(thread["thread_id"])
    assert refused.value.response.status_code == 401
    assert refused.value.response.json()["code"] == "api_key_revoked"
    # Nothing the server logged holds the key (its access log included).
    assert key not in live.server.log.read_text()
    assert key[14:] not in live.server.log.read_text()


async def test_a_revoked_key_is_refused_at_once_and_revoking_twice_is_404(
    client: httpx.AsyncClient, user: User
) -> None:
    made = await _make(client, user)
    assert (await client.get("/users/me", headers=_bearer(made["key"]))).status_code == 200
    deleted = await client.delete(f"/users/me/api-keys/{made['id']}", headers=user.headers)
    assert deleted.status_code == 204
    for headers in (_bearer(made["key"]), _header(made["key"])):
        body = assert_error(await client.get("/users/me", headers=headers), 401, "api_key_revoked")
        assert body["detail"] == "This API key was revoked"
        # Where the route reads the credential itself, and on the Agent Protocol.
        assert_error(
            await client.post("/threads", json={}, headers=headers), 401, "api_key_revoked"
        )
    assert (await _keys(client, user))["items"] == []
    again = await client.delete(f"/users/me/api-keys/{made['id']}", headers=user.headers)
    assert_error(again, 404, "not_found")


async def test_an_expired_key_is_refused(
    client: httpx.AsyncClient, user: User, database_url: str
) -> None:
    made = await _make(client, user, expires_in_days=30)
    rows = await sql(database_url, "SELECT created_at, expires_at FROM api_keys")
    assert rows[0]["expires_at"] - rows[0]["created_at"] == timedelta(days=30)
    assert (await client.get("/users/me", headers=_header(made["key"]))).status_code == 200
    await sql(
        database_url, "UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = %s",
        made["id"],
    )  # fmt: skip
    for headers in (_bearer(made["key"]), _header(made["key"])):
        body = assert_error(await client.get("/users/me", headers=headers), 401, "api_key_expired")
        assert body["detail"] == "This API key has expired"
    # Still listed (with its expiry), until revoked.
    assert [k["id"] for k in (await _keys(client, user))["items"]] == [made["id"]]


async def test_another_users_key_cannot_be_revoked_or_seen(
    client: httpx.AsyncClient, user: User, other_user: User
) -> None:
    made = await _make(client, user)
    theirs = await client.delete(f"/users/me/api-keys/{made['id']}", headers=other_user.headers)
    nothing = await client.delete(f"/users/me/api-keys/{uuid.uuid4()}", headers=other_user.headers)
    assert_error(theirs, 404, "not_found")
    assert theirs.json() == nothing.json()
    assert (await _keys(client, other_user))["items"] == []
    # Untouched: it still works, as its owner's.
    me = await client.get("/users/me", headers=_bearer(made["key"]))
    assert me.json()["id"] == user.id
    # A key of the other user's does not reach the first user's chat.
    agent_id = await _agent_id(client, user.headers)
    chat = (await client.post("/chats/", json={"agent_id": agent_id}, headers=user.headers)).json()
    stranger_key = (await _make(client, other_user))["key"]
    assert_error(await client.get(f"/chats/{chat['id']}", headers=_bearer(stranger_key)), 404)
    assert_error(await client.get(f"/threads/{chat['id']}", headers=_header(stranger_key)), 404)


async def test_a_users_key_never_reaches_admin_routes_an_explicit_admin_key_does(
    client: httpx.AsyncClient, user: User, admin: User, database_url: str
) -> None:
    user_key = (await _make(client, user))["key"]
    assert_error(await client.get("/mcp-servers", headers=_bearer(user_key)), 403, "forbidden")
    # A non-admin asking for an admin key: refused, nothing made.
    refused = await client.post(
        "/users/me/api-keys", json={"name": "x", "admin": True}, headers=user.headers
    )
    assert_error(refused, 403, "admin_required")
    assert (await _keys(client, user))["total"] == 1

    # An administrator's key is a user's unless asked for.
    plain = await _make(client, admin, name="plain")
    assert plain["admin"] is False
    for headers in (_bearer(plain["key"]), _header(plain["key"])):
        assert_error(await client.get("/mcp-servers", headers=headers), 403, "forbidden")
        created = await client.post("/agents/", json={"name": "Nope"}, headers=headers)
        assert_error(created, 403, "forbidden")
        me = await client.get("/users/me", headers=headers)
        assert (me.json()["id"], me.json()["role"]) == (admin.id, "user")
    explicit = await _make(client, admin, name="ops", admin=True)
    assert explicit["admin"] is True
    for headers in (_bearer(explicit["key"]), _header(explicit["key"])):
        listed = await client.get("/mcp-servers", headers=headers)
        assert listed.status_code == 200, listed.text
        assert (await client.get("/users/me", headers=headers)).json()["role"] == "admin"
    made = await client.post("/agents/", json={"name": "By key"}, headers=_bearer(explicit["key"]))
    assert made.status_code == 201, made.text
    # An admin key of someone no longer an administrator acts as a user.
    await sql(database_url, "UPDATE users SET role = 'user' WHERE id = %s", admin.id)
    demoted = await client.get("/mcp-servers", headers=_bearer(explicit["key"]))
    assert_error(demoted, 403, "forbidden")


async def test_a_key_cannot_make_keys(client: httpx.AsyncClient, admin: User) -> None:
    key = (await _make(client, admin, admin=True))["key"]
    for headers in (_bearer(key), _header(key)):
        for body in ({"name": "more"}, {"name": "more", "admin": True}):
            refused = await client.post("/users/me/api-keys", json=body, headers=headers)
            assert_error(refused, 403, "login_required")
    # It lists and revokes keys (its own too).
    listed = await client.get("/users/me/api-keys", headers=_bearer(key))
    assert listed.json()["total"] == 1
    own_id = listed.json()["items"][0]["id"]
    assert (
        await client.delete(f"/users/me/api-keys/{own_id}", headers=_bearer(key))
    ).status_code == 204
    assert_error(await client.get("/users/me", headers=_bearer(key)), 401, "api_key_revoked")


async def test_at_most_the_configured_number_of_working_keys(
    app: FastAPI, client: httpx.AsyncClient, user: User, database_url: str
) -> None:
    limit = app.state.switchboard.settings.api_keys_per_user
    assert limit == 20
    made = [await _make(client, user, name=f"k{i}") for i in range(limit)]
    over = await client.post("/users/me/api-keys", json={"name": "one more"}, headers=user.headers)
    body = assert_error(over, 409, "api_key_limit_reached")
    assert "20" in body["detail"]
    assert (await _keys(client, user))["total"] == 20
    # A revoked key, and an expired one, no longer count.
    await client.delete(f"/users/me/api-keys/{made[0]['id']}", headers=user.headers)
    await _make(client, user, name="after a revoke")
    await sql(database_url, "UPDATE api_keys SET expires_at = now() WHERE id = %s", made[1]["id"])
    await _make(client, user, name="after an expiry")
    over = await client.post("/users/me/api-keys", json={"name": "one more"}, headers=user.headers)
    assert_error(over, 409, "api_key_limit_reached")
    # 20 that work, and the expired one, listed until revoked.
    assert (await _keys(client, user))["total"] == 21


async def test_last_used_is_recorded_at_most_once_a_minute(
    client: httpx.AsyncClient, user: User, database_url: str
) -> None:
    made = await _make(client, user)

    async def last_used() -> Any:
        rows = await sql(
            database_url, "SELECT last_used_at FROM api_keys WHERE id = %s", made["id"]
        )
        return rows[0]["last_used_at"]

    assert await last_used() is None
    assert (await client.get("/users/me", headers=_bearer(made["key"]))).status_code == 200
    first = await last_used()
    assert first is not None
    listed = (await _keys(client, user))["items"][0]
    assert listed["last_used_at"] is not None
    for _ in range(5):
        assert (await client.get("/users/me", headers=_header(made["key"]))).status_code == 200
    assert await last_used() == first
    # Once the recorded use is a minute old, the next use is recorded.
    await sql(
        database_url,
        "UPDATE api_keys SET last_used_at = last_used_at - interval '61 seconds' WHERE id = %s",
        made["id"],
    )
    moved = await last_used()
    assert moved == first - timedelta(seconds=61)
    assert (await client.get("/users/me", headers=_header(made["key"]))).status_code == 200
    assert await last_used() > first


async def test_a_deleted_accounts_keys_stop_working(
    client: httpx.AsyncClient, register: RegisterFn, database_url: str
) -> None:
    gone = await register(name="Gone")
    key = (await _make(client, gone))["key"]
    deleted = await client.request(
        "DELETE", "/users/me", json={"password": PASSWORD}, headers=_bearer(key)
    )
    assert deleted.status_code == 204, deleted.text
    for headers in (_bearer(key), _header(key)):
        assert_error(await client.get("/users/me", headers=headers), 401, "unauthorized")
        assert_error(await client.post("/threads", json={}, headers=headers), 401, "unauthorized")
    assert await sql(database_url, "SELECT id FROM api_keys") == []


@pytest.mark.parametrize(
    "credential",
    [
        "sb_live_short",
        "sb_live_" + "A" * 43,  # well formed, but no such key
        "sb_live_" + "A" * 42 + "-",
        "sb_test_" + "A" * 43,
        "lsv2_pt_" + "a" * 32,  # a LangSmith key, sent by an SDK from its environment
    ],
)
async def test_anything_but_a_working_key_is_401(
    client: httpx.AsyncClient, user: User, credential: str
) -> None:
    await _make(client, user)
    for headers in (_bearer(credential), _header(credential)):
        assert_error(await client.get("/users/me", headers=headers), 401, "unauthorized")
        assert_error(await client.get("/chats/", headers=headers), 401, "unauthorized")


async def test_the_bearer_header_wins_over_x_api_key(
    client: httpx.AsyncClient, user: User, other_user: User
) -> None:
    revoked = await _make(client, other_user)
    await client.delete(f"/users/me/api-keys/{revoked['id']}", headers=other_user.headers)
    headers = {**user.headers, **_header(revoked["key"])}
    me = await client.get("/users/me", headers=headers)
    assert me.json()["id"] == user.id
    working = (await _make(client, other_user))["key"]
    me = await client.get("/users/me", headers={**_bearer(working), **_header("junk")})
    assert me.json()["id"] == other_user.id


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": ""},
        {"name": "   "},
        {"name": "x" * 101},
        {"name": "a\x00b"},
        {"name": "x", "expires_in_days": 0},
        {"name": "x", "expires_in_days": 3651},
        {"name": "x", "expires_in_days": 1.5},
        {"name": "x", "expires_in_days": "7"},
        {"name": "x", "admin": "yes"},
        {"name": "x", "scopes": ["all"]},
    ],
)
async def test_bad_requests_are_422_and_make_nothing(
    client: httpx.AsyncClient, user: User, body: dict[str, Any]
) -> None:
    response = await client.post("/users/me/api-keys", json=body, headers=user.headers)
    assert_error(response, 422, "validation_error")
    assert (await _keys(client, user))["total"] == 0


async def test_malformed_key_id_is_422(client: httpx.AsyncClient, user: User) -> None:
    response = await client.delete("/users/me/api-keys/not-a-uuid", headers=user.headers)
    assert_error(response, 422, "validation_error")


async def test_no_key_reaches_a_log_line(
    client: httpx.AsyncClient, user: User, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        made = await _make(client, user)
        key = made["key"]
        for headers in (_bearer(key), _header(key)):
            await client.get("/users/me", headers=headers)
            await client.post("/threads", json={}, headers=headers)
        await client.delete(f"/users/me/api-keys/{made['id']}", headers=user.headers)
        await client.get("/users/me", headers=_bearer(key))
    assert caplog.records
    logged = "\n".join(f"{r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in caplog.records)
    assert key not in logged
    assert key[14:] not in logged


async def test_the_openapi_document_names_both_ways_to_send_a_key(app: FastAPI) -> None:
    document = app.openapi()
    schemes = document["components"]["securitySchemes"]
    assert schemes["ApiKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "x-api-key",
        "description": schemes["ApiKey"]["description"],
    }
    operation = document["paths"]["/threads"]["post"]
    assert {name for requirement in operation["security"] for name in requirement} == {
        "OAuth2PasswordBearer", "ApiKey"
    }  # fmt: skip
    created = document["paths"]["/users/me/api-keys"]["post"]["responses"]
    assert {"201", "401", "403", "409", "422"} <= set(created)


MCP_HEADERS = {"Accept": "application/json, text/event-stream"}


def _rpc(id_: int, method: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id_, "method": method, "params": params}


async def test_a_key_is_what_an_mcp_host_is_configured_with(
    client: httpx.AsyncClient, user: User
) -> None:
    """`/mcp` takes a key in either header: a host set up once keeps working past the 15
    minutes of an access token."""
    made = await _make(client, user, name="mcp host")
    initialize = _rpc(1, "initialize", {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "keys", "version": "0"},
    })  # fmt: skip
    for headers in (_bearer(made["key"]), _header(made["key"])):
        started = await client.post("/mcp", json=initialize, headers={**MCP_HEADERS, **headers})
        assert started.status_code == 200, started.text
        assert started.json()["result"]["serverInfo"]["name"] == "switchboard"
        listed = await client.post(
            "/mcp", json=_rpc(2, "tools/list", {}), headers={**MCP_HEADERS, **headers}
        )
        assert listed.status_code == 200, listed.text
        assert "assistant" in [tool["name"] for tool in listed.json()["result"]["tools"]]
    await client.delete(f"/users/me/api-keys/{made['id']}", headers=user.headers)
    for headers in (_bearer(made["key"]), _header(made["key"])):
        refused = await client.post("/mcp", json=initialize, headers={**MCP_HEADERS, **headers})
        assert_error(refused, 401, "api_key_revoked")


async def test_a_key_opens_the_v2_event_websocket(live: Live, http: httpx.AsyncClient) -> None:
    headers = live.user()
    made = (await http.post("/users/me/api-keys", json={"name": "ws"}, headers=headers)).json()
    key = made["key"]
    thread = live.thread(headers, "t5")
    waited = await http.post(
        f"/threads/{thread}/runs/wait",
        json={"assistant_id": "t5", "input": hi()},
        headers=_header(key),
    )
    assert waited.status_code == 200, waited.text
    url = live.url.replace("http://", "ws://") + f"/threads/{thread}/stream/events"
    subscribe = {"id": 1, "method": "subscription.subscribe",
                 "params": {"channels": ["lifecycle"]}}  # fmt: skip
    for sent in (_bearer(key), _header(key)):
        async with connect(url, additional_headers=sent) as socket:
            await socket.send(json.dumps(subscribe))
            # The events the socket read already come before the answer, the others after it.
            answers, events = [], []
            while not answers or events[-1:] != ["completed"]:
                message = json.loads(await socket.recv())
                if message["type"] in ("success", "error"):
                    answers.append(message)
                else:
                    events.append(message["params"]["data"]["event"])
        assert [a["type"] for a in answers] == ["success"], answers
        assert events == ["running", "completed"]
    await http.delete(f"/users/me/api-keys/{made['id']}", headers=headers)
    for sent in (_bearer(key), _header(key)):
        async with connect(url, additional_headers=sent) as socket:
            with pytest.raises(ConnectionClosed) as closed:
                await socket.recv()
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4401, "Not authenticated")

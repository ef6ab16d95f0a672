"""Every protected route, called by the wrong people: ownership, roles, tokens, malformed ids.

Table-driven so that a route added later without its check shows up here as a failure.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI

from tests.conftest import PASSWORD, RegisterFn, User, assert_error, delete_user_row

PROTOCOL_RUN = {
    "assistant_id": "assistant",
    "input": {"messages": [{"role": "user", "content": "x"}]},
}
# A cron with no tick while a test runs (once a year).
CRON = {"assistant_id": "assistant", "schedule": "0 0 1 1 *"}
# (method, path template, JSON body) for every route that acts on a chat or run by id.
OWNED_ROUTES = [
    ("GET", "/chats/{chat}", None),
    ("PUT", "/chats/{chat}", {"title": "stolen"}),
    ("DELETE", "/chats/{chat}", None),
    ("GET", "/chats/{chat}/messages", None),
    ("POST", "/chats/{chat}/messages", {"content": "hi"}),
    (
        "POST",
        "/chats/{chat}/approvals",
        {"decisions": [{"tool_call_id": "x", "action": "approve"}]},
    ),
    ("GET", "/chats/{chat}/runs", None),
    ("GET", "/chats/{chat}/history", None),
    ("GET", "/chats/{chat}/state", None),
    ("POST", "/chats/{chat}/fork", {}),
    ("POST", "/chats/{chat}/fork", {"edit": {"message_id": "{message}", "content": "hi"}}),
    ("POST", "/chats/{chat}/messages/{message}/regenerate", None),
    ("PUT", "/chats/{chat}/messages/{message}/feedback", {"score": 1}),
    ("DELETE", "/chats/{chat}/messages/{message}/feedback", None),
    ("GET", "/chats/{chat}/export", None),
    ("GET", "/chats/{chat}/export?format=json", None),
    # Sharing is managed by the owner alone.
    ("GET", "/chats/{chat}/shares", None),
    ("POST", "/chats/{chat}/shares", {"email": "someone@example.org"}),
    ("DELETE", "/chats/{chat}/shares/{viewer}", None),
    ("GET", "/chats/{chat}/share-link", None),
    ("POST", "/chats/{chat}/share-link", None),
    ("DELETE", "/chats/{chat}/share-link", None),
    # A chat's files are its owner's alone (a viewer does not see them either).
    ("POST", "/chats/{chat}/files", {"title": "stolen", "text": "x"}),
    ("GET", "/chats/{chat}/files", None),
    ("DELETE", "/chats/{chat}/files/{file}", None),
    ("GET", "/runs/{run}", None),
    ("GET", "/runs/{run}/stream", None),
    ("POST", "/runs/{run}/stream-token", None),
    ("POST", "/runs/{run}/cancel", None),
    ("POST", "/chats/{chat}/replays", {"model_name": "fake:echo"}),
    ("POST", "/chats/{chat}/replays", {"agent_id": "{agent}"}),
    ("GET", "/chats/{chat}/replays", None),
    ("GET", "/replays/{replay}", None),
    ("POST", "/replays/{replay}/cancel", None),
    # The Agent Protocol: a thread is a chat.
    ("POST", "/threads/{chat}/runs", PROTOCOL_RUN),
    ("POST", "/threads/{chat}/runs/stream", PROTOCOL_RUN),
    ("POST", "/threads/{chat}/runs/wait", PROTOCOL_RUN),
    ("GET", "/threads/{chat}/runs", None),
    ("GET", "/threads/{chat}/runs/{run}", None),
    ("DELETE", "/threads/{chat}/runs/{run}", None),
    ("GET", "/threads/{chat}/runs/{run}/join", None),
    ("GET", "/threads/{chat}/runs/{run}/stream", None),
    ("POST", "/threads/{chat}/runs/{run}/cancel", None),
    ("GET", "/threads/{chat}/stream", None),
    # The v2 event stream; a command other than run.start (which creates a thread that does
    # not exist yet, so for a missing id it is no 404: tests/test_v2_events.py covers it).
    ("POST", "/threads/{chat}/stream/events", {"channels": ["values"]}),
    ("POST", "/threads/{chat}/commands", {"id": 1, "method": "agent.getTree"}),
    # A bulk cancel naming someone else's thread and run: as if neither existed.
    ("POST", "/runs/cancel", {"thread_id": "{chat}", "run_ids": ["{run}"]}),
    ("GET", "/threads/{chat}", None),
    ("PATCH", "/threads/{chat}", {"metadata": {"x": 1}}),
    ("DELETE", "/threads/{chat}", None),
    ("GET", "/threads/{chat}/state", None),
    ("POST", "/threads/{chat}/state", {"values": {"messages": []}}),
    ("GET", "/threads/{chat}/history", None),
    ("POST", "/threads/{chat}/history", {"limit": 2}),
    ("POST", "/threads/{chat}/copy", None),
    # Thread lifecycle: a ttl read or set, a prune naming someone else's thread.
    ("GET", "/threads/{chat}?include=ttl", None),
    ("PATCH", "/threads/{chat}", {"metadata": {}, "ttl": {"ttl": 1, "strategy": "delete"}}),
    ("POST", "/threads/prune", {"thread_ids": ["{chat}"]}),
    ("POST", "/threads/prune", {"thread_ids": ["{chat}"], "strategy": "keep_latest"}),
    # Crons: a thread's, and any cron by id.
    ("POST", "/threads/{chat}/runs/crons", CRON),
    ("GET", "/runs/crons/{cron}", None),
    ("PATCH", "/runs/crons/{cron}", {"enabled": False}),
    ("DELETE", "/runs/crons/{cron}", None),
    # An API key is revoked by its owner alone.
    ("DELETE", "/users/me/api-keys/{api_key}", None),
]
# A2A calls to ``POST /a2a/{agent}`` naming the owner's thread and run (JSON-RPC refuses in the
# body, HTTP 200): each is "task not found" for anyone else, as for ids that do not exist.
A2A_MESSAGE = {"role": "user", "parts": [{"kind": "text", "text": "x"}], "messageId": "m"}
A2A_OWNED_CALLS = [
    ("tasks/get", {"id": "{chat}:{run}"}),
    ("tasks/get", {"id": "{run}"}),
    ("tasks/get", {"id": "{run}", "contextId": "{chat}"}),
    ("tasks/cancel", {"id": "{chat}:{run}"}),
    ("message/send", {"message": {**A2A_MESSAGE, "taskId": "{chat}:{run}"}}),
    ("message/stream", {"message": {**A2A_MESSAGE, "taskId": "{chat}:{run}"}}),
]
# A message to the owner's context: a context that does not exist is created for the caller,
# so these are only compared with the refusal itself.
A2A_CONTEXT_CALLS = [
    ("message/send", {"message": {**A2A_MESSAGE, "contextId": "{chat}"}}),
    ("message/stream", {"message": {**A2A_MESSAGE, "contextId": "{chat}"}}),
]
# What a user the chat is shared with may do: read it, as its owner does. Every other route
# of OWNED_ROUTES is a 404 for them, exactly as for a stranger.
VIEWER_READS = {
    ("GET", "/chats/{chat}"),
    ("GET", "/chats/{chat}/messages"),
    ("GET", "/chats/{chat}/history"),
    ("GET", "/chats/{chat}/state"),
    ("GET", "/chats/{chat}/export"),
    ("GET", "/chats/{chat}/export?format=json"),
}
ADMIN_ROUTES = [
    ("POST", "/agents/", {"name": "Intruder"}),
    ("PUT", "/agents/{agent}", {"name": "Renamed"}),
    ("DELETE", "/agents/{agent}", None),
    ("GET", "/agents/{agent}/feedback-summary", None),
    ("GET", "/agents/{agent}/versions", None),
    ("GET", "/agents/{agent}/versions/1", None),
    ("POST", "/agents/{agent}/versions/1/restore", None),
    ("POST", "/agents/{agent}/knowledge", {"title": "Intruder", "text": "x"}),
    ("GET", "/agents/{agent}/knowledge", None),
    ("DELETE", "/agents/{agent}/knowledge/{document}", None),
    ("POST", "/assistants", {"graph_id": "assistant", "name": "Intruder"}),
    ("PATCH", "/assistants/{agent}", {"name": "Renamed"}),
    ("DELETE", "/assistants/{agent}", None),
    (
        "POST",
        "/mcp-servers",
        {"name": "intruder", "transport": "streamable_http", "url": "https://example.com/mcp"},
    ),
    ("GET", "/mcp-servers", None),
    ("GET", "/mcp-servers/{mcp_server}", None),
    ("POST", "/mcp-servers/{mcp_server}/refresh", None),
    ("DELETE", "/mcp-servers/{mcp_server}", None),
    ("POST", "/assistants/{agent}/versions", {}),
    ("POST", "/assistants/{agent}/latest", {"version": 1}),
    # Every user's activity, in figures (Prometheus scrapes it with an admin's token).
    ("GET", "/metrics", None),
    # Quotas, usage and statistics (a user's own usage is GET /users/me/usage).
    ("GET", "/admin/users/{user}/quotas", None),
    ("PUT", "/admin/users/{user}/quotas", {"runs_per_minute": 0}),
    ("GET", "/admin/usage", None),
    ("GET", "/admin/usage?group_by=model", None),
    ("GET", "/admin/stats", None),
]
PUBLIC_ROUTES = {
    ("POST", "/auth/register"),
    ("POST", "/auth/login"),
    ("POST", "/auth/refresh"),
    ("POST", "/auth/logout"),
    ("GET", "/interest-areas"),
    ("GET", "/healthz"),
    ("GET", "/info"),
    ("GET", "/shared/{token}"),
}
A2A_ROUTES = {
    ("POST", "/a2a/{assistant_id}"),
    ("GET", "/a2a/{assistant_id}"),
    ("GET", "/a2a/{assistant_id}/.well-known/agent-card.json"),
    ("GET", "/.well-known/agent-card.json"),
}

# Routes the OpenAPI document leaves out (they are no JSON APIs), behind the same bearer token:
# (method, path, headers, body), each a valid request but for its token.
MCP_INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "matrix", "version": "0"},
    },
}
UNDOCUMENTED_ROUTES = [
    ("POST", "/mcp", {"Accept": "application/json, text/event-stream"}, MCP_INITIALIZE),
]


def fill(body: Any, ids: dict[str, str]) -> Any:
    """``body`` with the ids of ``{name}`` placeholders in its strings."""
    if isinstance(body, dict):
        return {key: fill(value, ids) for key, value in body.items()}
    if isinstance(body, list):
        return [fill(value, ids) for value in body]
    return body.format(**ids) if isinstance(body, str) else body


async def _owned_objects(
    client: httpx.AsyncClient, owner: User, viewer: User | None = None
) -> dict[str, str]:
    """A chat of ``owner``'s with one answer; with ``viewer``, shared with them and with a
    share link."""
    agents = (await client.get("/agents/", headers=owner.headers)).json()["items"]
    chat = (
        await client.post("/chats/", json={"agent_id": agents[0]["id"]}, headers=owner.headers)
    ).json()
    answer = await client.post(
        f"/chats/{chat['id']}/messages", json={"content": "private"}, headers=owner.headers
    )
    replay = (
        await client.post(
            f"/chats/{chat['id']}/replays", json={"model_name": "fake:echo"}, headers=owner.headers
        )
    ).json()
    # Ended, so that what it does in the background is done before anyone else looks.
    while replay["status"] in ("pending", "running"):
        await asyncio.sleep(0.05)
        replay = (await client.get(f"/replays/{replay['id']}", headers=owner.headers)).json()
    ids = {
        "chat": chat["id"],
        "run": answer.json()["run_id"],
        "agent": agents[0]["id"],
        "message": answer.json()["messages"][0]["id"],
        "replay": replay["id"],
    }
    filed = await client.post(
        f"/chats/{chat['id']}/files",
        json={"title": "Notes", "text": "private notes"},
        headers=owner.headers,
    )
    assert filed.status_code == 202, filed.text
    ids["file"] = filed.json()["id"]
    cron = await client.post(f"/threads/{chat['id']}/runs/crons", json=CRON, headers=owner.headers)
    assert cron.status_code == 200, cron.text
    ids["cron"] = cron.json()["cron_id"]
    key = await client.post("/users/me/api-keys", json={"name": "matrix"}, headers=owner.headers)
    assert key.status_code == 201, key.text
    ids["api_key"] = key.json()["id"]
    if viewer is not None:
        shared = await client.post(
            f"/chats/{chat['id']}/shares", json={"email": viewer.email}, headers=owner.headers
        )
        assert shared.status_code == 201, shared.text
        link = await client.post(f"/chats/{chat['id']}/share-link", headers=owner.headers)
        assert link.status_code == 201, link.text
        ids["viewer"] = viewer.id
    return ids


async def _snapshot(client: httpx.AsyncClient, owner: User, ids: dict[str, str]) -> Any:
    chat = (await client.get(f"/chats/{ids['chat']}", headers=owner.headers)).json()
    messages = (await client.get(f"/chats/{ids['chat']}/messages", headers=owner.headers)).json()
    runs = (await client.get(f"/chats/{ids['chat']}/runs", headers=owner.headers)).json()
    replays = (await client.get(f"/chats/{ids['chat']}/replays", headers=owner.headers)).json()
    replay = (await client.get(f"/replays/{ids['replay']}", headers=owner.headers)).json()
    shares = (await client.get(f"/chats/{ids['chat']}/shares", headers=owner.headers)).json()
    link = (await client.get(f"/chats/{ids['chat']}/share-link", headers=owner.headers)).json()
    files = (await client.get(f"/chats/{ids['chat']}/files", headers=owner.headers)).json()
    crons = (await client.post("/runs/crons/search", json={}, headers=owner.headers)).json()
    keys = (await client.get("/users/me/api-keys", headers=owner.headers)).json()
    # The indexer may be working on the file: its status is not the stranger's doing.
    files = [{k: v for k, v in f.items() if k not in ("status", "chunk_count", "embedding_model",
              "indexed_at", "error")} for f in files["items"]]  # fmt: skip
    return chat, messages, runs, replays, replay, shares, link, files, crons, keys


async def _assert_like_a_stranger(
    client: httpx.AsyncClient, caller: User, ids: dict[str, str], routes: Any
) -> None:
    """Each route is a 404 for ``caller``, indistinguishable from one naming ids that do not
    exist."""
    missing = {k: str(uuid.uuid4()) for k in ids}
    for method, template, body in routes:
        theirs = await client.request(
            method, template.format(**ids), json=fill(body, ids), headers=caller.headers
        )
        nothing = await client.request(
            method, template.format(**missing), json=fill(body, missing), headers=caller.headers
        )
        assert_error(theirs, 404, "not_found")
        assert theirs.json() == nothing.json(), (method, template)


async def test_another_users_objects_are_404_and_untouched(
    client: httpx.AsyncClient, user: User, other_user: User, register: RegisterFn
) -> None:
    ids = await _owned_objects(client, user, viewer=await register(name="Carol"))
    before = await _snapshot(client, user, ids)
    await _assert_like_a_stranger(client, other_user, ids, OWNED_ROUTES)
    assert await _snapshot(client, user, ids) == before
    mine = (await client.get("/chats/", headers=other_user.headers)).json()
    assert mine["items"] == []
    assert mine["total"] == 0
    filtered = await client.get(
        "/chats/", params={"agent_id": ids["agent"]}, headers=other_user.headers
    )
    assert filtered.json()["total"] == 0


class _KeyHolder:
    """A caller that authenticates with one of its user's API keys instead of a login."""

    def __init__(self, headers: dict[str, str]):
        self.headers = headers


async def _api_key(client: httpx.AsyncClient, owner: User, **fields: Any) -> str:
    made = await client.post(
        "/users/me/api-keys", json={"name": "matrix", **fields}, headers=owner.headers
    )
    assert made.status_code == 201, made.text
    return str(made.json()["key"])


async def test_another_users_api_key_is_a_stranger_too(
    client: httpx.AsyncClient, user: User, other_user: User, register: RegisterFn
) -> None:
    """The ownership checks hold for a key exactly as for a login's token, whichever header
    carries it."""
    ids = await _owned_objects(client, user, viewer=await register(name="Carol"))
    before = await _snapshot(client, user, ids)
    key = await _api_key(client, other_user)
    for headers in ({"Authorization": f"Bearer {key}"}, {"x-api-key": key}):
        await _assert_like_a_stranger(client, _KeyHolder(headers), ids, OWNED_ROUTES)  # type: ignore[arg-type]
    assert await _snapshot(client, user, ids) == before


async def _a2a(
    client: httpx.AsyncClient, caller: User, agent: str, method: str, params: Any
) -> dict[str, Any]:
    """A JSON-RPC call's answer: its one response (from the stream, for ``message/stream``)."""
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    response = await client.post(f"/a2a/{agent}", json=body, headers=caller.headers)
    assert response.status_code == 200, response.text
    if method != "message/stream":
        return response.json()
    data = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    assert len(data) == 1, response.text
    return json.loads(data[0])


async def test_a2a_calls_on_another_users_thread_or_run_are_task_not_found(
    app: FastAPI, client: httpx.AsyncClient, user: User, other_user: User
) -> None:
    """A stranger, and a user the chat is shared with: the same ``-32001`` as for ids that
    do not exist, and nothing changes."""
    documented = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
        if path.startswith(("/a2a", "/.well-known"))
    }
    assert documented == A2A_ROUTES
    ids = await _owned_objects(client, user, viewer=other_user)
    before = await _snapshot(client, user, ids)
    missing = {k: str(uuid.uuid4()) for k in ids}
    not_found = {"code": -32001, "message": "Task not found"}
    for method, params in A2A_OWNED_CALLS:
        theirs = await _a2a(client, other_user, ids["agent"], method, fill(params, ids))
        nothing = await _a2a(client, other_user, ids["agent"], method, fill(params, missing))
        assert theirs == nothing == {"jsonrpc": "2.0", "id": 1, "error": not_found}, method
    for method, params in A2A_CONTEXT_CALLS:
        theirs = await _a2a(client, other_user, ids["agent"], method, fill(params, ids))
        assert theirs["error"] == {"code": -32001, "message": "Context not found"}, method
    assert await _snapshot(client, user, ids) == before
    # The owner's own run is a task of theirs.
    own = await _a2a(client, user, ids["agent"], "tasks/get", {"id": f"{ids['chat']}:{ids['run']}"})
    assert own["result"]["status"]["state"] == "completed"


def _records(export: httpx.Response) -> list[dict[str, Any]]:
    records = [json.loads(line) for line in export.text.splitlines()]
    return [{k: v for k, v in record.items() if k != "exported_at"} for record in records]


async def test_a_viewer_reads_what_the_owner_reads_and_is_a_stranger_everywhere_else(
    client: httpx.AsyncClient, user: User, other_user: User
) -> None:
    assert VIEWER_READS <= {(method, template) for method, template, _ in OWNED_ROUTES}
    ids = await _owned_objects(client, user, viewer=other_user)
    before = await _snapshot(client, user, ids)
    for method, template in sorted(VIEWER_READS):
        path = template.format(**ids)
        owners = await client.request(method, path, headers=user.headers)
        viewers = await client.request(method, path, headers=other_user.headers)
        assert (owners.status_code, viewers.status_code) == (200, 200), (path, viewers.text)
        if template == "/chats/{chat}":
            owner = {"id": user.id, "name": "Alice"}
            assert owners.json() == {**before[0], "access": "owner", "owner": owner}
            assert viewers.json() == {**owners.json(), "access": "viewer"}
        elif "/export" in template:  # the same records, but for when each was exported
            assert _records(viewers) == _records(owners), path
        else:
            assert viewers.json() == owners.json(), path
    # Every write, every run, the Agent Protocol and the sharing routes: 404, as for anyone.
    writes = [route for route in OWNED_ROUTES if route[:2] not in VIEWER_READS]
    await _assert_like_a_stranger(client, other_user, ids, writes)
    assert await _snapshot(client, user, ids) == before

    # Revoked: at once, every route (the reads too) is a 404 as for a stranger.
    revoked = await client.delete(
        f"/chats/{ids['chat']}/shares/{other_user.id}", headers=user.headers
    )
    assert revoked.status_code == 204
    await _assert_like_a_stranger(client, other_user, ids, OWNED_ROUTES)
    shared = await client.get("/chats/shared-with-me", headers=other_user.headers)
    assert (shared.json()["items"], shared.json()["total"]) == ([], 0)


async def test_admin_routes_are_403_for_users_and_change_nothing(
    client: httpx.AsyncClient, user: User
) -> None:
    agents_before = (await client.get("/agents/", headers=user.headers)).json()
    ids = {
        "agent": agents_before["items"][0]["id"],
        "document": str(uuid.uuid4()),
        "mcp_server": str(uuid.uuid4()),
        "user": user.id,
    }
    for method, template, body in ADMIN_ROUTES:
        response = await client.request(
            method, template.format(**ids), json=body, headers=user.headers
        )
        assert_error(response, 403, "forbidden")
    assert (await client.get("/agents/", headers=user.headers)).json() == agents_before


async def test_admin_routes_are_403_for_an_admins_key_made_without_admin(
    client: httpx.AsyncClient, admin: User
) -> None:
    """An administrator's key acts as a user unless the key was made with ``admin``."""
    agents_before = (await client.get("/agents/", headers=admin.headers)).json()
    ids = {
        "agent": agents_before["items"][0]["id"],
        "document": str(uuid.uuid4()),
        "mcp_server": str(uuid.uuid4()),
        "user": admin.id,
    }
    key = await _api_key(client, admin)
    for headers in ({"Authorization": f"Bearer {key}"}, {"x-api-key": key}):
        for method, template, body in ADMIN_ROUTES:
            response = await client.request(
                method, template.format(**ids), json=body, headers=headers
            )
            assert_error(response, 403, "forbidden")
    assert (await client.get("/agents/", headers=admin.headers)).json() == agents_before
    # The same route with a key made with ``admin``: served.
    admin_key = await _api_key(client, admin, admin=True)
    served = await client.get("/mcp-servers", headers={"x-api-key": admin_key})
    assert served.status_code == 200, served.text


async def test_every_protected_route_needs_a_valid_token(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    # Every operation the app documents, so a new route is covered the day it is added.
    routes = [
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
        if (method.upper(), path) not in PUBLIC_ROUTES
    ]
    assert len(routes) == 132
    fake_id = str(uuid.uuid4())
    for method, path in routes:
        url = path.replace("{chat_id}", fake_id).replace("{agent_id}", fake_id)
        url = url.replace("{run_id}", fake_id).replace("{thread_id}", fake_id)
        url = url.replace("{assistant_id}", fake_id).replace("{checkpoint_id}", fake_id)
        url = url.replace("{message_id}", fake_id).replace("{replay_id}", fake_id)
        url = url.replace("{user_id}", fake_id).replace("{document_id}", fake_id)
        url = url.replace("{file_id}", fake_id).replace("{cron_id}", fake_id)
        url = url.replace("{key_id}", fake_id)
        for headers in ({}, {"Authorization": "Bearer not-a-token"}):
            response = await client.request(method, url, headers=headers)
            assert_error(response, 401, "unauthorized")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/chats/not-a-uuid"),
        ("PUT", "/chats/not-a-uuid"),
        ("DELETE", "/chats/not-a-uuid"),
        ("GET", "/chats/not-a-uuid/messages"),
        ("POST", "/chats/not-a-uuid/messages"),
        ("GET", "/chats/not-a-uuid/runs"),
        ("GET", "/chats/not-a-uuid/shares"),
        ("POST", "/chats/not-a-uuid/share-link"),
        ("DELETE", "/chats/not-a-uuid/shares/not-a-uuid"),
        ("GET", "/runs/not-a-uuid"),
        ("GET", "/runs/not-a-uuid/stream"),
        ("POST", "/runs/not-a-uuid/cancel"),
        ("POST", "/chats/not-a-uuid/replays"),
        ("GET", "/chats/not-a-uuid/replays"),
        ("GET", "/replays/not-a-uuid"),
        ("POST", "/replays/not-a-uuid/cancel"),
        ("GET", "/agents/not-a-uuid"),
        ("PUT", "/agents/not-a-uuid"),
        ("DELETE", "/agents/not-a-uuid"),
        ("GET", "/threads/not-a-uuid/runs"),
        ("GET", "/threads/not-a-uuid/runs/not-a-uuid"),
        ("POST", "/threads/not-a-uuid/runs/not-a-uuid/cancel"),
        ("GET", "/threads/not-a-uuid/stream"),
        ("POST", "/threads/not-a-uuid/stream/events"),
        ("POST", "/threads/not-a-uuid/commands"),
        ("POST", "/threads/not-a-uuid/runs/crons"),
        ("GET", "/runs/crons/not-a-uuid"),
        ("PATCH", "/runs/crons/not-a-uuid"),
        ("DELETE", "/runs/crons/not-a-uuid"),
    ],
)
async def test_malformed_ids_are_422(
    client: httpx.AsyncClient, admin: User, method: str, path: str
) -> None:
    body = {"content": "hi"} if method == "POST" and "messages" in path else None
    response = await client.request(method, path, json=body, headers=admin.headers)
    assert_error(response, 422, "validation_error")


async def test_a_deleted_users_token_is_401_where_the_route_reads_the_user_itself(
    client: httpx.AsyncClient, user: User, database_url: str
) -> None:
    """Routes that start runs read the user with their first query instead of a query of
    their own; a token whose user is gone is still a 401, and nothing is written."""
    ids = await _owned_objects(client, user)
    agent = (await client.get(f"/agents/{ids['agent']}", headers=user.headers)).json()
    await delete_user_row(database_url, user.id)
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as db:
        run = {**PROTOCOL_RUN, "assistant_id": agent["slug"]}
        for method, path, body in [
            ("POST", "/chats/", {"agent_id": ids["agent"]}),
            ("POST", "/threads", {}),
            (
                "POST",
                "/threads",
                {"thread_id": str(uuid.uuid4()), "metadata": {"graph_id": agent["slug"]}},
            ),
            ("POST", f"/chats/{ids['chat']}/messages", {"content": "hi"}),
            ("POST", f"/threads/{ids['chat']}/runs", run),
            ("POST", f"/threads/{ids['chat']}/runs/stream", run),
            ("POST", f"/threads/{ids['chat']}/runs/wait", run),
            ("POST", f"/threads/{uuid.uuid4()}/runs", {**run, "if_not_exists": "create"}),
            ("POST", "/runs/stream", run),
            ("POST", "/runs/wait", run),
            ("POST", "/runs", run),
            ("POST", "/runs/batch", [run, run]),
            (
                "POST",
                f"/threads/{uuid.uuid4()}/commands",
                {"id": 1, "method": "run.start", "params": run},
            ),
        ]:
            response = await client.request(method, path, json=body, headers=user.headers)
            assert_error(response, 401, "unauthorized")
        counts = await (
            await db.execute("SELECT (SELECT count(*) FROM chats), (SELECT count(*) FROM runs)")
        ).fetchone()
    assert counts == (0, 0)


# What a deleted account's token sends where a route would otherwise refuse the request for its
# body before reading the user, or where a body would write something: each valid as such.
DELETED_ACCOUNT_BODIES = {
    ("POST", "/chats/"): {"agent_id": "{agent}"},
    ("POST", "/chats/{chat_id}/messages"): {"content": "hi"},
    ("POST", "/chats/{chat_id}/approvals"): {
        "decisions": [{"tool_call_id": "x", "action": "approve"}]
    },
    ("POST", "/threads"): {},
    ("POST", "/threads/{thread_id}/runs"): PROTOCOL_RUN,
    ("POST", "/threads/{thread_id}/runs/stream"): PROTOCOL_RUN,
    ("POST", "/threads/{thread_id}/runs/wait"): PROTOCOL_RUN,
    ("POST", "/runs/stream"): PROTOCOL_RUN,
    ("POST", "/runs/wait"): PROTOCOL_RUN,
    ("POST", "/runs"): PROTOCOL_RUN,
    ("POST", "/runs/batch"): [PROTOCOL_RUN],
    ("POST", "/runs/cancel"): {"status": "all"},
    ("POST", "/threads/prune"): {"thread_ids": []},
    ("PUT", "/store/items"): {"namespace": ["notes"], "key": "k", "value": {"text": "x"}},
    ("POST", "/runs/crons"): CRON,
    ("POST", "/threads/{thread_id}/runs/crons"): CRON,
    ("PATCH", "/runs/crons/{cron_id}"): {"enabled": False},
    ("POST", "/assistants/{assistant_id}/versions"): {},
    ("POST", "/assistants/{assistant_id}/latest"): {"version": 1},
    ("DELETE", "/users/me"): {"password": PASSWORD},
    ("POST", "/users/me/api-keys"): {"name": "after deletion"},
    ("POST", "/threads/{thread_id}/stream/events"): {"channels": ["values"]},
    ("POST", "/threads/{thread_id}/commands"): {
        "id": 1,
        "method": "run.start",
        "params": PROTOCOL_RUN,
    },
}


async def test_a_deleted_accounts_token_is_401_on_every_route(
    app: FastAPI, client: httpx.AsyncClient, user: User, database_url: str
) -> None:
    """After ``DELETE /users/me``, the account's still unexpired access token is refused on
    every operation the app documents (its own chat, run and file ids included), never a 404,
    a 422 or a 500, and nothing is written for it."""
    ids = await _owned_objects(client, user)
    deleted = await client.request(
        "DELETE", "/users/me", json={"password": PASSWORD}, headers=user.headers
    )
    assert deleted.status_code == 204, deleted.text
    params = {
        "chat_id": ids["chat"], "thread_id": ids["chat"], "run_id": ids["run"],
        "message_id": ids["message"], "replay_id": ids["replay"], "file_id": ids["file"],
        "agent_id": ids["agent"], "assistant_id": ids["agent"], "user_id": user.id,
        "document_id": str(uuid.uuid4()), "checkpoint_id": str(uuid.uuid4()), "key": "k",
        "cron_id": ids["cron"], "server_id": str(uuid.uuid4()), "version": 1,
        "key_id": ids["api_key"],
    }  # fmt: skip
    routes = [
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
        if (method.upper(), path) not in PUBLIC_ROUTES
    ]
    assert len(routes) == 132
    for method, path in routes:
        body = fill(DELETED_ACCOUNT_BODIES.get((method, path)), ids)
        response = await client.request(
            method, path.format(**params), json=body, headers=user.headers
        )
        assert response.status_code == 401, (method, path, response.text)
        assert_error(response, 401, "unauthorized")
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as db:
        counts = await (
            await db.execute(
                "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM chats),"
                " (SELECT count(*) FROM runs), (SELECT count(*) FROM store),"
                " (SELECT count(*) FROM crons), (SELECT count(*) FROM api_keys)"
            )
        ).fetchone()
    assert counts == (0, 0, 0, 0, 0, 0)


async def test_routes_outside_the_openapi_document_need_a_live_accounts_token(
    app: FastAPI, client: httpx.AsyncClient, user: User, register: RegisterFn
) -> None:
    """Each is a 401 in the API's JSON shape without a token, with a bad one and with a deleted
    account's; with a valid token the same request is served (so the 401s are the token's)."""
    documented = app.openapi()["paths"]
    gone = await register(name="Gone")
    deleted = await client.request(
        "DELETE", "/users/me", json={"password": PASSWORD}, headers=gone.headers
    )
    assert deleted.status_code == 204
    for method, path, headers, body in UNDOCUMENTED_ROUTES:
        assert path not in documented
        for token in ({}, {"Authorization": "Bearer not-a-token"}, gone.headers):
            response = await client.request(method, path, json=body, headers={**headers, **token})
            assert_error(response, 401, "unauthorized")
        served = await client.request(method, path, json=body, headers={**headers, **user.headers})
        assert served.status_code == 200, (path, served.text)

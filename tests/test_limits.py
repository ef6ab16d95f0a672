"""Size limits an attacker found missing: request bodies (every route), Agent Protocol messages
(the native API's 32,000 characters), metadata size and depth, and what a page of history holds.

Real Postgres, the real app over ASGI, nothing of ours mocked.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI

from api.app import create_app
from api.services import threads as threads_service
from storage.db import connection_kwargs
from tests.conftest import User, assert_error, make_settings, running

MAX_BODY = 1_048_576
TWO_MB = 2 * 1_048_576
CHUNK = 65_536
# POST /chats/{id}/messages: the body limit, and room for 4 images of 5 MiB as base64.
MESSAGE_LIMIT = MAX_BODY + 4 * ((5 * MAX_BODY + 2) // 3 * 4)


@pytest.fixture(scope="module")
async def app(database_url: str) -> AsyncIterator[FastAPI]:
    # The shared app's, with room for the registrations of this module's tests: registrations
    # per client address are limited, and every test here registers from the same one.
    application = create_app(make_settings(database_url, register_per_minute=1000))
    async with application.router.lifespan_context(application):
        yield application


def _compact(value: Any) -> bytes:
    # How the app's JSON responses, and the limits, measure JSON.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _padded(size: int) -> bytes:
    """A JSON body of exactly ``size`` bytes: a thread whose metadata is one long string."""
    body = _compact({"metadata": {"k": ""}})
    return _compact({"metadata": {"k": "x" * (size - len(body))}})


async def _counts(database_url: str) -> tuple[int, int, int]:
    """Chats (threads), runs and checkpoints of them: what a request could have created."""
    async with await psycopg.AsyncConnection.connect(database_url, **connection_kwargs()) as conn:
        cur = await conn.execute(
            "SELECT (SELECT count(*) FROM chats) AS chats, (SELECT count(*) FROM runs) AS runs,"
            " (SELECT count(*) FROM checkpoints"
            "  WHERE thread_id IN (SELECT id::text FROM chats)) AS checkpoints"
        )
        row = await cur.fetchone()
    assert row is not None
    return row["chats"], row["runs"], row["checkpoints"]


def _json_headers(user: User) -> dict[str, str]:
    return {**user.headers, "Content-Type": "application/json"}


async def _thread(client: httpx.AsyncClient, user: User, graph_id: str = "assistant") -> str:
    response = await client.post(
        "/threads", json={"metadata": {"graph_id": graph_id}}, headers=user.headers
    )
    assert response.status_code == 200, response.text
    return str(response.json()["thread_id"])


async def _chat(client: httpx.AsyncClient, user: User, agent_id: str) -> str:
    response = await client.post("/chats/", json={"agent_id": agent_id}, headers=user.headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _message(content: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": content}]}


# Request bodies.


async def test_a_body_over_the_limit_is_413_on_protocol_and_native_routes(
    client: httpx.AsyncClient,
    user: User,
    seeded_agents: dict[str, dict[str, Any]],
    database_url: str,
) -> None:
    chat_id = await _chat(client, user, seeded_agents["assistant"]["id"])
    thread_id = await _thread(client, user)
    before = await _counts(database_url)
    assert before == (2, 0, 0)
    big = _padded(TWO_MB)
    assert len(big) == TWO_MB
    for path in (
        "/threads",
        f"/threads/{thread_id}/state",
        "/runs/batch",
        "/chats/",
        "/auth/register",
    ):
        response = await client.post(path, content=big, headers=_json_headers(user))
        body = assert_error(response, 413, "payload_too_large")
        assert body["detail"] == "Request body too large: at most 1048576 bytes", path
        assert response.headers["connection"] == "close"
    response = await client.patch(f"/threads/{thread_id}", content=big, headers=_json_headers(user))
    assert_error(response, 413, "payload_too_large")
    # A message has room for its images as base64 besides: 4 of 5 MiB each. So have a fork's
    # edit and the Agent Protocol's runs, whose input messages may hold images.
    limit = MESSAGE_LIMIT
    for url in (
        f"/chats/{chat_id}/fork",
        f"/threads/{thread_id}/runs",
        f"/threads/{thread_id}/runs/stream",
        f"/threads/{thread_id}/runs/wait",
        "/runs",
        "/runs/stream",
        "/runs/wait",
        f"/chats/{chat_id}/messages",
    ):
        response = await client.post(url, content=_padded(limit + 1), headers=_json_headers(user))
        body = assert_error(response, 413, "payload_too_large")
        assert body["detail"] == f"Request body too large: at most {limit} bytes", url
    # ... and at its limit it is read (and refused for what it holds).
    response = await client.post(url, content=_padded(limit), headers=_json_headers(user))
    assert_error(response, 422, "validation_error")
    assert await _counts(database_url) == before


async def test_a_body_of_exactly_the_limit_is_read_and_one_byte_more_is_not(
    client: httpx.AsyncClient, user: User, database_url: str
) -> None:
    at_limit = _padded(MAX_BODY)
    assert len(at_limit) == MAX_BODY
    response = await client.post("/threads", content=at_limit, headers=_json_headers(user))
    # Read and validated: its metadata is far over 16 KiB.
    body = assert_error(response, 422, "validation_error")
    assert [problem["loc"] for problem in body["detail"]] == [["body", "metadata"]]
    response = await client.post(
        "/threads", content=_padded(MAX_BODY + 1), headers=_json_headers(user)
    )
    assert_error(response, 413, "payload_too_large")
    assert await _counts(database_url) == (0, 0, 0)


async def test_a_chunked_body_is_refused_as_soon_as_it_passes_the_limit(
    client: httpx.AsyncClient,
    user: User,
    seeded_agents: dict[str, dict[str, Any]],
    database_url: str,
) -> None:
    chat_id = await _chat(client, user, seeded_agents["assistant"]["id"])
    # A message's limit has room for 4 images of 5 MiB as base64 besides.
    for path, limit in (("/threads", MAX_BODY), (f"/chats/{chat_id}/messages", MESSAGE_LIMIT)):
        sent = 0

        async def chunks(count: int = limit // CHUNK + 10) -> AsyncIterator[bytes]:
            nonlocal sent
            for _ in range(count):
                sent += 1
                yield b" " * CHUNK

        response = await client.post(path, content=chunks(), headers=_json_headers(user))
        assert_error(response, 413, "payload_too_large")
        # The chunk that passes the limit is the last one read (the 17th of /threads').
        assert sent == limit // CHUNK + 1, path
    assert await _counts(database_url) == (1, 0, 0)

    async def small() -> AsyncIterator[bytes]:
        yield b'{"metadata": '
        yield b'{"k": "v"}}'

    response = await client.post("/threads", content=small(), headers=_json_headers(user))
    assert response.status_code == 200, response.text
    assert response.json()["metadata"] == {"k": "v"}


@pytest.mark.parametrize("length", ["abc", "-1", "+5", " ", "1e3", "9" * 19, "5_0"])
async def test_an_unusable_content_length_is_400(
    client: httpx.AsyncClient, user: User, database_url: str, length: str
) -> None:
    request = client.build_request("POST", "/threads", json={}, headers=user.headers)
    request.headers["Content-Length"] = length
    response = await client.send(request)
    body = assert_error(response, 400, "bad_request")
    assert body["detail"] == "Invalid Content-Length header"
    assert await _counts(database_url) == (0, 0, 0)


async def test_two_different_content_lengths_are_400(client: httpx.AsyncClient, user: User) -> None:
    content = b"{}"
    headers = [*user.headers.items(), ("Content-Length", "2"), ("Content-Length", "3")]
    request = httpx.Request("POST", "http://switchboard/threads", content=content, headers=headers)
    response = await client.send(request)
    assert_error(response, 400, "bad_request")


async def test_a_smaller_limit_is_a_setting(database_url: str, user: User) -> None:
    app = create_app(make_settings(database_url, max_body_bytes=2048))
    async with running(app) as client:
        response = await client.post("/threads", content=_padded(2049), headers=_json_headers(user))
        body = assert_error(response, 413, "payload_too_large")
        assert body["detail"] == "Request body too large: at most 2048 bytes"
        response = await client.post("/threads", content=_padded(2048), headers=_json_headers(user))
        assert response.status_code == 200, response.text
    assert await _counts(database_url) == (1, 0, 0)


# Agent Protocol messages: the native API's limit.


async def test_protocol_message_of_32001_characters_is_422_naming_it_and_32000_runs(
    client: httpx.AsyncClient,
    user: User,
    seeded_agents: dict[str, dict[str, Any]],
    database_url: str,
) -> None:
    thread_id = await _thread(client, user)
    url = f"/threads/{thread_id}/runs/wait"
    response = await client.post(
        url,
        json={"assistant_id": "assistant", "input": _message("x" * 32_001)},
        headers=user.headers,
    )
    body = assert_error(response, 422, "validation_error")
    assert body["detail"] == [
        {
            "type": "string_too_long",
            "loc": ["body", "input", "messages", 0, "content"],
            "msg": "String should have at most 32000 characters",
        }
    ]
    assert await _counts(database_url) == (1, 0, 0)

    # The native API says the same of the same message.
    chat_id = await _chat(client, user, seeded_agents["assistant"]["id"])
    native = await client.post(
        f"/chats/{chat_id}/messages", json={"content": "x" * 32_001}, headers=user.headers
    )
    native_body = assert_error(native, 422, "validation_error")
    assert [p["msg"] for p in native_body["detail"]] == [body["detail"][0]["msg"]]

    response = await client.post(
        url,
        json={"assistant_id": "assistant", "input": _message("x" * 32_000)},
        headers=user.headers,
    )
    assert response.status_code == 200, response.text
    messages = response.json()["messages"]
    assert [m["type"] for m in messages] == ["human", "ai"]
    assert messages[0]["content"] == "x" * 32_000


@pytest.mark.parametrize(
    ("messages", "loc", "kind"),
    [
        pytest.param(
            [{"role": "user", "content": [{"type": "text", "text": "x" * 16_000}] * 2}, "y"],
            None,
            None,
            id="blocks-of-32000-pass",
        ),
        pytest.param(
            [
                "ok",
                {"role": "user", "content": [{"type": "text", "text": "x" * 16_000}, "y" * 16_001]},
            ],
            ["body", "input", "messages", 1, "content"],
            "message_too_long",
            id="blocks-of-32001",
        ),
        pytest.param(
            ["x" * 32_001], ["body", "input", "messages", 0], "string_too_long", id="string-message"
        ),
        pytest.param(
            [{"role": "user", "content": "x" * 32_001}],
            ["body", "input", "messages", 0, "content"],
            "string_too_long",
            id="role-content-object",
        ),
        pytest.param(["hi"] * 101, ["body", "input", "messages"], "too_long", id="101-messages"),
    ],
)
async def test_protocol_message_shapes_are_bounded(
    client: httpx.AsyncClient,
    user: User,
    messages: list[Any],
    loc: list[Any] | None,
    kind: str | None,
) -> None:
    thread_id = await _thread(client, user)
    body = {"assistant_id": "assistant", "input": {"messages": messages}}
    response = await client.post(f"/threads/{thread_id}/runs", json=body, headers=user.headers)
    if loc is None:
        assert response.status_code == 200, response.text
        return
    problems = assert_error(response, 422, "validation_error")["detail"]
    assert [(p["type"], p["loc"]) for p in problems] == [(kind, loc)]


async def test_a_hundred_messages_are_one_input(client: httpx.AsyncClient, user: User) -> None:
    thread_id = await _thread(client, user)
    body = {"assistant_id": "assistant", "input": {"messages": ["hi"] * 100}}
    response = await client.post(f"/threads/{thread_id}/runs/wait", json=body, headers=user.headers)
    assert response.status_code == 200, response.text
    assert len(response.json()["messages"]) == 101


async def test_state_updates_and_commands_are_bounded_the_same_way(
    client: httpx.AsyncClient, user: User
) -> None:
    thread_id = await _thread(client, user)
    response = await client.post(
        f"/threads/{thread_id}/runs/wait",
        json={"assistant_id": "assistant", "input": _message("hi")},
        headers=user.headers,
    )
    assert response.status_code == 200, response.text

    response = await client.post(
        f"/threads/{thread_id}/state", json={"values": _message("x" * 32_001)}, headers=user.headers
    )
    problems = assert_error(response, 422, "validation_error")["detail"]
    assert [p["loc"] for p in problems] == [["body", "values", "messages", 0, "content"]]
    response = await client.post(
        f"/threads/{thread_id}/runs",
        json={"assistant_id": "assistant", "command": {"update": _message("x" * 32_001)}},
        headers=user.headers,
    )
    problems = assert_error(response, 422, "validation_error")["detail"]
    assert [p["loc"] for p in problems] == [["body", "command", "update", "messages", 0, "content"]]

    state = (await client.get(f"/threads/{thread_id}/state", headers=user.headers)).json()
    assert len(state["values"]["messages"]) == 2
    response = await client.post(
        f"/threads/{thread_id}/state", json={"values": _message("x" * 32_000)}, headers=user.headers
    )
    assert response.status_code == 200, response.text
    state = (await client.get(f"/threads/{thread_id}/state", headers=user.headers)).json()
    assert [len(m["content"]) for m in state["values"]["messages"]] == [2, 12, 32_000]


# Metadata.


def _metadata_of(size: int) -> dict[str, str]:
    """Metadata of exactly ``size`` bytes as compact JSON: ``{"k":"xx…"}``."""
    return {"k": "x" * (size - len('{"k":""}'))}


def _nested(depth: int) -> dict[str, Any]:
    """Metadata nested ``depth`` deep: ``{"a": {"a": … {}}}``."""
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


async def test_thread_metadata_is_bounded_in_size_and_depth(
    client: httpx.AsyncClient, user: User, database_url: str
) -> None:
    assert len(_compact(_metadata_of(16_384))) == 16_384
    too_large = [
        {
            "type": "json_too_large",
            "loc": ["body", "metadata"],
            "msg": "Value should be at most 16384 bytes as JSON, not 16385",
        }
    ]
    too_deep = [
        {
            "type": "json_too_deep",
            "loc": ["body", "metadata"],
            "msg": "Value should be nested at most 5 levels deep, not 6",
        }
    ]
    response = await client.post(
        "/threads", json={"metadata": _metadata_of(16_385)}, headers=user.headers
    )
    assert assert_error(response, 422, "validation_error")["detail"] == too_large
    response = await client.post("/threads", json={"metadata": _nested(6)}, headers=user.headers)
    assert assert_error(response, 422, "validation_error")["detail"] == too_deep
    response = await client.post(
        "/threads", json={"metadata": {"list": [[[[[1]]]]]}}, headers=user.headers
    )
    assert assert_error(response, 422, "validation_error")["detail"] == too_deep
    assert await _counts(database_url) == (0, 0, 0)

    response = await client.post(
        "/threads", json={"metadata": _metadata_of(16_384)}, headers=user.headers
    )
    assert response.status_code == 200, response.text
    thread_id = response.json()["thread_id"]
    response = await client.post("/threads", json={"metadata": _nested(5)}, headers=user.headers)
    assert response.status_code == 200, response.text
    assert response.json()["metadata"] == _nested(5)

    url = f"/threads/{thread_id}"
    response = await client.patch(
        url, json={"metadata": _metadata_of(16_385)}, headers=user.headers
    )
    assert assert_error(response, 422, "validation_error")["detail"] == too_large
    response = await client.patch(url, json={"metadata": _nested(6)}, headers=user.headers)
    assert assert_error(response, 422, "validation_error")["detail"] == too_deep
    thread = (await client.get(url, headers=user.headers)).json()
    assert thread["metadata"] == _metadata_of(16_384)

    response = await client.post(
        "/threads/search", json={"metadata": _nested(6)}, headers=user.headers
    )
    assert assert_error(response, 422, "validation_error")["detail"] == too_deep


async def test_run_metadata_is_bounded(
    client: httpx.AsyncClient, user: User, database_url: str
) -> None:
    thread_id = await _thread(client, user)
    url = f"/threads/{thread_id}/runs"
    for metadata, kind in ((_metadata_of(16_385), "json_too_large"), (_nested(6), "json_too_deep")):
        body = {"assistant_id": "assistant", "input": _message("hi"), "metadata": metadata}
        response = await client.post(url, json=body, headers=user.headers)
        problems = assert_error(response, 422, "validation_error")["detail"]
        assert [(p["type"], p["loc"]) for p in problems] == [(kind, ["body", "metadata"])]
    assert await _counts(database_url) == (1, 0, 0)
    body = {"assistant_id": "assistant", "input": _message("hi"), "metadata": _metadata_of(16_384)}
    response = await client.post(f"{url}/wait", json=body, headers=user.headers)
    assert response.status_code == 200, response.text


# History: a byte budget per page.


async def test_history_pages_stop_at_the_byte_budget(
    client: httpx.AsyncClient, user: User, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    thread_id = await _thread(client, user)
    for letter in "abc":
        response = await client.post(
            f"/threads/{thread_id}/runs/wait",
            json={"assistant_id": "assistant", "input": _message(letter * 32_000)},
            headers=user.headers,
        )
        assert response.status_code == 200, response.text
    url = f"/threads/{thread_id}/history"
    # Within the default budget (4 MiB), the whole history: three checkpoints per run (its
    # input, the input written to the state, the answer), newest first.
    whole = (await client.get(url, params={"limit": 100}, headers=user.headers)).json()
    sizes = [len(_compact(state)) for state in whole]
    assert len(whole) == 9
    # The newest states hold all six messages of 32,000 characters, and more.
    assert [len(state["values"].get("messages", [])) for state in whole] == [
        6, 5, 4, 4, 3, 2, 2, 1, 0
    ]  # fmt: skip

    first_three = sum(sizes[:3])
    # At the budget exactly, one byte under it, and under the first state alone (which goes
    # anyway, so that every page moves on).
    cases = [(first_three, 3), (first_three - 1, 2), (sum(sizes[:5]), 5), (sizes[0] - 1, 1)]
    for budget, expected in cases:
        app = create_app(make_settings(database_url, history_max_bytes=budget))
        async with running(app) as small:
            response = await small.get(url, params={"limit": 100}, headers=user.headers)
            assert response.status_code == 200, response.text
            page = response.json()
            assert len(page) == expected, budget
            assert page == whole[:expected]
            # The states, their commas and the brackets: nothing else.
            assert len(response.content) == sum(sizes[:expected]) + expected + 1
            posted = await small.post(url, json={"limit": 100}, headers=user.headers)
            assert posted.json() == page

            # The next pages, each from the last state's checkpoint, give the rest.
            pages = [page]
            while pages[-1]:
                before = pages[-1][-1]["checkpoint"]
                response = await small.post(
                    url, json={"limit": 100, "before": before}, headers=user.headers
                )
                pages.append(response.json())
            assert [state for p in pages for state in p] == whole
        assert sum(len(p) for p in pages) == 9

    # ``limit`` still counts when the budget does not stop the page first.
    response = await client.get(url, params={"limit": 4}, headers=user.headers)
    assert response.json() == whole[:4]

    # Read in batches of two checkpoints (ten by default): the same pages.
    monkeypatch.setattr(threads_service, "HISTORY_BATCH", 2)
    for limit in (100, 7, 1):
        response = await client.get(url, params={"limit": limit}, headers=user.headers)
        assert response.json() == whole[:limit]
    app = create_app(make_settings(database_url, history_max_bytes=first_three))
    async with running(app) as small:
        response = await small.get(url, params={"limit": 100}, headers=user.headers)
        assert response.json() == whole[:3]

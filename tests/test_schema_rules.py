"""What the attack run (tests/test_schemathesis.py) found, each as a reproducer of its own: the
schema states the rules the server enforces, errors are documented, and what broke no longer
does."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import hypothesis
import jsonschema_rs
import pytest
from fastapi import FastAPI
from pydantic import BaseModel
from schemathesis.generation.jsonschema.builder import build

from api.app import create_app
from api.schemas.chats import ChatUpdate
from api.schemas.crons import CronCreate, CronPatch, ThreadCronCreate
from api.schemas.protocol import StateUpdate
from api.schemas.protocol_runs import RunCreate
from api.settings import Settings
from graphs.models import MODEL_NAME_PATTERN, UnknownModel, parse_model_name
from tests.conftest import User, assert_error, make_settings, running
from tests.test_messages import MakeAgent, make_agent, open_chat

__all__ = ["make_agent"]


async def _thread_with_a_run(client: httpx.AsyncClient, user: User) -> str:
    thread = (await client.post("/threads", json={}, headers=user.headers)).json()["thread_id"]
    done = await client.post(
        f"/threads/{thread}/runs/wait",
        json={
            "assistant_id": "assistant",
            "input": {"messages": [{"role": "user", "content": "hi"}]},
        },
        headers=user.headers,
    )
    assert done.status_code == 200, done.text
    return thread


async def _thread_count(client: httpx.AsyncClient, user: User) -> int:
    return (await client.post("/threads/count", json={}, headers=user.headers)).json()


@pytest.mark.parametrize(
    "name",
    [
        "openai:gpt-4o", "openai:a", "openai:org/model:v1.2", "openai:-x", "openai:",
        "fake:echo", "fake:tools", "fake:tokens-5", "fake:tokens-5@10", "fake:tokens-1234567",
        "fake:tokens-@1", "fake:nope", "local:smollm2", "local:llama", "x", "acme:x", ":x",
    ],
)  # fmt: skip
def test_the_model_name_pattern_accepts_what_the_server_can_run(name: str) -> None:
    try:
        parse_model_name(name)
        runnable = True
    except UnknownModel:
        runnable = False
    assert bool(re.match(MODEL_NAME_PATTERN, name)) is runnable


async def test_every_operation_documents_its_errors(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    assert "HTTPValidationError" not in document["components"]["schemas"]
    error = {"$ref": "#/components/schemas/ErrorBody"}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert "503" in responses, (method, path)
            for status, response in responses.items():
                if status.startswith(("4", "5")):
                    # The one error shape; a v2 command's 400 may also be the official
                    # command-error envelope, which carries `detail` and `code` as well.
                    schema = response["content"]["application/json"]["schema"]
                    variants = schema.get("anyOf", [schema])
                    assert error in variants, (method, path, status)
                    for variant in variants:
                        if variant != error:
                            assert {"detail", "code"} <= set(variant["required"]), (method, path)
            if "{" in path:
                assert "404" in responses, (method, path)
            if "requestBody" in operation:
                # A JSON-RPC endpoint (A2A) answers a body that is not JSON in its protocol
                # (-32700 parse error, HTTP 200), never with a 400.
                json_rpc = path.startswith("/a2a/")
                expected = {"413", "422"} if json_rpc else {"400", "413", "422"}
                assert expected <= set(responses), (method, path)
                assert ("400" in responses) is not json_rpc, (method, path)
            if operation.get("security"):
                assert "401" in responses, (method, path)
    assert "security" in document["paths"]["/chats/"]["get"]
    assert "401" not in document["paths"]["/healthz"]["get"]["responses"]
    admin_only = document["paths"]["/agents/"]["post"]["responses"]
    assert {"401", "403", "409"} <= set(admin_only)
    assert "429" in document["paths"]["/auth/login"]["post"]["responses"]


async def test_json_numbers_and_booleans_mean_what_json_means(
    client: httpx.AsyncClient, user: User
) -> None:
    # 5.0 is the integer 5; true and "5" are not numbers; 0 is not a boolean.
    search = await client.post("/threads/search", json={"limit": 5.0}, headers=user.headers)
    assert search.status_code == 200, search.text
    for limit in (True, "5", 5.5):
        response = await client.post("/threads/search", json={"limit": limit}, headers=user.headers)
        assert_error(response, 422, "validation_error")
    refused = await client.post(
        "/runs/wait",
        json={"assistant_id": "assistant", "input": {}, "stream_resumable": 0},
        headers=user.headers,
    )
    assert_error(refused, 422, "validation_error")
    assert await _thread_count(client, user) == 0


UNREADABLE = [
    1,
    {"role": "user"},
    {"role": "tool", "content": "x"},
    {"role": "ai", "content": "", "tool_calls": "AAA"},
    {"type": "ai", "content": "x", "tool_calls": [{"name": "t", "args": {}}]},
    ["user", "x"],
    {"role": "user", "type": "human", "content": "x"},
    {"role": "user", "content": "x", "name": None},
    # Keys LangChain hands on as they are: a tool call's become arguments of ``tool_call()``.
    {"type": "ai", "content": "{", "tool_calls": [{"name": "", "args": {}, "id": None, "¶": []}]},
    {
        "type": "ai",
        "content": "",
        "tool_calls": [{"name": "t", "args": {}, "id": "", "function": 5}],
    },
    {"type": "ai", "content": "x", "additional_kwargs": 5},
    {"type": "ai", "content": "x", "response_metadata": 5},
]


@pytest.mark.parametrize("message", UNREADABLE)
async def test_a_message_the_graph_cannot_read_is_refused_before_anything_is_made(
    client: httpx.AsyncClient, user: User, message: Any
) -> None:
    body = {"assistant_id": "assistant", "input": {"messages": [message]}}
    # The published schema refuses it too (a schema that admits it is what ST202 reports).
    document = (await client.get("/openapi.json")).json()
    operation = document["paths"]["/runs/wait"]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    validator = jsonschema_rs.Draft202012Validator({**schema, "components": document["components"]})
    assert not validator.is_valid(body)
    response = await client.post("/runs/wait", json=body, headers=user.headers)
    problem = assert_error(response, 422, "validation_error")["detail"][0]
    assert problem["type"] == "message_type"
    assert problem["loc"] == ["body", "input", "messages", 0]
    assert await _thread_count(client, user) == 0


@pytest.mark.parametrize(
    ("method", "path", "model"),
    [
        ("post", "/threads/{thread_id}/runs/stream", RunCreate),
        ("post", "/threads/{thread_id}/state", StateUpdate),
        # A cron's schedule, time zone and end are patterns and an enumeration by hand.
        ("post", "/runs/crons", CronCreate),
        ("post", "/threads/{thread_id}/runs/crons", ThreadCronCreate),
        ("patch", "/runs/crons/{cron_id}", CronPatch),
    ],
)
def test_every_body_the_schema_admits_passes_validation(
    settings: Settings, method: str, path: str, model: type[BaseModel]
) -> None:
    # The messages' schema is written by hand beside the check that mirrors it (LangChain's
    # coercion is the real rule): draw bodies from the published schema, the way the attack
    # run does, and each must validate. Found: extra keys in a tool call (ST202).
    document = create_app(settings).openapi()
    body = document["paths"][path][method]["requestBody"]["content"]["application/json"]
    schema = {**body["schema"], "components": document["components"]}
    bodies = build(schema, draft=jsonschema_rs.Draft202012, formats={})

    @hypothesis.settings(
        max_examples=400,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    @hypothesis.given(bodies)
    def admitted(value: Any) -> None:
        model.model_validate(value)

    admitted()


async def test_state_updates_the_graph_cannot_take_are_4xx_and_change_nothing(
    client: httpx.AsyncClient, user: User
) -> None:
    thread = await _thread_with_a_run(client, user)
    before = (await client.get(f"/threads/{thread}/state", headers=user.headers)).json()
    url = f"/threads/{thread}/state"
    # Once 500s: a message LangChain cannot coerce, and a node that does not exist.
    bad = await client.post(url, json={"values": {"messages": [1]}}, headers=user.headers)
    assert_error(bad, 422, "validation_error")
    nowhere = await client.post(
        url, json={"values": {"messages": "x"}, "as_node": ""}, headers=user.headers
    )
    assert assert_error(nowhere, 404, "node_not_found")["detail"] == (
        "No node '' in this thread's graph"
    )
    listed = await client.post(url, json={"values": [{"messages": "x"}]}, headers=user.headers)
    assert_error(listed, 422, "validation_error")
    after = (await client.get(f"/threads/{thread}/state", headers=user.headers)).json()
    assert after == before


async def test_allow_names_the_methods_of_the_route_the_path_means(
    client: httpx.AsyncClient, user: User
) -> None:
    thread = uuid.uuid4()
    # /threads/{id}/runs/stream also matches /threads/{id}/runs/{run_id} by shape.
    for path, allowed in (
        (f"/threads/{thread}/runs/stream", "POST"),
        (f"/threads/{thread}/state/checkpoint", "POST"),
        ("/runs/wait", "POST"),
        # And /runs/batch, /runs/cancel: routes of their own, not run ids.
        ("/runs/batch", "POST"),
        ("/runs/cancel", "POST"),
    ):
        response = await client.request("OPTIONS", path, headers=user.headers)
        assert_error(response, 405, "method_not_allowed")
        assert response.headers["allow"] == allowed, path


async def test_names_that_name_nothing_are_404s_with_their_own_code(
    client: httpx.AsyncClient, user: User, seeded_agents: dict[str, Any]
) -> None:
    chat = (
        await client.post(
            "/chats/", json={"agent_id": seeded_agents["assistant"]["id"]}, headers=user.headers
        )
    ).json()
    cursor = await client.get(
        f"/chats/{chat['id']}/messages", params={"before": "0"}, headers=user.headers
    )
    assert_error(cursor, 404, "message_not_found")
    unknown = await client.post(
        "/runs/wait", json={"assistant_id": str(uuid.uuid4()), "input": {}}, headers=user.headers
    )
    assert_error(unknown, 404, "assistant_not_found")
    assert await _thread_count(client, user) == 1  # the chat


async def test_an_agent_on_openai_without_a_key_breaks_no_read(
    client: httpx.AsyncClient,
    user: User,
    make_agent: MakeAgent,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Building the client without a key used to raise, and every read of the agent's threads
    # answered 500 (GET /threads/{id}/state, POST /threads/search).
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    agent = await make_agent("openai:gpt-4o-mini")
    chat_id = await open_chat(client, user, agent["id"])
    answer = await client.post(
        f"/chats/{chat_id}/messages", json={"content": "hello"}, headers=user.headers
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["status"] == "error"
    state = await client.get(f"/threads/{chat_id}/state", headers=user.headers)
    assert state.status_code == 200, state.text
    assert [m["content"] for m in state.json()["values"]["messages"]] == ["hello"]
    found = await client.post("/threads/search", json={}, headers=user.headers)
    assert [t["thread_id"] for t in found.json()] == [chat_id]


async def test_a_run_past_the_time_limit_ends_with_an_error(
    database_url: str, app: FastAPI, client: httpx.AsyncClient, make_agent: MakeAgent, user: User
) -> None:
    agent = await make_agent("fake:tokens-200@20")  # 4 s of tokens
    chat_id = await open_chat(client, user, agent["id"])
    limited = create_app(make_settings(database_url, run_timeout_seconds=0.5))
    async with running(limited) as other:
        answer = await other.post(
            f"/chats/{chat_id}/messages", json={"content": "go"}, headers=user.headers
        )
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["status"] == "error"
    run = (await client.get(f"/runs/{body['run_id']}", headers=user.headers)).json()
    assert (run["status"], run["error"]) == ("error", "RunTimeout")


def test_the_schema_and_the_server_agree_on_what_is_blank(settings: Settings) -> None:
    # Found: a chat title of "\x1e" matched the schema (ECMA-262's \s does not count the
    # information separators) and the server refused it as blank (Python's strip removes them).
    # Every character on either side of that line: the schema admits it exactly when the
    # server does.
    document = create_app(settings).openapi()
    body = document["paths"]["/chats/{chat_id}"]["put"]["requestBody"]["content"]
    validator = jsonschema_rs.Draft202012Validator(
        {**body["application/json"]["schema"], "components": document["components"]}
    )
    spaces = [chr(c) for c in range(0x110000) if chr(c).isspace()]
    assert len(spaces) == 29  # Python's whitespace: the pattern spells out each of them
    for character in [*spaces, "\ufeff", "\u200b", "\x1b", "a", "\u00e9"]:
        for title in (character, f" {character} "):
            admitted = validator.is_valid({"title": title})
            try:
                ChatUpdate.model_validate({"title": title})
                accepted = True
            except ValueError:
                accepted = False
            assert admitted == accepted == (not character.isspace()), repr(title)

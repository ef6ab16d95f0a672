"""Every model provider of ``init_chat_model``: an uninstalled one is a 422 naming its package,
an installed one (``ollama:``, against a local stub) streams, ``GET /models`` says which are
usable without showing a credential, and an answer without usage gets an estimate."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from graphs.models import (
    MODEL_NAME_PATTERN,
    ProviderNotInstalled,
    estimate_usage,
    parse_model_name,
)
from graphs.runtime.streams import add_usage, usage_of
from tests.conftest import User, assert_error
from tests.sse import parse

PIECES = ["Hi", " from", " ollama"]


class StubOllama(BaseHTTPRequestHandler):
    """``POST /api/chat``: Ollama's streamed reply (NDJSON), whose last line reports no token
    counts (no ``prompt_eval_count``/``eval_count``), as some servers and proxies do."""

    requests: list[dict[str, Any]] = []
    protocol_version = "HTTP/1.0"  # the body ends when the connection closes

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        StubOllama.requests.append({"path": self.path, **body})
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.end_headers()
        line = {"model": body["model"], "created_at": "2026-01-01T00:00:00Z"}
        for piece in PIECES:
            message = {"role": "assistant", "content": piece}
            self.wfile.write(json.dumps({**line, "message": message, "done": False}).encode())
            self.wfile.write(b"\n")
            self.wfile.flush()
        last = {"message": {"role": "assistant", "content": ""}, "done": True}
        self.wfile.write(json.dumps({**line, **last, "done_reason": "stop"}).encode() + b"\n")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def stub_ollama(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), StubOllama)  # port 0: a free port
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    StubOllama.requests = []
    host = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("OLLAMA_HOST", host)
    try:
        yield host
    finally:
        server.shutdown()
        server.server_close()


def _tokens(chars: int) -> int:
    return -(-chars // 4)


async def _agents(client: httpx.AsyncClient, user: User) -> list[str]:
    listed = (await client.get("/agents/", params={"limit": 100}, headers=user.headers)).json()
    return [a["id"] for a in listed["items"]]


async def test_an_uninstalled_provider_is_a_422_naming_its_package(
    client: httpx.AsyncClient, admin: User
) -> None:
    before = await _agents(client, admin)
    response = await client.post(
        "/agents/",
        json={"name": "Claude", "system_prompt": "x", "model_name": "anthropic:claude-sonnet-4"},
        headers=admin.headers,
    )
    body = assert_error(response, 422, "provider_not_installed")
    assert body["detail"] == (
        "model provider 'anthropic' is not installed on this server: pip install "
        "langchain-anthropic (or pip install 'switchboard[anthropic]')"
    )
    assert await _agents(client, admin) == before

    # An update too: the agent keeps its model and version.
    agent = (
        await client.post(
            "/agents/", json={"name": "Kept", "model_name": "fake:echo"}, headers=admin.headers
        )
    ).json()
    refused = await client.put(
        f"/agents/{agent['id']}", json={"model_name": "groq:llama-3.1-8b"}, headers=admin.headers
    )
    body = assert_error(refused, 422, "provider_not_installed")
    assert "pip install langchain-groq (or pip install 'switchboard[groq]')" in body["detail"]
    kept = (await client.get(f"/agents/{agent['id']}", headers=admin.headers)).json()
    assert (kept["model_name"], kept["version"]) == ("fake:echo", agent["version"])


@pytest.mark.parametrize(
    ("name", "runnable"),
    [
        ("ollama:llama3.2:1b", True),
        ("ollama:", False),
        ("ollama:-x", False),
        ("anthropic:claude-sonnet-4", False),
        ("google_genai:gemini-2.0-flash", False),
        ("bedrock:anthropic.claude-3-5-sonnet-20240620-v1:0", False),
        ("azure_openai:gpt-4o", True),
        ("acme:model", False),
    ],
)
def test_the_schema_pattern_admits_installed_providers_only(name: str, runnable: bool) -> None:
    # langchain-ollama is installed (the dev extra), langchain-anthropic and the rest are not;
    # langchain-openai (a dependency) also serves azure_openai.
    try:
        parse_model_name(name)
        parsed = True
    except ValueError:
        parsed = False
    assert parsed is runnable
    assert bool(re.match(MODEL_NAME_PATTERN, name)) is runnable


def test_an_uninstalled_provider_is_its_own_error() -> None:
    with pytest.raises(ProviderNotInstalled):
        parse_model_name("mistralai:mistral-small")


async def test_models_lists_providers_and_never_a_credential(
    client: httpx.AsyncClient, user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "sk-ant-very-secret-value-1234"
    monkeypatch.setenv("ANTHROPIC_API_KEY", secret)
    monkeypatch.setenv("GOOGLE_API_KEY", "AIza-also-secret")
    monkeypatch.delenv("GROQ_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)

    response = await client.get("/models", headers=user.headers)
    assert response.status_code == 200, response.text
    assert secret not in response.text and "AIza-also-secret" not in response.text
    body = response.json()
    assert body["default_model"] == "fake:echo"
    providers = {p["name"]: p for p in body["providers"]}
    assert providers["anthropic"] == {
        "name": "anthropic",
        "installed": False,
        "package": "langchain-anthropic",
        "credentials_present": True,
        "env": ["ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"],
    }
    assert providers["google_genai"]["credentials_present"] is True
    assert providers["groq"]["credentials_present"] is False
    assert providers["openai"] == {
        "name": "openai",
        "installed": True,
        "package": "langchain-openai",
        "credentials_present": False,
        "env": ["OPENAI_API_KEY", "OPENAI_BASE_URL"],
    }
    assert providers["ollama"] == {
        "name": "ollama",
        "installed": True,
        "package": "langchain-ollama",
        "credentials_present": True,
        "env": ["OLLAMA_HOST"],
    }
    assert providers["fake"]["installed"] is True
    assert providers["bedrock"]["installed"] is False
    assert {"mistralai", "bedrock", "local", "xai"} <= set(providers)

    assert_error(await client.get("/models"), 401, "unauthorized")


async def test_an_ollama_model_streams_from_its_server_with_estimated_usage(
    stub_ollama: str, client: httpx.AsyncClient, user: User, admin: User
) -> None:
    agent = await client.post(
        "/agents/",
        json={"name": "Local llama", "system_prompt": "Be brief.", "model_name": "ollama:stub:1b"},
        headers=admin.headers,
    )
    assert agent.status_code == 201, agent.text
    chat = await client.post("/chats/", json={"agent_id": agent.json()["id"]}, headers=user.headers)
    chat_id = chat.json()["id"]
    response = await client.post(
        f"/chats/{chat_id}/messages",
        json={"content": "hello there"},
        headers={**user.headers, "Accept": "text/event-stream"},
    )
    events, _ = parse(response.text)

    assert [e.event for e in events] == [
        "run",
        "message",
        "token",
        "token",
        "token",
        "message",
        "end",
    ]
    assert [e.data["delta"] for e in events if e.event == "token"] == PIECES
    (request,) = StubOllama.requests
    assert request["path"] == "/api/chat"
    assert request["model"] == "stub:1b"
    assert request["stream"] is True
    assert [m["role"] for m in request["messages"]] == ["system", "user"]
    assert request["messages"][1]["content"] == "hello there"
    # The stub reported no counts: an estimate of characters / 4, flagged.
    prompt_chars = sum(len(m["content"]) for m in request["messages"])
    usage = {
        "input_tokens": _tokens(prompt_chars),
        "output_tokens": _tokens(len("Hi from ollama")),
        "total_tokens": _tokens(prompt_chars) + _tokens(len("Hi from ollama")),
        "estimated": True,
    }
    final = events[-2].data
    assert final["content"] == "Hi from ollama"
    assert final["metadata"]["usage"] == usage
    assert events[-1].data == {"status": "success", "usage": usage}

    run = (await client.get(f"/runs/{events[0].data['run_id']}", headers=user.headers)).json()
    assert run["usage"] == usage
    messages = (await client.get(f"/chats/{chat_id}/messages", headers=user.headers)).json()
    assert messages["items"][-1]["metadata"]["usage"] == usage


async def test_a_provider_that_reports_usage_is_not_estimated(
    client: httpx.AsyncClient, user: User, seeded_agents: dict[str, dict[str, Any]]
) -> None:
    agent = next(iter(seeded_agents.values()))
    chat = await client.post("/chats/", json={"agent_id": agent["id"]}, headers=user.headers)
    answer = await client.post(
        f"/chats/{chat.json()['id']}/messages", json={"content": "hi"}, headers=user.headers
    )
    assert answer.status_code == 201, answer.text
    counts = {"input_tokens", "output_tokens", "total_tokens"}
    assert set(answer.json()["usage"]) == counts
    assert set(answer.json()["messages"][-1]["metadata"]["usage"]) == counts


def test_the_estimate_counts_prompt_answer_and_tool_calls() -> None:
    answer = AIMessage(
        content="abcde",
        tool_calls=[{"id": "c1", "name": "calc", "args": {"x": 1}, "type": "tool_call"}],
    )
    estimate_usage(answer, [SystemMessage("12345678"), HumanMessage("123")])
    # prompt 11 chars -> 3; answer 5 + len("calc") + len('{"x": 1}') = 17 chars -> 5
    assert usage_of(answer) == {
        "input_tokens": 3, "output_tokens": 5, "total_tokens": 8, "estimated": True,
    }  # fmt: skip
    total: dict[str, int] = {}
    add_usage(total, answer)
    assert total == {"input_tokens": 3, "output_tokens": 5, "total_tokens": 8, "estimated": True}

    reported = AIMessage(
        content="x", usage_metadata={"input_tokens": 7, "output_tokens": 1, "total_tokens": 8}
    )
    estimate_usage(reported, [HumanMessage("a much longer prompt than seven tokens, surely")])
    assert usage_of(reported) == {"input_tokens": 7, "output_tokens": 1, "total_tokens": 8}


async def test_a_provider_without_credentials_saves_and_its_runs_fail_readably(
    client: httpx.AsyncClient, user: User, admin: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AZURE_OPENAI_API_KEY", "AZURE_OPENAI_ENDPOINT", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    agent = await client.post(
        "/agents/",
        json={
            "name": "Azure",
            "model_name": "azure_openai:gpt-4o",
            "tools_enabled": ["calculator"],
        },
        headers=admin.headers,
    )
    assert agent.status_code == 201, agent.text
    chat = await client.post("/chats/", json={"agent_id": agent.json()["id"]}, headers=user.headers)
    chat_id = chat.json()["id"]
    answer = await client.post(
        f"/chats/{chat_id}/messages", json={"content": "hi"}, headers=user.headers
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["status"] == "error"
    assert answer.json()["error"]["code"] == "run_failed"
    assert answer.json()["error"]["message"] == "The agent could not answer. Try again."
    listed = await client.get(f"/chats/{chat_id}/messages", headers=user.headers)
    assert listed.status_code == 200
    assert [(m["sender"], m["content"]) for m in listed.json()["items"]] == [("user", "hi")]

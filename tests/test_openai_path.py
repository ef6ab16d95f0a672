"""The langchain-openai path against a local OpenAI-compatible stub that streams chunks."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.conftest import User
from tests.sse import parse


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-stub",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": "stub-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def _usage(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "id": "chatcmpl-stub",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": "stub-model",
        "choices": [],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }


TOOL_CALL_STREAM = [
    _chunk(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "index": 0,
                    "id": "call_stub_1",
                    "type": "function",
                    "function": {"name": "calculator", "arguments": ""},
                }
            ],
        }
    ),
    _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"expression"'}}]}),
    _chunk({"tool_calls": [{"index": 0, "function": {"arguments": ': "2+3"}'}}]}),
    _chunk({}, "tool_calls"),
    _usage(12, 7),
]
ANSWER_STREAM = [
    _chunk({"role": "assistant", "content": ""}),
    *(_chunk({"content": piece}) for piece in ["The", " answer", " is", " 5"]),
    _chunk({}, "stop"),
    _usage(30, 4),
]


class StubOpenAI(BaseHTTPRequestHandler):
    """``POST /v1/chat/completions``: a tool call first, the answer once a tool result is in."""

    requests: list[dict[str, Any]] = []
    protocol_version = "HTTP/1.0"  # the body ends when the connection closes

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        StubOpenAI.requests.append(
            {"path": self.path, "auth": self.headers["Authorization"], **body}
        )
        has_tool_result = any(m["role"] == "tool" for m in body["messages"])
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for chunk in ANSWER_STREAM if has_tool_result else TOOL_CALL_STREAM:
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()
        self.wfile.write(b"data: [DONE]\n\n")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def stub_openai(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), StubOpenAI)  # port 0: a free port
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    StubOpenAI.requests = []
    base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    monkeypatch.setenv("OPENAI_BASE_URL", base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-stub")
    try:
        yield base_url
    finally:
        server.shutdown()
        server.server_close()


async def test_openai_streaming_tool_round(
    stub_openai: str, client: httpx.AsyncClient, user: User, admin: User
) -> None:
    agent = await client.post(
        "/agents/",
        json={
            "name": "Stubbed",
            "system_prompt": "Use the calculator.",
            "model_name": "openai:stub-model",
            "tools_enabled": ["calculator"],
        },
        headers=admin.headers,
    )
    assert agent.status_code == 201, agent.text
    chat = await client.post("/chats/", json={"agent_id": agent.json()["id"]}, headers=user.headers)
    response = await client.post(
        f"/chats/{chat.json()['id']}/messages",
        json={"content": "what is 2+3?"},
        headers={**user.headers, "Accept": "text/event-stream"},
    )
    events, _ = parse(response.text)

    assert [e.event for e in events] == [
        "run", "message", "tool_call", "message", "tool_result", "message",
        "token", "token", "token", "token", "message", "end",
    ]  # fmt: skip
    assert events[2].data["tool_call_id"] == "call_stub_1"
    assert events[2].data["args"] == {"expression": "2+3"}
    assert events[4].data["content"] == "5"
    assert [e.data["delta"] for e in events if e.event == "token"] == [
        "The",
        " answer",
        " is",
        " 5",
    ]
    final = events[-2].data
    assert final["content"] == "The answer is 5"
    assert final["metadata"]["usage"] == {
        "input_tokens": 30,
        "output_tokens": 4,
        "total_tokens": 34,
    }
    assert final["metadata"]["finish_reason"] == "stop"
    assert events[-1].data == {
        "status": "success",
        "usage": {"input_tokens": 42, "output_tokens": 11, "total_tokens": 53},
    }

    first, second = StubOpenAI.requests
    assert first["path"] == "/v1/chat/completions"
    assert first["auth"] == "Bearer sk-stub"
    assert first["model"] == "stub-model"
    assert first["stream"] is True
    assert [t["function"]["name"] for t in first["tools"]] == ["calculator"]
    assert first["messages"] == [
        {"role": "system", "content": "Use the calculator."},
        {"role": "user", "content": "what is 2+3?"},
    ]
    assert [m["role"] for m in second["messages"]] == ["system", "user", "assistant", "tool"]
    assert second["messages"][3]["content"] == "5"
    assert second["messages"][3]["tool_call_id"] == "call_stub_1"

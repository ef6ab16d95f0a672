"""``local:smollm2``: a real model streaming real tokens offline (needs the ``[local]`` extra).

``.ci/run`` installs the extra, so CI always runs this; a plain ``pip install -e '.[dev]'``
skips it with the reason below.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import User
from tests.sse import parse

pytest.importorskip("llama_cpp", reason="needs the [local] extra: pip install -e '.[local]'")


async def test_smollm2_streams_a_real_answer(
    client: httpx.AsyncClient, user: User, admin: User
) -> None:
    agent = await client.post(
        "/agents/",
        json={
            "name": "Tiny",
            "system_prompt": "You are a helpful assistant. Answer in one sentence.",
            "model_name": "local:smollm2",
        },
        headers=admin.headers,
    )
    assert agent.status_code == 201, agent.text
    chat = await client.post("/chats/", json={"agent_id": agent.json()["id"]}, headers=user.headers)
    response = await client.post(
        f"/chats/{chat.json()['id']}/messages",
        json={"content": "What is the capital of France?"},
        headers={**user.headers, "Accept": "text/event-stream"},
    )
    events, _ = parse(response.text)
    tokens = [e.data["delta"] for e in events if e.event == "token"]
    final = events[-2].data
    assert events[-1].data["status"] == "success"
    assert final["sender"] == "agent"
    assert len(tokens) > 1, "a real model streams several tokens"
    assert "".join(tokens) == final["content"]
    assert "Paris" in final["content"]


async def test_smollm2_reports_its_token_usage(
    client: httpx.AsyncClient, user: User, admin: User
) -> None:
    from langchain_core.messages import HumanMessage, SystemMessage

    from graphs.local import _llama, prompt_tokens

    system = "You are a helpful assistant. Answer in one sentence."
    agent = await client.post(
        "/agents/",
        json={"name": "Counted", "system_prompt": system, "model_name": "local:smollm2"},
        headers=admin.headers,
    )
    assert agent.status_code == 201, agent.text
    chat = await client.post("/chats/", json={"agent_id": agent.json()["id"]}, headers=user.headers)
    response = await client.post(
        f"/chats/{chat.json()['id']}/messages",
        json={"content": "Name a colour."},
        headers={**user.headers, "Accept": "text/event-stream"},
    )
    events, _ = parse(response.text)
    tokens = [e.data["delta"] for e in events if e.event == "token"]
    final = events[-2].data
    # Counted, not estimated: one token per streamed chunk, the prompt by the model's tokenizer.
    prompt = prompt_tokens(_llama(), [SystemMessage(system), HumanMessage("Name a colour.")])
    usage = {
        "input_tokens": prompt,
        "output_tokens": len(tokens),
        "total_tokens": prompt + len(tokens),
    }
    assert final["metadata"]["usage"] == usage
    assert events[-1].data == {"status": "success", "usage": usage}


def _crafted(pieces: list[str], seen: list[dict[str, Any]]) -> Any:
    """A stand-in for ``Llama.create_chat_completion``: the real model object streams these
    pieces, so what is parsed from them does not hang on a 135M model's choices."""

    def create_chat_completion(messages: list[dict[str, Any]], **kwargs: Any) -> Any:
        seen.append({"messages": messages, **kwargs})
        for piece in pieces:
            yield {"choices": [{"delta": {"content": piece}, "finish_reason": None}]}
        yield {"choices": [{"delta": {}, "finish_reason": "stop"}]}

    return create_chat_completion


def test_smollm2_tool_calls_are_parsed_from_its_completion(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

    from graphs.local import _llama, local_model
    from tools import TOOLS

    seen: list[dict[str, Any]] = []
    call = [
        "<tool", "_call>", '{"name": "calculator", ', '"arguments": {"expression": "2+3"}}',
        "</tool_call>",
    ]  # fmt: skip
    monkeypatch.setattr(_llama(), "create_chat_completion", _crafted(call, seen))
    model = local_model("smollm2").bind_tools([TOOLS["calculator"]])
    streamed = list(model.stream([SystemMessage("Be exact."), HumanMessage("2+3?")]))
    answer = streamed[0]
    for chunk in streamed[1:]:
        answer += chunk
    assert [c.content for c in streamed] == [""]  # no tool-call text reaches the stream
    assert [(c["name"], c["args"]) for c in answer.tool_calls] == [
        ("calculator", {"expression": "2+3"})
    ]
    assert answer.usage_metadata["output_tokens"] == 5
    (request,) = seen
    assert "tools" not in request and "tool_choice" not in request
    system = request["messages"][0]
    assert system["role"] == "system"
    assert system["content"].startswith("Be exact.\n\nYou can call these tools:\n<tools>\n")
    assert '"name": "calculator"' in system["content"]

    # The tool's result goes back as text, and a plain answer streams as it comes.
    seen.clear()
    monkeypatch.setattr(_llama(), "create_chat_completion", _crafted(["It", " is", " 5"], seen))
    history = [
        HumanMessage("2+3?"),
        AIMessage(content="", tool_calls=answer.tool_calls),
        ToolMessage("5", tool_call_id=answer.tool_calls[0]["id"]),
    ]
    streamed = list(model.stream(history))
    # The tokens, the finish chunk, then the usage.
    assert [c.content for c in streamed] == ["It", " is", " 5", "", ""]
    assert [m["role"] for m in seen[0]["messages"]] == ["system", "user", "assistant", "user"]
    assert seen[0]["messages"][2]["content"] == (
        '<tool_call>{"name": "calculator", "arguments": {"expression": "2+3"}}</tool_call>'
    )
    assert seen[0]["messages"][3]["content"] == "<tool_response>\n5\n</tool_response>"

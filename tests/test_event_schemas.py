"""The event schemas of the OpenAPI document (``api/schemas/events.py``) against real streams.

Every event of every stream below (both wire formats, every stream mode of the protocol, tool
calls, failures, cancels, pauses, subgraphs, replays and resumes) is checked three ways: the
event object against the schema with ``jsonschema_rs``, its parsed ``data`` against the one
``contentSchema`` its name selects, and the whole response as schemathesis judges it once the
schemas are in the document. Wrong events are refused, so the schemas are not vacuous.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import jsonschema_rs
import pytest
import schemathesis
from fastapi import FastAPI
from langchain_core.tools import tool
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from schemathesis.core.failures import FailureGroup
from typing_extensions import TypedDict

from api.schemas.events import NATIVE_EVENT, PROTOCOL_EVENT, sse_content
from tests.conftest import User
from tools import TOOLS

SSE = {"Accept": "text/event-stream"}
SLOW = "fake:tokens-200@20"
# Nothing listens on port 9 of loopback: a provider call there fails at once.
UNREACHABLE = {"OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "OPENAI_API_KEY": "sk-test-not-real"}
NATIVE_ROUTES = [("POST", "/chats/{chat_id}/messages"), ("GET", "/runs/{run_id}/stream")]
PROTOCOL_ROUTES = [
    ("POST", "/threads/{thread_id}/runs/stream"),
    ("POST", "/runs/stream"),
    ("GET", "/threads/{thread_id}/runs/{run_id}/stream"),
]
PROTOCOL_MODES = ["values", "updates", "messages", "messages-tuple", "custom", "events", "debug"]


# --- reading and checking streams ---------------------------------------------------------------


def sse_events(body: str) -> list[dict[str, str]]:
    """The events of a stream as a client (and schemathesis) reads them: string fields."""
    events = []
    for block in body.replace("\r\n", "\n").split("\n\n"):
        fields: dict[str, str] = {}
        data: list[str] = []
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                data.append(value)
            else:
                fields[name] = value
        if data:
            events.append({"event": fields.get("event", "message"), "data": "\n".join(data),
                           **({"id": fields["id"]} if "id" in fields else {})})  # fmt: skip
    return events


def sse_text(events: list[dict[str, str]]) -> str:
    """``events`` framed as our server frames them (``api/wire/sse.frame``)."""
    frames = []
    for event in events:
        lines = [f"id: {event['id']}"] if "id" in event else []
        lines += [f"event: {event['event']}", *(f"data: {d}" for d in event["data"].split("\n"))]
        frames.append("\r\n".join(lines) + "\r\n\r\n")
    return "".join(frames)


class Checker:
    """One format's schema, as jsonschema_rs evaluates it and as schemathesis does."""

    def __init__(self, schema: dict[str, Any], path: str):
        self.schema, self.path = schema, path
        self.validator = jsonschema_rs.Draft202012Validator(schema, validate_formats=True)
        self.cases = [
            (
                jsonschema_rs.Draft202012Validator(case["if"]),
                jsonschema_rs.Draft202012Validator(
                    case["then"]["properties"]["data"]["contentSchema"], validate_formats=True
                ),
            )
            for case in schema["allOf"]
        ]

    def errors(self, event: dict[str, Any]) -> list[str]:
        """Why ``event`` does not fit the schema, by jsonschema_rs; empty when it does."""
        found = [error.message for error in self.validator.iter_errors(event)]
        # The contentSchema of the data: the one the event's name selects.
        matching = [content for selects, content in self.cases if selects.is_valid(event)]
        if not found:
            assert len(matching) == 1, (event["event"], len(matching))  # names never overlap
        for content in matching:
            try:
                parsed = json.loads(event["data"])
            except (TypeError, ValueError) as exc:
                found.append(f"data is not JSON: {exc}")
                continue
            found += [f"data: {error.message}" for error in content.iter_errors(parsed)]
        return found

    def schemathesis_failure(self, events: list[dict[str, str]]) -> str | None:
        """What schemathesis says of a response sending ``events``, the schema documenting it
        (it rewrites the schema first, and checks ``contentSchema`` with a keyword of its own)."""
        response = httpx.Response(
            200,
            headers={"content-type": "text/event-stream; charset=utf-8"},
            content=sse_text(events).encode(),
            request=httpx.Request("GET", f"http://switchboard{self.path}"),
        )
        response.elapsed = datetime.timedelta(0)
        try:
            MINIMAL[self.path]["GET"].validate_response(response)
        except (AssertionError, FailureGroup) as exc:
            return str(exc)
        return None

    def check(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        assert events, "no events"
        for event in events:
            assert self.errors(event) == [], event
        assert self.schemathesis_failure(events) is None
        return events


# A document with nothing but the two event schemas, for events made up here.
MINIMAL = schemathesis.openapi.from_dict(
    {
        "openapi": "3.1.0",
        "info": {"title": "events", "version": "1"},
        "paths": {
            path: {"get": {"responses": {"200": {"description": "", "content": sse_content(s)}}}}
            for path, s in (("/native", NATIVE_EVENT), ("/protocol", PROTOCOL_EVENT))
        },
    }
)
NATIVE = Checker(NATIVE_EVENT, "/native")
PROTOCOL = Checker(PROTOCOL_EVENT, "/protocol")


def names(events: list[dict[str, Any]]) -> list[str]:
    return [event["event"] for event in events]


def data(events: list[dict[str, Any]], name: str) -> list[Any]:
    return [json.loads(event["data"]) for event in events if event["event"] == name]


@pytest.fixture(scope="module")
def documented(app: FastAPI) -> Any:
    """The app's OpenAPI document with these schemas on its streaming routes, in schemathesis."""
    document = copy.deepcopy(app.openapi())
    for routes, schema in ((NATIVE_ROUTES, NATIVE_EVENT), (PROTOCOL_ROUTES, PROTOCOL_EVENT)):
        for method, path in routes:
            content = document["paths"][path][method.lower()]["responses"]["200"]["content"]
            content.update(sse_content(schema))
    return schemathesis.openapi.from_dict(document)


class Streams:
    """Streams of the app, each checked as it is read; every event name seen, per format."""

    def __init__(
        self, app: FastAPI, client: httpx.AsyncClient, user: User, admin: User, documented: Any
    ):
        self.logs = app.state.switchboard.runs.logs
        self.client, self.user, self.admin, self.documented = client, user, admin, documented
        self.seen: dict[str, set[str]] = {"native": set(), "protocol": set()}

    async def agent(
        self, model: str, tools: list[str] | None = None, approval: list[str] | None = None
    ) -> str:
        body = {
            "name": f"{model} {tools} {approval}",
            "model_name": model,
            "tools_enabled": tools or [],
            "tools_requiring_approval": approval or [],
        }
        response = await self.client.post("/agents/", json=body, headers=self.admin.headers)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    async def chat(self, agent_id: str) -> str:
        response = await self.client.post(
            "/chats/", json={"agent_id": agent_id}, headers=self.user.headers
        )
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def checked(self, response: httpx.Response, route: tuple[str, str]) -> list[dict[str, Any]]:
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/event-stream")
        native = route in NATIVE_ROUTES
        events = (NATIVE if native else PROTOCOL).check(sse_events(response.text))
        assert events[-1]["event"] == "end"
        # What schemathesis says of the whole response, with the schema in the document.
        method, path = route
        self.documented[path][method].validate_response(response)
        self.seen["native" if native else "protocol"].update(names(events))
        return events

    async def message(self, chat_id: str, content: str, **extra: Any) -> list[dict[str, Any]]:
        response = await self.client.post(
            f"/chats/{chat_id}/messages",
            json={"content": content, **extra},
            headers={**self.user.headers, **SSE},
        )
        return self.checked(response, NATIVE_ROUTES[0])

    async def replay(self, run_id: str, after: str | None = None) -> list[dict[str, Any]]:
        headers = {**self.user.headers, **({"Last-Event-ID": after} if after else {})}
        response = await self.client.get(f"/runs/{run_id}/stream", headers=headers)
        return self.checked(response, NATIVE_ROUTES[1])

    async def run(self, thread_id: str | None, body: dict[str, Any]) -> list[dict[str, Any]]:
        path = f"/threads/{thread_id}/runs/stream" if thread_id else "/runs/stream"
        response = await self.client.post(path, json=body, headers=self.user.headers)
        return self.checked(response, PROTOCOL_ROUTES[0 if thread_id else 1])

    async def join(self, thread_id: str, run_id: str, after: str | None = None) -> list[Any]:
        headers = {**self.user.headers, **({"Last-Event-ID": after} if after else {})}
        response = await self.client.get(
            f"/threads/{thread_id}/runs/{run_id}/stream", headers=headers
        )
        return self.checked(response, PROTOCOL_ROUTES[2])

    async def running(self, chat_id: str, other_than: str | None = None) -> str:
        """The chat's newest run once it runs (a run other than ``other_than``)."""
        for _ in range(1000):
            runs = await self.client.get(f"/chats/{chat_id}/runs", headers=self.user.headers)
            items = runs.json()["items"]
            if items and items[0]["status"] == "running" and items[0]["id"] != other_than:
                return str(items[0]["id"])
            await asyncio.sleep(0.01)
        raise AssertionError("no run started")

    async def until_events(self, run_id: str, count: int) -> None:
        """Wait until the run's log holds ``count`` events (some tokens are out)."""
        for _ in range(1000):
            run_log = self.logs.get(uuid.UUID(run_id))
            if run_log is not None and len(run_log) >= count:
                return
            await asyncio.sleep(0.01)
        raise AssertionError("the run wrote too little")


@pytest.fixture
async def streams(
    app: FastAPI, client: httpx.AsyncClient, user: User, admin: User, documented: Any
) -> Streams:
    return Streams(app, client, user, admin, documented)


def hi(text: str = "hi") -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


# --- tools and a subgraph, for the events the seeded agents never send ---------------------------


class _Sub(TypedDict):
    text: str


def _subgraph() -> Any:
    def shout(state: _Sub) -> _Sub:
        get_stream_writer()({"progress": "inside the subgraph"})
        return {"text": state["text"].upper()}

    graph = StateGraph(_Sub)
    graph.add_node("shout", shout)
    graph.add_edge(START, "shout")
    graph.add_edge("shout", END)
    return graph.compile()


_SUBGRAPH = _subgraph()


@tool("reporter")
async def reporter(query: str) -> str:
    """Reports progress, then runs a subgraph over the query."""
    get_stream_writer()({"progress": "about to run the subgraph", "query": query})
    result = await _SUBGRAPH.ainvoke({"text": query})
    return str(result["text"])


@pytest.fixture
def reporter_tool(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setitem(TOOLS, "reporter", reporter)
    return "reporter"


# --- native streams ------------------------------------------------------------------------------


async def test_native_tokens_replayed_and_resumed(streams: Streams) -> None:
    chat_id = await streams.chat(await streams.agent("fake:tokens-5"))
    live = await streams.message(chat_id, "go")
    assert names(live) == ["run", "message", *["token"] * 5, "message", "end"]
    run_id = data(live, "run")[0]["run_id"]
    assert await streams.replay(run_id) == live
    assert await streams.replay(run_id, after="3") == live[3:]
    # Resumed at or past the end: the end again.
    assert await streams.replay(run_id, after=live[-1]["id"]) == live[-1:]
    assert await streams.replay(run_id, after="999") == live[-1:]
    # A Last-Event-ID that is no event id replays it all.
    assert await streams.replay(run_id, after="-1") == live


async def test_native_tool_rounds_and_tool_errors(streams: Streams) -> None:
    chat_id = await streams.chat(await streams.agent("fake:tools", ["calculator"]))
    events = await streams.message(chat_id, json.dumps({"expression": "6*7"}))
    assert names(events)[:6] == ["run", "message", "tool_call", "message", "tool_result",
                                 "message"]  # fmt: skip
    assert [m["sender"] for m in data(events, "message")] == ["user", "agent", "tool", "agent"]
    failed = await streams.message(chat_id, "__import__('os').system('id')")
    assert data(failed, "tool_result")[0]["is_error"] is True


async def test_native_failed_run(streams: Streams, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in UNREACHABLE.items():
        monkeypatch.setenv(key, value)
    chat_id = await streams.chat(await streams.agent("openai:gpt-4o-mini"))
    events = await streams.message(chat_id, "hello")
    assert names(events) == ["run", "message", "error", "end"]
    assert data(events, "end") == [{"status": "error", "usage": {}}]


async def test_native_cancelled_and_interrupted_runs(streams: Streams) -> None:
    chat_id = await streams.chat(await streams.agent(SLOW))
    first = asyncio.create_task(streams.message(chat_id, "one"))
    run_id = await streams.running(chat_id)
    await streams.until_events(run_id, 5)
    cancel = await streams.client.post(f"/runs/{run_id}/cancel", headers=streams.user.headers)
    assert cancel.json()["cancelled"] is True
    cancelled = await first
    assert data(cancelled, "end")[0]["status"] == "cancelled"
    assert await streams.replay(run_id) == cancelled

    second = asyncio.create_task(streams.message(chat_id, "two"))
    run_id = await streams.running(chat_id)
    await streams.until_events(run_id, 5)
    # A newer message with ``interrupt`` stops it; the newer one is stopped in turn.
    third = asyncio.create_task(streams.message(chat_id, "three", multitask_strategy="interrupt"))
    assert data(await second, "end")[0]["status"] == "interrupted"
    newest = await streams.running(chat_id, other_than=run_id)
    await streams.until_events(newest, 3)
    await streams.client.post(f"/runs/{newest}/cancel", headers=streams.user.headers)
    assert data(await third, "end")[0]["status"] == "cancelled"


async def test_native_stop_during_a_tool_call_then_the_closing_result(
    streams: Streams, slow_tool: asyncio.Event
) -> None:
    chat_id = await streams.chat(await streams.agent("fake:tools", ["slow_lookup"]))
    first = asyncio.create_task(streams.message(chat_id, "q"))
    await asyncio.wait_for(slow_tool.wait(), timeout=10)
    run_id = await streams.running(chat_id)
    await streams.client.post(f"/runs/{run_id}/cancel", headers=streams.user.headers)
    stopped = await first
    assert names(stopped) == ["run", "message", "tool_call", "message", "end"]
    # The next run answers the open call first (an error result written by the runtime).
    nxt = await streams.message(chat_id, "next")
    assert names(nxt)[:4] == ["run", "tool_result", "message", "message"]
    assert data(nxt, "tool_result")[0]["is_error"] is True


async def test_native_pause_on_ask_human(streams: Streams) -> None:
    chat_id = await streams.chat(await streams.agent("fake:tools", ["ask_human"]))
    events = await streams.message(chat_id, "May I deploy?")
    assert names(events) == ["run", "message", "tool_call", "message", "end"]
    assert data(events, "end")[0]["status"] == "success"


# --- Agent Protocol streams ----------------------------------------------------------------------


@pytest.mark.parametrize("mode", PROTOCOL_MODES)
async def test_protocol_each_stream_mode_with_a_tool_round(
    streams: Streams, reporter_tool: str, mode: str
) -> None:
    agent_id = await streams.agent("fake:tools", [reporter_tool])
    thread_id = await streams.chat(agent_id)
    body = {"assistant_id": agent_id, "input": hi("look this up"), "stream_mode": [mode]}
    events = await streams.run(thread_id, body)
    expected = {
        "values": {"values"},
        "updates": {"updates"},
        "messages": {"messages/metadata", "messages/partial", "messages/complete"},
        "messages-tuple": {"messages"},
        "custom": {"custom"},
        "events": {"events"},
        "debug": {"debug"},
    }[mode]
    assert set(names(events)) == {"metadata", *expected, "end"}
    assert names(events)[0] == "metadata"
    run_id = data(events, "metadata")[0]["run_id"]
    assert await streams.join(thread_id, run_id) == events
    assert await streams.join(thread_id, run_id, after="2") == events[2:]


async def test_protocol_subgraph_events_carry_their_namespace(
    streams: Streams, reporter_tool: str
) -> None:
    agent_id = await streams.agent("fake:tools", [reporter_tool])
    thread_id = await streams.chat(agent_id)
    body = {
        "assistant_id": agent_id,
        "input": hi("look this up"),
        "stream_mode": PROTOCOL_MODES,
        "stream_subgraphs": True,
    }
    events = await streams.run(thread_id, body)
    suffixed = {name.split("|")[0] for name in names(events) if "|" in name}
    assert {"values", "updates", "custom", "debug"} <= suffixed, names(events)
    assert any(name.startswith("values|tools:") for name in names(events))


async def test_protocol_stateless_failed_and_paused_runs(
    streams: Streams, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokens = await streams.agent("fake:tokens-5")
    stateless = await streams.run(None, {"assistant_id": tokens, "input": hi()})
    assert names(stateless) == ["metadata", "values", "values", "end"]

    for key, value in UNREACHABLE.items():
        monkeypatch.setenv(key, value)
    broken = await streams.agent("openai:gpt-4o-mini")
    failed = await streams.run(await streams.chat(broken), {"assistant_id": broken,
                                                            "input": hi()})  # fmt: skip
    assert names(failed) == ["metadata", "values", "error", "end"]
    assert data(failed, "end")[0]["status"] == "error"

    hitl = await streams.agent("fake:tools", ["ask_human"])
    thread_id = await streams.chat(hitl)
    body: dict[str, Any] = {"assistant_id": hitl, "stream_mode": ["updates", "values"]}
    paused = await streams.run(thread_id, {**body, "input": hi("May I deploy?")})
    assert any("__interrupt__" in update for update in data(paused, "updates"))
    resumed = await streams.run(thread_id, {**body, "command": {"resume": "yes, go"}})
    assert data(resumed, "end")[0]["status"] == "success"


async def test_protocol_stopped_runs(streams: Streams) -> None:
    slow = await streams.agent(SLOW)
    stops: list[tuple[str, Callable[[str, str], str]]] = [
        ("interrupted", lambda thread, run: f"/threads/{thread}/runs/{run}/cancel?wait=true"),
        # The native cancel works on protocol runs too: their end says ``cancelled``.
        ("cancelled", lambda thread, run: f"/runs/{run}/cancel"),
    ]
    for status, cancel_path in stops:
        thread_id = await streams.chat(slow)
        body = {"assistant_id": slow, "input": hi(), "stream_mode": ["messages-tuple"]}
        streaming = asyncio.create_task(streams.run(thread_id, body))
        run_id = await streams.running(thread_id)
        await streams.until_events(run_id, 5)
        stopped = await streams.client.post(
            cancel_path(thread_id, run_id), headers=streams.user.headers
        )
        assert stopped.status_code == 200, stopped.text
        events = await streaming
        assert data(events, "end") == [{"status": status, "usage": {}}]
        assert await streams.join(thread_id, run_id, after=events[3]["id"]) == events[4:]


async def test_every_event_name_was_seen(
    streams: Streams, reporter_tool: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One stream of each kind in one place, to show the schemas' names are all reachable."""
    calculator = await streams.agent("fake:tools", ["calculator"])
    await streams.message(await streams.chat(calculator), "2 ** 10")
    gated = await streams.agent("fake:tools", ["calculator"], approval=["calculator"])
    paused = await streams.message(await streams.chat(gated), "2 ** 10")
    assert names(paused)[-2:] == ["approval_required", "end"]
    agent_id = await streams.agent("fake:tools", [reporter_tool])
    body = {"assistant_id": agent_id, "input": hi("x"), "stream_mode": PROTOCOL_MODES}
    await streams.run(await streams.chat(agent_id), body)
    await streams.run(await streams.chat(agent_id), {**body, "stream_subgraphs": True})
    for key, value in UNREACHABLE.items():
        monkeypatch.setenv(key, value)
    broken = await streams.agent("openai:gpt-4o-mini")
    await streams.message(await streams.chat(broken), "hello")
    await streams.run(await streams.chat(broken), {"assistant_id": broken, "input": hi()})

    assert streams.seen["native"] == set(NATIVE_EVENT["properties"]["event"]["enum"])
    base = {name.split("|")[0] for name in streams.seen["protocol"]}
    assert base == {"metadata", "values", "updates", "messages", "messages/metadata",
                    "messages/partial", "messages/complete", "custom", "events", "debug",
                    "error", "end"}  # fmt: skip
    assert any("|" in name for name in streams.seen["protocol"])


async def test_a_protocol_run_read_through_the_native_stream_route(streams: Streams) -> None:
    """``GET /runs/{id}/stream`` serves any run's log: a protocol run's events there are the
    protocol's (and ``GET /threads/{id}/runs/{run_id}/stream`` a native run's are native)."""
    agent_id = await streams.agent("fake:tokens-5")
    thread_id = await streams.chat(agent_id)
    events = await streams.run(thread_id, {"assistant_id": agent_id, "input": hi()})
    run_id = data(events, "metadata")[0]["run_id"]
    response = await streams.client.get(f"/runs/{run_id}/stream", headers=streams.user.headers)
    assert sse_events(response.text) == events
    assert NATIVE.errors(events[0]) != []
    # schemathesis, given the native schema on that route, reports it.
    with pytest.raises((AssertionError, FailureGroup)):
        streams.documented["/runs/{run_id}/stream"]["GET"].validate_response(response)

    chat_events = await streams.message(thread_id, "native")
    run_id = data(chat_events, "run")[0]["run_id"]
    response = await streams.client.get(
        f"/threads/{thread_id}/runs/{run_id}/stream", headers=streams.user.headers
    )
    assert sse_events(response.text) == chat_events
    assert PROTOCOL.errors(chat_events[0]) != []
    with pytest.raises((AssertionError, FailureGroup)):
        streams.documented["/threads/{thread_id}/runs/{run_id}/stream"]["GET"].validate_response(
            response
        )


# --- the schemas refuse what the server never sends ----------------------------------------------

RUN = "6f1c1d7e-9a43-4f6b-8d52-2d1f4f2b9a10"
MESSAGE = {
    "id": "lc_run--1",
    "chat_id": RUN,
    "sender": "agent",
    "content": "hi",
    "metadata": {"model": "fake:echo", "usage": None, "latency_ms": 1.5,
                 "finish_reason": "stop", "tool_calls": [], "feedback": None},
    "created_at": "2026-01-02T03:04:05.678901+00:00",
}  # fmt: skip
GOOD_NATIVE = [
    ("run", {"run_id": RUN, "chat_id": RUN, "agent_id": RUN}),
    ("message", MESSAGE),
    ("message", {**MESSAGE, "sender": "user", "metadata": {}, "created_at": None}),
    ("token", {"message_id": "lc_run--1", "delta": "tok"}),
    ("error", {"code": "run_failed", "message": "The agent could not answer. Try again."}),
    ("end", {"status": "success", "usage": {}}),
    ("end", {"status": "cancelled",
             "usage": {"input_tokens": 1, "output_tokens": 2, "total_tokens": 3}}),
]  # fmt: skip
BAD_NATIVE = [
    ("unknown event name", "progress", {"status": "success", "usage": {}}),
    ("a protocol event", "metadata", {"run_id": RUN, "attempt": 1}),
    ("end with a non-string status", "end", {"status": 1, "usage": {}}),
    ("end with an unknown status", "end", {"status": "running", "usage": {}}),
    ("end without usage", "end", {"status": "success"}),
    ("end with partial usage", "end", {"status": "success", "usage": {"input_tokens": 1}}),
    ("end with a negative count", "end",
     {"status": "success", "usage": {"input_tokens": -1, "output_tokens": 0, "total_tokens": 0}}),
    ("a token without delta", "token", {"message_id": "m"}),
    ("an empty delta", "token", {"message_id": "m", "delta": ""}),
    ("a run id that is no uuid", "run", {"run_id": "x", "chat_id": RUN, "agent_id": RUN}),
    ("an unknown sender", "message", {**MESSAGE, "sender": "system"}),
    ("user metadata", "message", {**MESSAGE, "sender": "user"}),
    ("a bad created_at", "message", {**MESSAGE, "created_at": "yesterday"}),
    ("an error code we never send", "error", {"code": "boom", "message": "x"}),
    ("the protocol's error", "error", {"error": "ValueError", "message": "x"}),
    ("tool_result without is_error", "tool_result",
     {"tool_call_id": "c", "name": "calculator", "content": "42"}),
]  # fmt: skip
GOOD_PROTOCOL = [
    ("metadata", {"run_id": RUN, "attempt": 1}),
    ("values", {"messages": []}),
    ("values", [1, "any", None]),
    ("values|tools:abc|inner:def", {"x": 1}),
    ("updates", {"__interrupt__": [{"value": "q", "id": "i"}]}),
    ("messages", [{"type": "AIMessageChunk", "content": "tok"}, {"langgraph_node": "model"}]),
    ("messages|sub:1", [{"type": "tool", "content": "42"}, {}]),
    ("messages/metadata", {"lc_run--1": {"metadata": {}}}),
    ("messages/partial", [{"type": "ai", "content": "tok0"}]),
    ("messages/complete|a:1", [{"type": "tool", "content": "42"}]),
    ("custom", "any JSON"),
    ("debug", {"type": "checkpoint", "step": 0, "timestamp": "t", "payload": {}}),
    (
        "events",
        {"event": "on_chain_start", "name": "agent", "run_id": RUN, "parent_ids": [], "data": {}},
    ),
    ("error", {"error": "APIConnectionError", "message": "x"}),
    ("end", {"status": "interrupted", "usage": {}}),
]
BAD_PROTOCOL = [
    ("unknown event name", "progress", {}),
    ("a native event", "token", {"message_id": "m", "delta": "x"}),
    ("end with a non-string status", "end", {"status": 1, "usage": {}}),
    ("end with a namespace", "end|tools:1", {"status": "success", "usage": {}}),
    ("metadata with a namespace", "metadata|x", {"run_id": RUN, "attempt": 1}),
    ("an empty namespace", "values|", {}),
    ("a mode's name misspelled", "messages/partials", [{"type": "ai", "content": ""}]),
    ("metadata without attempt", "metadata", {"run_id": RUN}),
    ("a messages tuple of three", "messages", [{"type": "ai", "content": ""}, {}, {}]),
    ("a messages tuple without a message", "messages", [{}, {}]),
    ("a message without type", "messages/partial", [{"content": "x"}]),
    ("no partial message", "messages/partial", []),
    ("updates that are no object", "updates", [1]),
    (
        "events without their event",
        "events",
        {"name": "x", "run_id": RUN, "parent_ids": [], "data": {}},
    ),
    ("debug without its step", "debug", {"type": "task", "timestamp": "t", "payload": {}}),
    ("the native error", "error", {"code": "run_failed", "message": "x"}),
]


def _event(name: str, payload: Any, event_id: str = "7") -> dict[str, str]:
    return {"event": name, "data": json.dumps(payload), "id": event_id}


def _cases(good: list[tuple[str, Any]]) -> Iterator[tuple[str, dict[str, str]]]:
    for name, payload in good:
        yield name, _event(name, payload)


@pytest.mark.parametrize(("checker", "good"), [(NATIVE, GOOD_NATIVE), (PROTOCOL, GOOD_PROTOCOL)])
def test_well_formed_events_are_accepted(checker: Checker, good: list[tuple[str, Any]]) -> None:
    events = [event for _, event in _cases(good)]
    for event in events:
        assert checker.errors(event) == [], event
    assert checker.schemathesis_failure(events) is None


@pytest.mark.parametrize(
    ("checker", "why", "name", "payload"),
    [(NATIVE, *bad) for bad in BAD_NATIVE] + [(PROTOCOL, *bad) for bad in BAD_PROTOCOL],
    ids=[f"native: {bad[0]}" for bad in BAD_NATIVE]
    + [f"protocol: {bad[0]}" for bad in BAD_PROTOCOL],
)
def test_wrong_events_are_refused(checker: Checker, why: str, name: str, payload: Any) -> None:
    event = _event(name, payload)
    assert checker.errors(event) != [], why
    assert checker.schemathesis_failure([event]) is not None, why


@pytest.mark.parametrize("checker", [NATIVE, PROTOCOL], ids=["native", "protocol"])
def test_wrong_framing_is_refused(checker: Checker) -> None:
    end = {"status": "success", "usage": {}}
    good = _event("end", end)
    assert checker.errors(good) == []
    for wrong in (
        {**good, "id": "0"},
        {**good, "id": "12a"},
        {**good, "id": ""},
        {"event": "end", "data": good["data"]},
        {**good, "data": "not json"},
        {**good, "data": json.dumps(end) + "\n" + json.dumps(end)},
        {**good, "comment": "x"},
    ):
        assert checker.errors(wrong) != [], wrong
        if set(wrong) <= {"event", "data", "id"}:
            assert checker.schemathesis_failure([wrong]) is not None, wrong

"""OpenTelemetry tracing: the spans of a request, its run, the run's model and tool calls, with
their parents and attributes (through the SDK's in-memory exporter, installed by the function the
app uses); no message content unless asked; the OTLP exporter the standard variables configure;
a worker's run span under the request that queued it; LangSmith beside it; nothing at all when
the variables are unset."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import shutil
import tempfile
import threading
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from api.app import create_app
from api.services.auth import ensure_admin
from api.tracing import RequestSpans
from graphs import tracing
from tests.conftest import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    JWT_SECRET,
    PASSWORD,
    make_settings,
    running,
)
from tests.servers import (
    ADMIN,
    Server,
    Worker,
    beside_the_tests,
    clean_env,
    redis_server,
    user_with_agent,
)

# What the user says and what the calculator answers: neither may be in a span by default.
EXPRESSION = "987654 * 3"
ANSWER = "2962962"


@contextlib.asynccontextmanager
async def traced_app(
    database_url: str, **settings: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, InMemorySpanExporter, FastAPI]]:
    exporter = InMemorySpanExporter()
    app = create_app(make_settings(database_url, **settings), span_exporter=exporter)
    try:
        async with running(app) as http:
            yield http, exporter, app
    finally:
        # Off again for every other test of the session.
        tracing.shutdown()


async def _user_and_agent(http: httpx.AsyncClient, app_pool: Any) -> tuple[dict, dict]:
    await ensure_admin(app_pool, email=ADMIN_EMAIL, password=ADMIN_PASSWORD, name="Admin")
    login = await http.post("/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    admin = {"Authorization": f"Bearer {login.json()['access_token']}"}
    agent = await http.post(
        "/agents/",
        json={
            "name": "Traced",
            "system_prompt": "You count.",
            "model_name": "fake:tools",
            "tools_enabled": ["calculator"],
        },
        headers=admin,
    )
    assert agent.status_code == 201, agent.text
    user = await http.post(
        "/auth/register",
        json={"name": "Tracy", "email": "tracy@example.org", "password": PASSWORD},
    )
    assert user.status_code == 201, user.text
    return {"Authorization": f"Bearer {user.json()['access_token']}"}, agent.json()


async def _finished(exporter: InMemorySpanExporter, name: str) -> ReadableSpan:
    """The span ``name`` once it has ended: a run's span ends just after its answer is sent."""
    for _ in range(1000):
        found = [s for s in exporter.get_finished_spans() if s.name == name]
        if found:
            assert len(found) == 1, found
            return found[0]
        await asyncio.sleep(0.01)
    raise AssertionError(f"no span {name!r} in {[s.name for s in exporter.get_finished_spans()]}")


def _texts(spans: Iterable[ReadableSpan]) -> list[str]:
    """Every string an attribute, an event or a status of ``spans`` holds."""
    found: list[str] = []
    for span in spans:
        values: list[Any] = [span.name, span.status.description or ""]
        values += list((span.attributes or {}).values())
        for event in span.events:
            values += [event.name, *(event.attributes or {}).values()]
        for value in values:
            found += [str(v) for v in value] if isinstance(value, tuple) else [str(value)]
    return found


async def _one_turn(
    database_url: str, **settings: Any
) -> tuple[list[ReadableSpan], dict[str, Any], dict[str, Any]]:
    """A message to a fake:tools agent with the calculator (one tool call, two model calls):
    the spans of its request, the run and the chat, once the run's span has ended."""
    async with traced_app(database_url, **settings) as (http, exporter, app):
        headers, agent = await _user_and_agent(http, app.state.switchboard.pool)
        chat = (await http.post("/chats/", json={"agent_id": agent["id"]}, headers=headers)).json()
        exporter.clear()
        answer = await http.post(
            f"/chats/{chat['id']}/messages", json={"content": EXPRESSION}, headers=headers
        )
        assert answer.status_code == 201, answer.text
        body = answer.json()
        assert body["status"] == "success"
        assert body["messages"][-1]["content"] == ANSWER
        await _finished(exporter, "run")
        return list(exporter.get_finished_spans()), body, chat


async def test_a_turn_has_request_run_model_and_tool_spans_with_their_parents(
    database_url: str,
) -> None:
    spans, body, chat = await _one_turn(database_url)
    by_name: dict[str, list[ReadableSpan]] = {}
    for span in spans:
        by_name.setdefault(span.name, []).append(span)
    assert sorted(by_name) == [
        "POST /chats/{chat_id}/messages", "chat tools", "execute_tool calculator", "run",
    ]  # fmt: skip
    [request] = by_name["POST /chats/{chat_id}/messages"]
    [run] = by_name["run"]
    [tool] = by_name["execute_tool calculator"]
    models = by_name["chat tools"]
    assert len(models) == 2  # the call that asks for the tool, the one that answers

    # One trace: the request is its root, the run its child, every call the run's child.
    assert request.parent is None and request.kind == SpanKind.SERVER
    assert {s.context.trace_id for s in spans} == {request.context.trace_id}
    assert run.parent is not None and run.parent.span_id == request.context.span_id
    for call in [tool, *models]:
        assert call.parent is not None and call.parent.span_id == run.context.span_id
    # In the order they ran: ask the model, run the tool, ask the model again.
    first, second = sorted(models, key=lambda s: s.start_time or 0)
    assert (first.end_time or 0) <= (tool.start_time or 0)
    assert (tool.end_time or 0) <= (second.start_time or 0)

    assert dict(request.attributes or {}) == {
        "http.request.method": "POST",
        "url.scheme": "http",
        "http.route": "/chats/{chat_id}/messages",
        "http.response.status_code": 201,
    }
    assert request.status.status_code == StatusCode.UNSET

    run_id = body["run_id"]
    assert dict(run.attributes or {}) == {
        "switchboard.run.id": run_id,
        "switchboard.chat.id": chat["id"],
        "switchboard.agent.id": chat["agent_id"],
        "switchboard.agent.slug": run.attributes["switchboard.agent.slug"],  # type: ignore[index]
        "switchboard.agent.version": 1,
        "switchboard.run.kind": "native",
        "switchboard.run.multitask_strategy": "reject",
        "switchboard.model": "fake:tools",
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.id": chat["agent_id"],
        "gen_ai.agent.name": run.attributes["switchboard.agent.slug"],  # type: ignore[index]
        "gen_ai.conversation.id": chat["id"],
        "gen_ai.provider.name": "fake",
        "gen_ai.request.model": "tools",
        "switchboard.run.status": "success",
        "gen_ai.usage.input_tokens": body["usage"]["input_tokens"],
        "gen_ai.usage.output_tokens": body["usage"]["output_tokens"],
    }
    assert run.status.status_code == StatusCode.UNSET

    assert dict(tool.attributes or {}) == {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "calculator",
        "gen_ai.tool.call.id": tool.attributes["gen_ai.tool.call.id"],  # type: ignore[index]
    }
    assert str(tool.attributes["gen_ai.tool.call.id"]).startswith("call_")  # type: ignore[index]
    assert first.attributes["switchboard.tool_calls"] == ("calculator",)  # type: ignore[index]
    assert "switchboard.tool_calls" not in (second.attributes or {})
    for model in models:
        assert model.kind == SpanKind.CLIENT
        assert model.attributes["gen_ai.request.model"] == "tools"  # type: ignore[index]
        assert model.attributes["switchboard.model"] == "fake:tools"  # type: ignore[index]
    # The run's usage is its model calls' usage.
    for key in ("input_tokens", "output_tokens"):
        counted = [(m.attributes or {})[f"gen_ai.usage.{key}"] for m in models]
        assert sum(counted) == body["usage"][key]  # type: ignore[arg-type]

    # No message content anywhere: not the user's message, not the answer.
    texts = _texts(spans)
    assert [t for t in texts if EXPRESSION in t or "987654" in t or ANSWER in t] == []


async def test_content_is_traced_when_asked_and_cut_to_its_limit(database_url: str) -> None:
    spans, _, _ = await _one_turn(database_url, trace_content=True)
    [run] = [s for s in spans if s.name == "run"]
    [tool] = [s for s in spans if s.name == "execute_tool calculator"]
    first, second = sorted(
        (s for s in spans if s.name == "chat tools"), key=lambda s: s.start_time or 0
    )
    assert run.attributes["switchboard.input"] == EXPRESSION  # type: ignore[index]
    assert run.attributes["switchboard.output"] == ANSWER  # type: ignore[index]
    assert tool.attributes["gen_ai.tool.call.arguments"] == (  # type: ignore[index]
        '{"expression": "987654 * 3"}'
    )
    assert tool.attributes["gen_ai.tool.call.result"] == ANSWER  # type: ignore[index]
    assert second.attributes["switchboard.output"] == ANSWER  # type: ignore[index]
    assert "switchboard.output" not in (first.attributes or {})
    # Never past the limit: a long text is cut, with a mark that it was.
    assert tracing._cut("x" * 5000) == "x" * tracing.CONTENT_LIMIT + "…"
    assert tracing._cut("x" * tracing.CONTENT_LIMIT) == "x" * tracing.CONTENT_LIMIT


async def test_a_protocol_run_is_traced_under_its_request(database_url: str) -> None:
    async with traced_app(database_url) as (http, exporter, app):
        headers, agent = await _user_and_agent(http, app.state.switchboard.pool)
        thread = (await http.post("/threads", json={}, headers=headers)).json()
        exporter.clear()
        waited = await http.post(
            f"/threads/{thread['thread_id']}/runs/wait",
            json={
                "assistant_id": agent["id"],
                "input": {"messages": [{"role": "user", "content": EXPRESSION}]},
            },
            headers=headers,
        )
        assert waited.status_code == 200, waited.text
        run = await _finished(exporter, "run")
        spans = exporter.get_finished_spans()
    [request] = [s for s in spans if s.name == "POST /threads/{thread_id}/runs/wait"]
    assert run.parent is not None and run.parent.span_id == request.context.span_id
    assert run.attributes["switchboard.run.kind"] == "protocol"  # type: ignore[index]
    assert run.attributes["switchboard.chat.id"] == thread["thread_id"]  # type: ignore[index]
    assert run.attributes["switchboard.run.status"] == "success"  # type: ignore[index]
    children = [s.name for s in spans if s.parent and s.parent.span_id == run.context.span_id]
    assert sorted(children) == ["chat tools", "chat tools", "execute_tool calculator"]
    assert [t for t in _texts(spans) if "987654" in t or ANSWER in t] == []


async def test_a_request_continues_the_callers_trace_and_unmatched_paths_are_named_by_method(
    database_url: str,
) -> None:
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    async with traced_app(database_url) as (http, exporter, _):
        health = await http.get(
            "/healthz", headers={"traceparent": f"00-{trace_id}-{parent_id}-01"}
        )
        assert health.status_code == 200
        missing = await http.get("/no/such/path/secret-token-in-path")
        assert missing.status_code == 404
        shared = await http.get("/shared/secret-share-token?stream_token=secret-stream-token")
        assert shared.status_code == 404
        spans = {s.name: s for s in exporter.get_finished_spans()}
    # FastAPI's own spans (its dependencies, its endpoint) are not made.
    assert sorted(spans) == ["GET", "GET /healthz", "GET /shared/{token}"]
    health_span = spans["GET /healthz"]
    assert format(health_span.context.trace_id, "032x") == trace_id
    assert health_span.parent is not None and format(health_span.parent.span_id, "016x") == (
        parent_id
    )
    assert health_span.attributes["http.response.status_code"] == 200  # type: ignore[index]
    assert dict(spans["GET"].attributes or {}) == {
        "http.request.method": "GET",
        "url.scheme": "http",
        "http.response.status_code": 404,
    }
    # Neither the path nor the query is recorded: a share link's token is the path, a
    # stream token a query parameter.
    assert [t for t in _texts(spans.values()) if "secret" in t] == []


def test_tracing_is_off_without_an_endpoint(database_url: str) -> None:
    assert tracing.configure(env={}) is False
    assert tracing.tracer is None
    # Off, a run's coroutine is handed back as it is: no wrapper, no span.
    work = asyncio.sleep(0)
    assert tracing.traced_run(None, work) is work  # type: ignore[arg-type]
    work.close()
    with tracing.model_call("fake:echo") as call:
        assert call.span is None
    # Nor does the app add its request middleware.
    app = create_app(make_settings(database_url))
    assert RequestSpans not in [m.cls for m in app.user_middleware]
    # The SDK's own switches turn it off even with an endpoint.
    endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}
    assert tracing.configure(env={**endpoint, "OTEL_SDK_DISABLED": "true"}) is False
    assert tracing.configure(env={**endpoint, "OTEL_TRACES_EXPORTER": "none"}) is False


async def test_a_run_input_carries_its_request_trace_only_when_there_is_one(
    database_url: str,
) -> None:
    from graphs.runtime.inputs import NativeInput, parse_input

    # Off: stored exactly as before the field existed (an older worker reads it).
    assert "trace_parent" not in NativeInput(content="hi").model_dump(mode="json")
    async with traced_app(database_url) as _:
        assert tracing.tracer is not None
        assert NativeInput(content="hi").trace_parent is None  # no span: nothing to carry
        with tracing.tracer.start_as_current_span("request") as span:
            made = NativeInput(content="hi")
            context = span.get_span_context()
            ids = f"{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"
            assert made.trace_parent == f"00-{ids}"
            stored = made.model_dump(mode="json")
            assert stored["trace_parent"] == made.trace_parent
            assert parse_input(stored).trace_parent == made.trace_parent
            # A row stored without one is not given the span of what reads it.
            assert parse_input({"content": "hi"}).trace_parent is None


@contextlib.contextmanager
def otlp_receiver() -> Iterator[tuple[str, list[tuple[str, bytes]]]]:
    """An HTTP server on a free loopback port that keeps what is POSTed to it."""
    received: list[tuple[str, bytes]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, body))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:
            # LangSmith's client asks for its server's /info first.
            received.append((self.path, b""))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    "variable", ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
)
async def test_the_standard_variables_export_over_otlp(
    database_url: str, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    with otlp_receiver() as (url, received):
        endpoint = url if variable == "OTEL_EXPORTER_OTLP_ENDPOINT" else f"{url}/custom/traces"
        monkeypatch.setenv(variable, endpoint)
        monkeypatch.setenv("OTEL_SERVICE_NAME", "switchboard-under-test")
        try:
            app = create_app(make_settings(database_url))
            assert tracing.tracer is not None
            async with running(app) as http:
                assert (await http.get("/healthz")).status_code == 200
            # The lifespan's end flushed the batch.
        finally:
            tracing.shutdown()
    expected_path = "/v1/traces" if variable == "OTEL_EXPORTER_OTLP_ENDPOINT" else "/custom/traces"
    assert {path for path, _ in received} == {expected_path}
    names, services = [], set()
    for _, body in received:
        export = ExportTraceServiceRequest.FromString(body)
        for resource_spans in export.resource_spans:
            for attribute in resource_spans.resource.attributes:
                if attribute.key == "service.name":
                    services.add(attribute.value.string_value)
            for scope_spans in resource_spans.scope_spans:
                names += [span.name for span in scope_spans.spans]
    assert names == ["GET /healthz"]
    assert services == {"switchboard-under-test"}


def _exported_spans(received: list[tuple[str, bytes]]) -> dict[str, list[tuple[str, Any]]]:
    """Every span the receiver got, by service name: (span name, span)."""
    found: dict[str, list[tuple[str, Any]]] = {}
    for _, body in received:
        export = ExportTraceServiceRequest.FromString(body)
        for resource_spans in export.resource_spans:
            service = next(
                a.value.string_value
                for a in resource_spans.resource.attributes
                if a.key == "service.name"
            )
            for scope_spans in resource_spans.scope_spans:
                found.setdefault(service, []).extend((s.name, s) for s in scope_spans.spans)
    return found


def test_a_run_a_worker_executes_is_the_child_of_the_request_that_queued_it(
    database_url: str,
) -> None:
    """The API process only queues the run; the worker's run span finds its parent through
    the trace context stored with the run's input."""
    data_dir = Path(tempfile.mkdtemp(prefix="switchboard-tracing-", dir="/tmp"))
    with contextlib.ExitStack() as stack, otlp_receiver() as (url, received):
        stack.callback(shutil.rmtree, data_dir, ignore_errors=True)
        env = clean_env(
            DATABASE_URL=database_url,
            REDIS_URL=stack.enter_context(redis_server(data_dir)),
            SWITCHBOARD_JWT_SECRET=JWT_SECRET,
            SWITCHBOARD_ADMIN_EMAIL=ADMIN["email"],
            SWITCHBOARD_ADMIN_PASSWORD=ADMIN["password"],
            SWITCHBOARD_EXECUTE_RUNS="false",
            OTEL_EXPORTER_OTLP_ENDPOINT=url,
        )
        api = Server(data_dir, {**env, "OTEL_SERVICE_NAME": "switchboard-api"})
        stack.callback(api.signal, 15)
        worker = Worker(data_dir, {**env, "OTEL_SERVICE_NAME": "switchboard-worker"})
        stack.callback(worker.stop)
        with httpx.Client(base_url=api.url, timeout=30) as http:
            headers, agent = user_with_agent(http, "fake:tools", ["calculator"])
            chat = http.post("/chats/", json={"agent_id": agent["id"]}, headers=headers).json()
            answer = http.post(
                f"/chats/{chat['id']}/messages", json={"content": EXPRESSION}, headers=headers
            )
            assert answer.status_code == 201, answer.text
            assert answer.json()["messages"][-1]["content"] == ANSWER
        # Stopped (the worker first), each process sends what its batch still holds.
        stack.close()
    spans = _exported_spans(received)
    sent = "POST /chats/{chat_id}/messages"
    [request] = [span for name, span in spans["switchboard-api"] if name == sent]
    assert sorted(name for name, _ in spans["switchboard-worker"]) == [
        "chat tools", "chat tools", "execute_tool calculator", "run",
    ]  # fmt: skip
    [run] = [span for name, span in spans["switchboard-worker"] if name == "run"]
    assert run.trace_id == request.trace_id
    assert run.parent_span_id == request.span_id
    run_attributes = {a.key: a.value for a in run.attributes}
    assert run_attributes["switchboard.run.id"].string_value == answer.json()["run_id"]
    assert run_attributes["switchboard.run.status"].string_value == "success"
    for name, span in spans["switchboard-worker"]:
        if name != "run":
            assert span.parent_span_id == run.span_id, name


def test_langsmith_keeps_tracing_beside_opentelemetry(database_url: str) -> None:
    """A server with LangSmith's variables and OTLP's sends runs to both (one local receiver
    plays both services)."""
    with otlp_receiver() as (url, received):
        langsmith = {
            "LANGSMITH_TRACING": "true",
            "LANGSMITH_ENDPOINT": url,
            "LANGSMITH_API_KEY": "lsv2_pt_test",
            "LANGSMITH_PROJECT": "switchboard-tests",
        }
        with beside_the_tests(
            database_url, JWT_SECRET, OTEL_EXPORTER_OTLP_ENDPOINT=url,
            SWITCHBOARD_ADMIN_EMAIL=ADMIN["email"], SWITCHBOARD_ADMIN_PASSWORD=ADMIN["password"],
            **langsmith,
        ) as server, httpx.Client(base_url=server.url, timeout=30) as http:  # fmt: skip
            headers, agent = user_with_agent(http, "fake:tools", ["calculator"])
            chat = http.post("/chats/", json={"agent_id": agent["id"]}, headers=headers).json()
            answer = http.post(
                f"/chats/{chat['id']}/messages", json={"content": EXPRESSION}, headers=headers
            )
            assert answer.status_code == 201, answer.text
            assert answer.json()["messages"][-1]["content"] == ANSWER
        # The server has stopped: both have sent what they held.
    to_langsmith = [(path, body) for path, body in received if path.startswith("/runs")]
    assert to_langsmith, sorted({path for path, _ in received})
    # LangSmith got the run: its graph's name and the calculator's call are in what was sent.
    sent = b"".join(body for _, body in to_langsmith)
    assert b"calculator" in sent
    names = sorted(name for name, _ in _exported_spans(
        [(p, b) for p, b in received if p == "/v1/traces"]
    )["switchboard"])  # fmt: skip
    assert names.count("run") == 1
    assert names.count("execute_tool calculator") == 1

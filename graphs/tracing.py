"""OpenTelemetry spans of runs, model calls and tool calls (the request's span: ``api/tracing.py``).

Off unless ``configure`` finds an OTLP endpoint in the standard variables
(``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) or is handed an
exporter (tests). Off, every hook is one test of a module global: a run's coroutine is returned
as it is, a model or tool call gets a shared no-op context manager.

Spans and their parents:

- ``run``: one per run, around its whole task (queued wait included), ended with its final
  status. It is a **child of the request's span** that made the run, in any process: the run's
  input stores that span's W3C ``traceparent`` (``graphs/runtime/inputs.py``), so a
  ``switchboard worker`` claiming the run continues the request's trace. (It may outlive the
  request's span: an answer that did not wait for the run.) A cron's runs, which no request
  makes, are roots.
- ``chat <model>``: one per model call, a child of the run span (the graph's tasks copy the
  run task's context); ``execute_tool <name>``: one per tool call, a child of the run span too.

Attribute names follow OpenTelemetry's GenAI conventions where they have one
(``gen_ai.request.model``, ``gen_ai.tool.name``, ``gen_ai.usage.*``) and ``switchboard.*``
otherwise. Message content (the user's message, the answer, tool arguments and results) is
never an attribute unless ``content=True`` (``SWITCHBOARD_TRACE_CONTENT``), and then cut to
``CONTENT_LIMIT`` characters.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
from collections.abc import Coroutine, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from langchain_core.messages import AIMessage, ToolMessage

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, Tracer

    from graphs.runtime.types import RunContext

CONTENT_LIMIT = 1000
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
DEFAULT_SERVICE_NAME = "switchboard"

# ``None``: tracing is off (the hooks below do nothing else).
tracer: Tracer | None = None
content = False
_provider: TracerProvider | None = None
# The span of the run whose task this is: the model call that answers sets the answer on it.
_run_span: contextvars.ContextVar[Span | None] = contextvars.ContextVar(
    "switchboard_run_span", default=None
)


def configure(
    *,
    trace_content: bool = False,
    exporter: SpanExporter | None = None,
    env: Mapping[str, str] | None = None,
) -> bool:
    """Turn tracing on (``True``) or off from ``env`` (the process environment by default).

    ``exporter`` replaces the OTLP exporter (an in-memory one in tests) and turns tracing on
    whatever ``env`` says. Called again, it replaces the previous configuration (whose spans
    are flushed first). The first provider made is also installed as OpenTelemetry's global
    one, so other instrumentation in the process joins the same traces: the MCP SDK's spans of
    calls to and from MCP servers (method and tool names, no arguments).
    """
    global tracer, content, _provider
    env = os.environ if env is None else env
    shutdown()
    content = trace_content
    disabled = env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"
    wanted = exporter is not None or (
        not disabled
        and env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() != "none"
        and any(env.get(name, "").strip() for name in ENDPOINT_VARIABLES)
    )
    if not wanted:
        return False
    # Imported only when on: the SDK and the exporter cost an off server nothing.
    from opentelemetry import trace
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    # Resource.create adds OTEL_RESOURCE_ATTRIBUTES (read from the process environment).
    service = env.get("OTEL_SERVICE_NAME", "").strip() or DEFAULT_SERVICE_NAME
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service}))
    if exporter is not None:
        # Each span as it ends, so a test reads it at once.
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        # The endpoint from ``env`` (tests pass theirs); headers, timeout and compression the
        # exporter reads from the standard variables itself. Spans leave in batches, from the
        # processor's thread, off the event loop.
        endpoint = env.get(ENDPOINT_VARIABLES[0], "").strip() or None
        if endpoint is None:
            endpoint = env[ENDPOINT_VARIABLES[1]].strip().rstrip("/") + "/v1/traces"
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        trace.set_tracer_provider(provider)
    _provider = provider
    tracer = provider.get_tracer("switchboard")
    return True


def shutdown() -> None:
    """Flush and close the spans' exporter, and turn tracing off (at shutdown, in tests)."""
    global tracer, _provider
    provider, tracer, _provider = _provider, None, None
    if provider is not None:
        provider.shutdown()


def flush() -> None:
    if _provider is not None:
        _provider.force_flush()


def current_traceparent() -> str | None:
    """The W3C ``traceparent`` of the current span (a request's), or ``None`` (off, no span)."""
    if tracer is None:
        return None
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return carrier.get("traceparent")


def _cut(text: str) -> str:
    return text if len(text) <= CONTENT_LIMIT else text[:CONTENT_LIMIT] + "…"


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str, ensure_ascii=False)


# Runs.


def traced_run(ctx: RunContext, work: Coroutine[Any, Any, None]) -> Coroutine[Any, Any, None]:
    """``work`` (the run's whole task) inside the run's span; ``work`` itself when off."""
    if tracer is None:
        return work
    return _run(tracer, ctx, work)


async def _run(tracer: Tracer, ctx: RunContext, work: Coroutine[Any, Any, None]) -> None:
    from opentelemetry.trace import SpanKind, Status, StatusCode

    from graphs.runtime import streams
    from graphs.runtime.inputs import NativeInput

    spec, run_input = ctx.spec, ctx.input
    provider, _, model = spec.model_name.partition(":")
    attributes: dict[str, Any] = {
        "switchboard.run.id": str(ctx.run_id),
        "switchboard.chat.id": ctx.chat_id,
        "switchboard.agent.id": str(spec.id),
        "switchboard.agent.slug": spec.slug,
        "switchboard.agent.version": spec.version,
        "switchboard.run.kind": "protocol" if ctx.protocol else "native",
        "switchboard.run.multitask_strategy": str(ctx.run["multitask_strategy"]),
        "switchboard.model": spec.model_name,
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.id": str(spec.id),
        "gen_ai.agent.name": spec.slug,
        "gen_ai.conversation.id": ctx.chat_id,
        "gen_ai.provider.name": provider,
        "gen_ai.request.model": model,
    }
    if content:
        said = (
            run_input.content
            if isinstance(run_input, NativeInput)
            else streams.first_text(run_input.input)
        )
        attributes["switchboard.input"] = _cut(said)
    # The request that made the run: stored with its input, so a worker finds it too (in the
    # process of the request, it is also the context the run's task was created in).
    parent = None
    if run_input.trace_parent:
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        parent = TraceContextTextMapPropagator().extract({"traceparent": run_input.trace_parent})
    # The outcome is the run's status, set below: a stopped run's CancelledError is no error.
    with tracer.start_as_current_span(
        "run", context=parent, kind=SpanKind.INTERNAL, attributes=attributes,
        record_exception=False, set_status_on_exception=False,
    ) as span:  # fmt: skip
        token = _run_span.set(span)
        try:
            await work
        finally:
            _run_span.reset(token)
            span.set_attribute("switchboard.run.status", ctx.status)
            for key in ("input_tokens", "output_tokens"):
                if key in ctx.usage:
                    span.set_attribute(f"gen_ai.usage.{key}", ctx.usage[key])
            if ctx.status == "error":
                # The error's name only (RunTimeout, a type name): never its text.
                span.set_status(Status(StatusCode.ERROR, ctx.error or "error"))
                span.set_attribute("error.type", ctx.error or "error")


# Model and tool calls (graphs/build.py's middleware).


class _Call:
    """One model or tool call's span while it runs, or nothing (tracing off)."""

    __slots__ = ("span",)

    def __init__(self, span: Span | None) -> None:
        self.span = span

    def model_answered(self, response: Any) -> None:
        span = self.span
        if span is None:
            return
        messages = getattr(response, "result", None) or [response]
        for message in messages:
            if not isinstance(message, AIMessage):
                continue
            usage: Mapping[str, Any] = message.usage_metadata or {}
            for key in ("input_tokens", "output_tokens"):
                if key in usage:
                    span.set_attribute(f"gen_ai.usage.{key}", usage[key])
            reason = message.response_metadata.get("finish_reason")
            if isinstance(reason, str):
                span.set_attribute("gen_ai.response.finish_reasons", [reason])
            if message.tool_calls:
                span.set_attribute(
                    "switchboard.tool_calls", [call["name"] for call in message.tool_calls]
                )
            elif content and message.text:
                span.set_attribute("switchboard.output", _cut(message.text))
                # The model call that answers without tool calls ends the turn: its text is
                # the run's answer.
                run_span = _run_span.get()
                if run_span is not None:
                    run_span.set_attribute("switchboard.output", _cut(message.text))

    def tool_answered(self, result: Any) -> None:
        span = self.span
        if span is None or not isinstance(result, ToolMessage):
            return
        if result.status == "error":
            from opentelemetry.trace import Status, StatusCode

            span.set_status(Status(StatusCode.ERROR, "tool error"))
            span.set_attribute("error.type", "tool_error")
        if content:
            span.set_attribute("gen_ai.tool.call.result", _cut(_text(result.content)))


class _Off(contextlib.AbstractContextManager[_Call]):
    """What a model or tool call gets with tracing off: one shared object, nothing to make."""

    call = _Call(None)

    def __enter__(self) -> _Call:
        return self.call

    def __exit__(self, *exc: object) -> None:
        return None


_OFF = _Off()


def model_call(model_name: str) -> contextlib.AbstractContextManager[_Call]:
    """A model call's span (``chat <model>``), current while the call runs."""
    return _OFF if tracer is None else _model_span(tracer, model_name)


def tool_call(
    name: str, call_id: str | None, args: Any
) -> contextlib.AbstractContextManager[_Call]:
    """A tool call's span (``execute_tool <name>``), current while the tool runs."""
    return _OFF if tracer is None else _tool_span(tracer, name, call_id, args)


@contextlib.contextmanager
def _model_span(tracer: Tracer, model_name: str) -> Iterator[_Call]:
    from opentelemetry.trace import SpanKind

    provider, _, model = model_name.partition(":")
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": provider,
        "gen_ai.request.model": model,
        "switchboard.model": model_name,
    }
    with tracer.start_as_current_span(
        f"chat {model}", kind=SpanKind.CLIENT, attributes=attributes,
        record_exception=False, set_status_on_exception=False,
    ) as span:  # fmt: skip
        with _error_named(span):
            yield _Call(span)


@contextlib.contextmanager
def _tool_span(tracer: Tracer, name: str, call_id: str | None, args: Any) -> Iterator[_Call]:
    from opentelemetry.trace import SpanKind

    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": name,
    }
    if call_id:
        attributes["gen_ai.tool.call.id"] = call_id
    if content:
        attributes["gen_ai.tool.call.arguments"] = _cut(_text(args))
    with tracer.start_as_current_span(
        f"execute_tool {name}", kind=SpanKind.INTERNAL, attributes=attributes,
        record_exception=False, set_status_on_exception=False,
    ) as span:  # fmt: skip
        with _error_named(span):
            yield _Call(span)


@contextlib.contextmanager
def _error_named(span: Span) -> Iterator[None]:
    """An exception out of the call marks its span failed with the exception's type only
    (its text may hold internals or content); an interrupt (``GraphBubbleUp``) is no failure."""
    from langgraph.errors import GraphBubbleUp
    from opentelemetry.trace import Status, StatusCode

    try:
        yield
    except GraphBubbleUp:
        raise
    except Exception as exc:
        span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        span.set_attribute("error.type", type(exc).__name__)
        raise

"""One OpenTelemetry span per HTTP request (runs, model and tool calls: ``graphs/tracing.py``).

Installed by ``create_app`` only when ``graphs.tracing.configure`` turned tracing on, as the
outermost middleware, so the span covers every answer, the ones other middleware give too (a
413, a refused preflight). A ``traceparent`` header sent with the request (W3C Trace Context)
makes the span its child, so a client's trace goes on into the server.

The span is named ``<METHOD> <route template>`` (``POST /chats/{chat_id}/messages``), or the
method alone when no route matched, per OpenTelemetry's HTTP conventions; the path itself is
never recorded: a shared chat's link carries its token in the path. A streamed answer's span
ends with its last byte.
"""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from graphs import tracing


def install(app: Any) -> None:
    """Add the request spans to ``app`` (a FastAPI app) if tracing is on."""
    if tracing.tracer is not None:
        app.add_middleware(RequestSpans)


class RequestSpans:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        tracer = tracing.tracer
        if scope["type"] != "http" or tracer is None:
            await self.app(scope, receive, send)
            return
        from opentelemetry.propagate import extract
        from opentelemetry.trace import SpanKind, Status, StatusCode

        # Only the propagation headers are handed over: nothing else of the request is read.
        carrier = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope.get("headers", ())
            if name in (b"traceparent", b"tracestate")
        }
        method = scope["method"]
        status: list[int] = []

        async def observed(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        with tracer.start_as_current_span(
            method, context=extract(carrier), kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.scheme": scope.get("scheme", "http")},
            record_exception=False, set_status_on_exception=False,
        ) as span:  # fmt: skip
            try:
                await self.app(scope, receive, observed)
            except Exception as exc:
                span.set_attribute("error.type", type(exc).__name__)
                raise
            finally:
                # Routing wrote the route it matched into the scope on the way in.
                template = getattr(scope.get("route"), "path", None)
                if isinstance(template, str) and template:
                    span.update_name(f"{method} {template}")
                    span.set_attribute("http.route", template)
                if status:
                    span.set_attribute("http.response.status_code", status[0])
                if not status or status[0] >= 500:
                    span.set_status(Status(StatusCode.ERROR))
                    if status:
                        span.set_attribute("error.type", str(status[0]))

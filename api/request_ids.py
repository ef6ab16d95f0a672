"""Every request gets an id: the one it sent in ``X-Request-ID`` when that one is sane, else a
new one. Every response carries it back, and every log line written for the request names it
(graphs/log_context.py)."""

from __future__ import annotations

import re
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from graphs import log_context

HEADER = "X-Request-ID"
_HEADER = HEADER.lower().encode()
# What a client's id may be: short, and nothing that could forge or split a log line (no
# spaces, quotes, control characters or non-ASCII). Anything else is replaced, not cleaned.
_SANE = re.compile(rb"[A-Za-z0-9._:/+=-]{1,128}")


class RequestIds:
    """Pure ASGI (not ``BaseHTTPMiddleware``), so the request's task keeps the context it sets:
    the handlers, the tasks they start (a run) and uvicorn's access line all see the id.

    It wraps the whole app, Starlette's own error middleware included, so a 500 carries the id
    too (api/app.py).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(_HEADER, b"")
        request_id = given.decode() if _SANE.fullmatch(given) else uuid.uuid4().hex
        encoded = request_id.encode()

        async def with_id(message: Message) -> None:
            if message["type"] in ("http.response.start", "websocket.accept"):
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != _HEADER]
                message["headers"] = [*headers, (_HEADER, encoded)]
            await send(message)

        # Reset afterwards: under an in-process transport, requests share one task's context.
        tokens = (
            log_context.request_id.set(request_id),
            log_context.user_id.set(None),
            log_context.run_id.set(None),
        )
        try:
            await self.app(scope, receive, with_id)
        finally:
            log_context.request_id.reset(tokens[0])
            log_context.user_id.reset(tokens[1])
            log_context.run_id.reset(tokens[2])

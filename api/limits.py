"""A limit on the size of every request body, as pure ASGI middleware.

A ``Content-Length`` over the limit is answered 413 before the app sees the request; a body
without one (chunked) is counted as it arrives, and answered 413 as soon as it passes the limit:
nothing reads it further, and nothing of it is buffered here. Either way the answer is our JSON
error, ``{"detail": …, "code": "payload_too_large"}``, and the app's own answer (if it made one
for the body it could not read) is dropped.

A route may have a limit of its own (``POST /chats/import`` takes a whole exported evaluation
set, an upload of a knowledge document a whole file): matched on the request's method and path,
before the app routes it. A path is either exact or a route template whose ``{name}`` segments
each match one whole path segment (not empty, no ``/``), as the router matches them.
"""

from __future__ import annotations

import json
import re

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(HTTPException):
    """What reading past the limit raises inside the app; the middleware answers 413 itself."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"Request body too large: at most {limit} bytes")


def _content_length(scope: Scope) -> tuple[bool, int | None]:
    """Whether the request's ``Content-Length`` headers are usable, and the length they give."""
    values = {
        value.strip() for name, value in scope["headers"] if name.lower() == b"content-length"
    }
    if not values:
        return True, None
    if len(values) > 1:
        return False, None
    value = values.pop()
    # Only ASCII digits: int() would also take "+5", "5_0" or another script's digits.
    if not value or len(value) > 18 or not all(48 <= byte <= 57 for byte in value):
        return False, None
    return True, int(value)


def _chunked(scope: Scope) -> bool:
    return any(
        name.lower() == b"transfer-encoding" and b"chunked" in value.lower()
        for name, value in scope["headers"]
    )


async def _error(send: Send, status: int, detail: str, code: str) -> None:
    body = json.dumps({"detail": detail, "code": code}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        # The rest of the body is not read: the connection cannot carry another request.
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


_PARAMETER = re.compile(r"(\{[^{}/]+\})")


def template_regex(path: str) -> re.Pattern[str]:
    """A route template as a regular expression of the paths it matches: each ``{name}`` one
    path segment, the rest literally."""
    parts = _PARAMETER.split(path)
    pattern = "".join("[^/]+" if _PARAMETER.fullmatch(part) else re.escape(part) for part in parts)
    return re.compile(f"^{pattern}$")


class BodyLimit:
    """Refuse request bodies of more than ``max_bytes`` (413) and bad ``Content-Length`` (400);
    ``routes`` maps a ``(method, path or route template)`` to that route's own limit instead."""

    def __init__(
        self, app: ASGIApp, max_bytes: int, routes: dict[tuple[str, str], int] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        # Exact paths are one dictionary lookup; templates are tried only for their method.
        self.routes: dict[tuple[str, str], int] = {}
        self.templates: dict[str, list[tuple[re.Pattern[str], int]]] = {}
        for (method, path), limit in (routes or {}).items():
            if _PARAMETER.search(path):
                self.templates.setdefault(method, []).append((template_regex(path), limit))
            else:
                self.routes[(method, path)] = limit

    def limit_for(self, method: str, path: str) -> int:
        """The body limit of a request to ``path`` with ``method``."""
        limit = self.routes.get((method, path))
        if limit is not None:
            return limit
        for regex, template_limit in self.templates.get(method, ()):
            if regex.match(path):
                return template_limit
        return self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.limit_for(scope["method"], scope["path"])
        valid, length = _content_length(scope)
        if not valid:
            await _error(send, 400, "Invalid Content-Length header", "bad_request")
            return
        if length is not None and length > max_bytes:
            await _error(send, 413, BodyTooLarge(max_bytes).detail, "payload_too_large")
            return
        if length is not None or not _chunked(scope):
            # The server delivers no more than Content-Length, and a request with neither
            # header has no body: nothing to count, and no wrapper on every send (each token
            # of a stream) for the requests that are nearly all of them.
            await self.app(scope, receive, send)
            return
        too_large = BodyTooLarge(max_bytes)

        received = 0
        exceeded = False
        started = False

        async def counted() -> Message:
            nonlocal received, exceeded
            if exceeded:
                raise too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    exceeded = True
                    raise too_large
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if exceeded:
                return  # The app's answer to the body it could not read; ours goes instead.
            started = True
            await send(message)

        try:
            await self.app(scope, counted, guarded)
        except BodyTooLarge:
            if not exceeded:
                raise
        if exceeded and not started:
            await _error(send, 413, too_large.detail, "payload_too_large")

"""HTTP edges Starlette answers in its own way, made to answer in ours."""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class JsonCORSMiddleware(CORSMiddleware):
    """CORS whose refused preflight is our JSON error (``cors_rejected``), not plain text."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code != 400:
            return response
        # The CORS headers Starlette computed, without its text body's type and length.
        headers = {
            k: v
            for k, v in response.headers.items()
            if k.lower() not in ("content-type", "content-length")
        }
        detail = bytes(response.body).decode()  # "Disallowed CORS origin, method …"
        return JSONResponse({"detail": detail, "code": "cors_rejected"}, 400, headers=headers)


class RelativeRedirects:
    """Redirects (the trailing-slash ones Starlette makes) point at a path, not at the URL
    built from the request's ``Host`` header, which a client controls."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def relative(message: Message) -> None:
            if message["type"] == "http.response.start" and 300 <= message["status"] < 400:
                message["headers"] = [
                    (name, _path_only(value) if name.lower() == b"location" else value)
                    for name, value in message.get("headers", [])
                ]
            await send(message)

        await self.app(scope, receive, relative)


def _path_only(location: bytes) -> bytes:
    parts = urlsplit(location.decode("latin-1"))
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return path.encode("latin-1")

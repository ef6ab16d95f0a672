"""``http_fetch``: the text of a web page, fetched with GET through the SSRF guard.

The model chooses a URL, so the URL is someone else's choice (the model's, or whoever wrote
what it read): every request goes through ``tools/net_guard.py``, which refuses loopback,
private, link-local (cloud metadata), unspecified, multicast and other non-public addresses,
written as IPv4 or IPv6, for **every** address the host resolves to. The request then goes to
the address that was checked (DNS answering differently a moment later cannot redirect it).
Redirects are followed by hand, each hop's URL checked again like the first, up to a few.

GET only: the tool takes a URL and nothing else (no method, headers or body), and the client
only ever builds a GET. Limits: the whole fetch (every hop and the body) has a time limit, and
the body a size limit (a larger ``Content-Length`` is refused before reading; a body that
grows past it is cut off and refused). HTML becomes text (html2text); other text types are
given as they are; anything else (images, PDFs …) is refused. Every failure is a
``ToolInputError`` the model reads, never a failed run.

The policy (allowlisted hosts, limits) comes from the settings (``SWITCHBOARD_HTTP_FETCH_*``)
through ``configured``, which ``tools.plugins.load`` calls at start.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httpx
from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, ConfigDict, Field

from tools import net_guard
from tools.errors import ToolInputError

NAME = "http_fetch"
# What the model gets at most: a page's text past it is cut (and the cut said).
MAX_CHARS = 20_000
REDIRECTS = frozenset({301, 302, 303, 307, 308})
# Text types given to the model as they are; HTML is converted first.
_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/xhtml+xml")
_TEXT_SUFFIXES = ("+json", "+xml")


@dataclass(frozen=True)
class FetchPolicy:
    """Where and how much ``http_fetch`` may fetch.

    Attributes:
        allowed_hosts: Hosts (as written in the URL) let through although they resolve to
            addresses the guard refuses (``SWITCHBOARD_HTTP_FETCH_ALLOWED_HOSTS``).
        max_bytes: The largest body read.
        timeout_seconds: The whole fetch: every hop, the body included.
        max_redirects: Redirects followed (each one checked) before giving up.
        resolve: Name -> addresses (the system's resolver; tests give a stub).
    """

    allowed_hosts: tuple[str, ...] = ()
    max_bytes: int = 1_048_576
    timeout_seconds: float = 10.0
    max_redirects: int = 5
    resolve: net_guard.Resolver = net_guard.system_resolver


@dataclass(frozen=True)
class Page:
    url: str
    status: int
    content_type: str
    text: str


class FetchArgs(BaseModel):
    """Fetch a web page (HTTP GET) and return its text: HTML is converted to plain text.
    Use it to read a page whose URL you know. Only public http(s) URLs can be fetched."""

    # Anything besides the URL (a method, a body, headers) is refused, not ignored.
    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        min_length=1,
        max_length=2048,
        description="The absolute http(s) URL of the page, e.g. 'https://example.com/about'.",
    )


def _is_text(content_type: str) -> bool:
    return content_type.startswith(_TEXT_TYPES) or content_type.endswith(_TEXT_SUFFIXES)


def _html_to_text(html: str, url: str) -> str:
    import html2text

    # Links made absolute (against the page's URL), so the model can fetch one next.
    converter = html2text.HTML2Text(baseurl=url)
    converter.body_width = 0
    converter.ignore_images = True
    return converter.handle(html).strip()


async def _body(response: httpx.Response, max_bytes: int) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise ToolInputError(f"the page is larger than the {max_bytes}-byte limit.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise ToolInputError(f"the page is larger than the {max_bytes}-byte limit.")
        chunks.append(chunk)
    return b"".join(chunks)


def _text(response: httpx.Response, body: bytes, content_type: str, url: str) -> str:
    charset = response.charset_encoding or "utf-8"
    try:
        decoded = body.decode(charset, errors="replace")
    except LookupError:  # a charset Python does not know
        decoded = body.decode("utf-8", errors="replace")
    if content_type in ("text/html", "application/xhtml+xml"):
        return _html_to_text(decoded, url)
    return decoded.strip()


async def fetch(url: str, policy: FetchPolicy) -> Page:
    """GET ``url`` under ``policy``, following checked redirects; ``ToolInputError`` when the
    URL is refused, the answer is not a readable page, or a limit is reached."""
    client = httpx.AsyncClient(
        # Never a proxy from the environment (it would connect to the name, not the checked
        # address), never a redirect httpx follows by itself (a URL nobody checked), never a
        # connection kept for the next hop (opened for one host's name).
        trust_env=False,
        follow_redirects=False,
        timeout=policy.timeout_seconds,
        limits=httpx.Limits(max_keepalive_connections=0),
        headers={
            "User-Agent": "switchboard-http-fetch",
            "Accept": "text/html, text/*;q=0.9",
            # Uncompressed, so the size limit counts what is read (a compressed body is still
            # decoded, and counted once decoded).
            "Accept-Encoding": "identity",
        },
    )
    current = url
    try:
        async with client, asyncio.timeout(policy.timeout_seconds):
            for _ in range(policy.max_redirects + 1):
                answer = await _get(client, current, policy)
                if isinstance(answer, Page):
                    return answer
                current = answer
    except (TimeoutError, httpx.TimeoutException):
        raise ToolInputError(
            f"{current} did not answer within {policy.timeout_seconds:g} seconds."
        ) from None
    except (httpx.TransportError, OSError) as exc:
        # The class only: the text may name internals (addresses, paths).
        raise ToolInputError(f"{current} could not be fetched ({type(exc).__name__}).") from None
    raise ToolInputError(f"more than {policy.max_redirects} redirects; stopped at {current}.")


async def _get(client: httpx.AsyncClient, url: str, policy: FetchPolicy) -> Page | str:
    """One hop: the page, or the URL a redirect points to (not checked yet)."""
    try:
        target = await net_guard.check(
            url, allowed_hosts=policy.allowed_hosts, resolve=policy.resolve
        )
    except net_guard.Refused as refused:
        raise ToolInputError(f"{url} cannot be fetched: {refused.reason}.") from None
    pinned, headers, extensions = target.request()
    request = client.build_request("GET", pinned, headers=headers, extensions=extensions)
    response = await client.send(request, stream=True)
    try:
        location = response.headers.get("location")
        if response.status_code in REDIRECTS and location:
            # Relative to the URL as written, not to the pinned address.
            return str(target.url.join(location))
        if not 200 <= response.status_code < 300:
            raise ToolInputError(
                f"{url} answered HTTP {response.status_code} {response.reason_phrase}."
            )
        content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        content_type = content_type or "text/plain"
        if not _is_text(content_type):
            raise ToolInputError(f"{url} is {content_type}, not a text page; it cannot be read.")
        body = await _body(response, policy.max_bytes)
        text = _text(response, body, content_type, url)
        return Page(url, response.status_code, content_type, text)
    finally:
        await response.aclose()


def render(page: Page) -> str:
    """What the model reads: where the page came from, then its text (cut at MAX_CHARS)."""
    text = page.text or "(the page has no text)"
    if len(text) > MAX_CHARS:
        cut = f"[cut: the page's text is longer than {MAX_CHARS} characters]"
        text = f"{text[:MAX_CHARS]}\n\n{cut}"
    return f"URL: {page.url}\nContent-Type: {page.content_type}\n\n{text}"


def make_http_fetch(policy: FetchPolicy) -> BaseTool:
    """The ``http_fetch`` tool under ``policy``."""

    async def http_fetch(url: str) -> str:
        return render(await fetch(url, policy))

    return StructuredTool.from_function(
        coroutine=http_fetch,
        name=NAME,
        description=FetchArgs.__doc__ or "",
        args_schema=FetchArgs,
    )


def configured(settings: Any) -> BaseTool:
    """``http_fetch`` under the policy of ``settings`` (``SWITCHBOARD_HTTP_FETCH_*``)."""
    default = FetchPolicy()

    def setting(name: str, fallback: Any) -> Any:
        return getattr(settings, f"http_fetch_{name}", fallback)

    return make_http_fetch(
        FetchPolicy(
            allowed_hosts=tuple(setting("allowed_hosts", ())),
            max_bytes=setting("max_bytes", default.max_bytes),
            timeout_seconds=setting("timeout_seconds", default.timeout_seconds),
            max_redirects=setting("max_redirects", default.max_redirects),
        )
    )


# Unconfigured (no allowlist, default limits) until the server configures it at start.
http_fetch = make_http_fetch(FetchPolicy())

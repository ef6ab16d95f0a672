"""The ``http_fetch`` tool: GET only, through the SSRF guard, limited in size and time.

Every request a test lets through goes to a local server on 127.0.0.1 (allowlisted where a
fetch should succeed). Loopback is refused for real: the server records every request, and a
refused fetch leaves it none. The rules for private, link-local and metadata addresses are
proven on the guard's decision for a URL whose host is an address literal, or a name a
resolver stub answers with that address: the refusal comes before any connection, so no test
sends anything outside 127.0.0.0/8.
"""

from __future__ import annotations

import gzip
import ipaddress
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pydantic
import pytest

from api.app import create_app
from api.settings import Settings
from tests.conftest import User, make_settings, running
from tools import net_guard, plugins
from tools.errors import ToolInputError
from tools.http_fetch import MAX_CHARS, FetchPolicy, make_http_fetch

LIMIT = 4096
PAGE = (
    "<html><head><title>Fetch me</title><style>p {color: red}</style></head><body>"
    "<h1>Hello</h1><p>World, <b>bold</b> and <a href='/next'>a link</a>.</p>"
    "<script>var secret = 1;</script><ul><li>one</li><li>two</li></ul></body></html>"
)


@dataclass
class Site:
    """The local server: its base URL and every request it got (method, path, Host)."""

    url: str
    port: int
    requests: list[tuple[str, str, str]] = field(default_factory=list)


class Handler(BaseHTTPRequestHandler):
    site: Site

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, body: bytes, content_type: str, length: bool = True) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _any(self) -> None:
        self.site.requests.append((self.command, self.path, self.headers.get("Host", "")))
        port = self.site.port
        match self.path:
            case "/page":
                self._send(200, PAGE.encode(), "text/html; charset=utf-8")
            case "/latin1":
                self._send(200, "café".encode("latin-1"), "text/plain; charset=iso-8859-1")
            case "/json":
                self._send(200, b'{"ok": true}', "application/json")
            case "/long":
                self._send(200, b"x" * (MAX_CHARS + 10), "text/plain")
            case "/image":
                self._send(200, b"\x89PNG\r\n\x1a\n", "image/png")
            case "/to-page":
                self._redirect("/page")
            case "/to-metadata":
                self._redirect("http://169.254.169.254/latest/meta-data/")
            case "/to-localhost":
                self._redirect(f"http://localhost:{port}/page")
            case "/loop":
                self._redirect("/loop")
            case "/big":
                self._send(200, b"x" * (LIMIT + 1), "text/plain")
            case "/big-unannounced":
                # HTTP/1.0 without Content-Length: the body ends when the connection closes.
                self._send(200, b"x" * (LIMIT * 4), "text/plain", length=False)
            case "/compressed":
                # Small on the wire, 40 times the limit once decoded.
                packed = gzip.compress(b"x" * (LIMIT * 40))
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Encoding", "gzip")
                self.send_header("Content-Length", str(len(packed)))
                self.end_headers()
                self.wfile.write(packed)
            case "/slow":
                time.sleep(3)
                self._send(200, b"late", "text/plain")
            case _:
                self._send(404, b"no such page", "text/plain")

    do_GET = _any
    do_POST = _any
    do_PUT = _any
    do_DELETE = _any


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    port = server.server_address[1]
    Handler.site = Site(f"http://127.0.0.1:{port}", port)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Handler.site
    server.shutdown()
    server.server_close()


@pytest.fixture
def requests(site: Site) -> list[tuple[str, str, str]]:
    """The requests of this test only."""
    site.requests.clear()
    return site.requests


ALLOWED = FetchPolicy(allowed_hosts=("127.0.0.1",), max_bytes=LIMIT, max_redirects=3)


def stub(answers: dict[str, list[str]]) -> net_guard.Resolver:
    """A resolver that knows only ``answers`` (DNS records of names that are not real)."""

    async def resolve(host: str, port: int) -> list[str]:
        if host not in answers:
            raise OSError("unknown name")
        return answers[host]

    return resolve


async def fetch(url: str, policy: FetchPolicy = ALLOWED) -> str:
    return str(await make_http_fetch(policy).ainvoke({"url": url}))


async def refused(url: str, policy: FetchPolicy = ALLOWED) -> str:
    with pytest.raises(ToolInputError) as caught:
        await fetch(url, policy)
    return str(caught.value)


async def test_a_page_is_fetched_with_get_and_its_html_becomes_text(
    site: Site, requests: list
) -> None:
    assert await fetch(f"{site.url}/page") == (
        f"URL: {site.url}/page\nContent-Type: text/html\n\n"
        f"# Hello\n\nWorld, **bold** and [a link]({site.url}/next).\n\n  * one\n  * two"
    )
    assert await fetch(f"{site.url}/latin1") == (
        f"URL: {site.url}/latin1\nContent-Type: text/plain\n\ncafé"
    )
    assert await fetch(f"{site.url}/json") == (
        f'URL: {site.url}/json\nContent-Type: application/json\n\n{{"ok": true}}'
    )
    long = await fetch(f"{site.url}/long", replace(ALLOWED, max_bytes=MAX_CHARS * 2))
    assert long == (
        f"URL: {site.url}/long\nContent-Type: text/plain\n\n{'x' * MAX_CHARS}\n\n"
        f"[cut: the page's text is longer than {MAX_CHARS} characters]"
    )
    assert [method for method, _, _ in requests] == ["GET"] * 4


async def test_the_request_goes_to_the_address_that_was_checked(site: Site, requests: list) -> None:
    """An allowlisted name whose (stub) DNS record says 127.0.0.1: the fetch reaches the local
    server with the name in ``Host``, though the system's resolver knows no such name; so
    nothing resolved the name a second time between the check and the connection."""
    policy = replace(
        ALLOWED, allowed_hosts=("pages.example",), resolve=stub({"pages.example": ["127.0.0.1"]})
    )
    text = await fetch(f"http://pages.example:{site.port}/page", policy)
    assert text.startswith(f"URL: http://pages.example:{site.port}/page\n")
    assert requests == [("GET", "/page", f"pages.example:{site.port}")]


async def test_loopback_is_refused_without_the_allowlist_however_it_is_written(
    site: Site, requests: list
) -> None:
    closed = FetchPolicy(max_bytes=LIMIT)
    port = site.port
    assert await refused(f"{site.url}/page", closed) == (
        f"{site.url}/page cannot be fetched: 127.0.0.1 is not an address requests may go to"
        " (loopback)."
    )
    # The system's resolver: localhost is loopback (127.0.0.1, and ::1 where listed).
    localhost = await refused(f"http://localhost:{port}/page", closed)
    assert localhost.startswith(
        f"http://localhost:{port}/page cannot be fetched: localhost resolves to "
    )
    assert localhost.endswith(", which requests may not go to (loopback).")
    # A name whose DNS record says 127.0.0.1.
    rebound = replace(closed, resolve=stub({"innocent.example": ["127.0.0.1"]}))
    assert await refused(f"http://innocent.example:{port}/page", rebound) == (
        f"http://innocent.example:{port}/page cannot be fetched: innocent.example resolves to"
        " 127.0.0.1, which requests may not go to (loopback)."
    )
    for url, why in [
        (f"http://[::1]:{port}/page", "::1 is not an address requests may go to (loopback)"),
        (f"http://127.1.2.3:{port}/", "127.1.2.3 is not an address requests may go to (loopback)"),
        (f"http://0.0.0.0:{port}/", "0.0.0.0 is not an address requests may go to (unspecified)"),
        (f"http://[::ffff:127.0.0.1]:{port}/", "::ffff:127.0.0.1 resolves to ::ffff:7f00:1,"
         " which requests may not go to (loopback (as IPv6))"),
        # Allowlisting 127.0.0.1 does not let its other spellings through (the resolver
        # reads this one as 127.0.0.1).
        (f"http://2130706433:{port}/", "2130706433 resolves to 127.0.0.1, which requests may"
         " not go to (loopback)"),
    ]:  # fmt: skip
        assert await refused(url, ALLOWED if "2130706433" in url else closed) == (
            f"{url} cannot be fetched: {why}."
        )
    assert requests == []


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("169.254.169.254", "cloud metadata service"),
        ("169.254.170.2", "cloud metadata service"),
        ("fd00:ec2::254", "cloud metadata service"),
        ("100.100.100.200", "cloud metadata service"),
        ("100.64.0.1", "shared address space (CGNAT)"),
        ("::ffff:10.0.0.1", "private (as IPv6)"),
        ("::ffff:169.254.169.254", "cloud metadata service (as IPv6)"),
        ("64:ff9b::a9fe:a9fe", "cloud metadata service (as IPv6)"),
        ("2002:a9fe:a9fe::1", "cloud metadata service (as IPv6)"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
    ],
)
async def test_private_link_local_and_metadata_addresses_are_refused_before_connecting(
    address: str, why: str, requests: list
) -> None:
    """The guard's decision, by a name resolving there and by the address itself; the
    refusal is raised before any connection is opened."""
    resolve = stub({"inside.example": [address]})
    policy = replace(ALLOWED, resolve=resolve)
    assert await refused("http://inside.example/latest/meta-data/", policy) == (
        "http://inside.example/latest/meta-data/ cannot be fetched: inside.example resolves to"
        f" {address}, which requests may not go to ({why})."
    )
    literal = f"[{address}]" if ":" in address else address
    canonical = str(ipaddress.ip_address(address))
    # An address written otherwise than Python writes it is named both ways.
    said = (
        f"{address} is not an address requests may go to"
        if canonical == address
        else f"{address} resolves to {canonical}, which requests may not go to"
    )
    assert await refused(f"http://{literal}/latest/", policy) == (
        f"http://{literal}/latest/ cannot be fetched: {said} ({why})."
    )
    # One bad address among public ones is enough.
    mixed = replace(ALLOWED, resolve=stub({"split.example": ["93.184.215.14", address]}))
    assert await refused("https://split.example/", mixed) == (
        f"https://split.example/ cannot be fetched: split.example resolves to {address}, which"
        f" requests may not go to ({why})."
    )
    assert requests == []


async def test_every_redirect_is_checked_again(site: Site, requests: list) -> None:
    assert (await fetch(f"{site.url}/to-page")).startswith(f"URL: {site.url}/page\n")
    assert requests == [("GET", "/to-page", site.url[7:]), ("GET", "/page", site.url[7:])]
    requests.clear()
    assert await refused(f"{site.url}/to-metadata") == (
        "http://169.254.169.254/latest/meta-data/ cannot be fetched: 169.254.169.254 is not an"
        " address requests may go to (cloud metadata service)."
    )
    # 127.0.0.1 is allowlisted as written; localhost, a name for it, is not.
    to_localhost = await refused(f"{site.url}/to-localhost")
    assert to_localhost.startswith(
        f"http://localhost:{site.port}/page cannot be fetched: localhost resolves to "
    )
    assert to_localhost.endswith("(loopback).")
    assert await refused(f"{site.url}/loop") == (
        f"more than 3 redirects; stopped at {site.url}/loop."
    )
    # The first hop of each, then the loop's four: nothing went to where the redirects pointed.
    assert [path for _, path, _ in requests] == ["/to-metadata", "/to-localhost"] + ["/loop"] * 4


async def test_size_and_time_limits(site: Site, requests: list) -> None:
    assert await refused(f"{site.url}/big") == f"the page is larger than the {LIMIT}-byte limit."
    assert await refused(f"{site.url}/big-unannounced") == (
        f"the page is larger than the {LIMIT}-byte limit."
    )
    # The limit counts the decoded body: a compressed one cannot slip past it.
    assert await refused(f"{site.url}/compressed") == (
        f"the page is larger than the {LIMIT}-byte limit."
    )
    quick = replace(ALLOWED, timeout_seconds=0.3)
    assert await refused(f"{site.url}/slow", quick) == (
        f"{site.url}/slow did not answer within 0.3 seconds."
    )
    assert [path for _, path, _ in requests] == ["/big", "/big-unannounced", "/compressed", "/slow"]


async def test_what_is_not_a_readable_page_is_refused(site: Site) -> None:
    assert await refused(f"{site.url}/image") == (
        f"{site.url}/image is image/png, not a text page; it cannot be read."
    )
    assert await refused(f"{site.url}/nothing-here") == (
        f"{site.url}/nothing-here answered HTTP 404 Not Found."
    )
    for url, why in [
        ("ftp://example.com/file", "only http and https URLs are allowed"),
        ("file:///etc/passwd", "only http and https URLs are allowed"),
        ("http://user:pw@example.com/", "a URL with a user name or password is not allowed"),
        ("not a url", "only http and https URLs are allowed"),
    ]:
        assert await refused(url) == f"{url} cannot be fetched: {why}."


async def test_only_get_can_be_sent(site: Site, requests: list) -> None:
    """The tool takes a URL and nothing else: a method, a body or headers are refused as
    arguments, not ignored, and nothing is sent."""
    tool = make_http_fetch(ALLOWED)
    assert tool.tool_call_schema.model_json_schema()["properties"].keys() == {"url"}
    for extra in ({"method": "POST"}, {"body": "x"}, {"headers": {"X-Method": "DELETE"}}):
        with pytest.raises(pydantic.ValidationError):
            await tool.ainvoke({"url": f"{site.url}/page", **extra})
    assert requests == []
    await tool.ainvoke({"url": f"{site.url}/page"})
    assert [method for method, _, _ in requests] == ["GET"]


@pytest.fixture
async def fetching_app(database_url: str, settings: Settings) -> Any:
    """An app whose settings allowlist 127.0.0.1 for http_fetch; afterwards the registry is
    configured from the session's settings again."""
    app = create_app(make_settings(database_url, http_fetch_allowed_hosts=["127.0.0.1"]))
    try:
        async with running(app) as http:
            yield http
    finally:
        plugins.load(settings)


async def test_in_a_run_a_fetch_and_a_refusal_are_tool_results(
    fetching_app: httpx.AsyncClient, admin: User, user: User, site: Site, requests: list
) -> None:
    http = fetching_app
    body = {"name": "Reader", "model_name": "fake:tools", "tools_enabled": ["http_fetch"]}
    agent = await http.post("/agents/", json=body, headers=admin.headers)
    assert agent.status_code == 201, agent.text
    chat = await http.post("/chats/", json={"agent_id": agent.json()["id"]}, headers=user.headers)
    assert chat.status_code == 201, chat.text

    async def say(url: str) -> dict[str, Any]:
        sent = await http.post(
            f"/chats/{chat.json()['id']}/messages",
            json={"content": json.dumps({"url": url})},
            headers=user.headers,
        )
        assert sent.status_code == 201, sent.text
        answer = sent.json()
        assert answer["status"] == "success", answer
        [result] = [m for m in answer["messages"] if m["sender"] == "tool"]
        assert result["metadata"]["name"] == "http_fetch"
        return dict(result)

    fetched = await say(f"{site.url}/page")
    assert fetched["metadata"]["is_error"] is False
    assert fetched["content"].startswith(f"URL: {site.url}/page\nContent-Type: text/html\n\n#")
    # The model reads the refusal and the run goes on.
    denied = await say("http://169.254.169.254/latest/meta-data/")
    assert denied["metadata"]["is_error"] is True
    assert denied["content"] == (
        "Error: http://169.254.169.254/latest/meta-data/ cannot be fetched: 169.254.169.254 is"
        " not an address requests may go to (cloud metadata service)."
    )
    assert requests == [("GET", "/page", site.url[7:])]

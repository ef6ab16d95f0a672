"""The chat page (``api/web/``) in a real browser: Debian's chromium driven by Playwright
against a started server, as a new user would use it, on a desktop and a phone viewport, with
the mouse and with the keyboard alone, in English and Brazilian Portuguese. Screenshots of
each step are saved under the test's tmp dir."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import (
    Browser,
    Page,
    Request,
    Response,
    Route,
    async_playwright,
    expect,
)

from tests.conftest import JWT_SECRET, PASSWORD
from tests.servers import Server, beside_the_tests
from tests.test_messages import MakeAgent, make_agent

__all__ = ["make_agent"]

CHROMIUM = "/usr/bin/chromium"
JS = Path(__file__).parent / "js"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
STREAM_TOKEN_TTL = 5
# A busy CI machine (2 cores, a whole suite beside) is slow to start a browser and a run.
expect.set_options(timeout=20_000)


@pytest.fixture(scope="module")
def server(database_url: str) -> Iterator[Server]:
    # A stream token short enough that a test sees an EventSource outlive it.
    ttl = str(STREAM_TOKEN_TTL)
    with beside_the_tests(database_url, JWT_SECRET, SWITCHBOARD_STREAM_TOKEN_TTL_SECONDS=ttl) as s:
        yield s


@pytest.fixture(scope="module")
def axe_source() -> str:
    """axe-core from npm (pinned in tests/js), installed there on first use."""
    script = JS / "node_modules" / "axe-core" / "axe.min.js"
    if not script.exists():
        if shutil.which("npm") is None:
            pytest.fail("npm is needed to install axe-core into tests/js (Node 20 or later)")
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--silent"], cwd=JS, check=True
        )
    return script.read_text()


@pytest.fixture(scope="module")
def chromium() -> str:
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed: apt-get install -y chromium")
    return CHROMIUM


@pytest.fixture(scope="module")
async def browser(chromium: str) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium)
        try:
            yield launched
        finally:
            await launched.close()


class Tab:
    """A page of a fresh browser context, with what its scripts said and screenshots."""

    def __init__(self, page: Page, base: str, shots: Path):
        self.page = page
        self.base = base
        self.shots = shots
        self.errors: list[str] = []
        self.requests: list[Request] = []
        self.responses: list[Response] = []
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("response", lambda response: self.responses.append(response))
        page.on("request", lambda request: self.requests.append(request))

    async def shot(self, name: str) -> None:
        await self.page.screenshot(path=self.shots / f"{name}.png", full_page=True)


@pytest.fixture
async def open_tab(browser: Browser, server: Server, tmp_path: Path) -> AsyncIterator[Any]:
    contexts = []

    async def _open(viewport: dict[str, int] = DESKTOP, base: str | None = None) -> Tab:
        context = await browser.new_context(viewport=viewport, locale="en-US")
        contexts.append(context)
        tab = Tab(await context.new_page(), base or server.url, tmp_path)
        return tab

    yield _open
    for context in contexts:
        with contextlib.suppress(Exception):
            await context.close()
    print(f"screenshots: {tmp_path}")


@pytest.fixture
async def http(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        yield client


async def new_user(
    http: httpx.AsyncClient, interests: list[str] | None = None, name: str = "Ana"
) -> dict[str, Any]:
    """A registered user (through the server) who answered the questionnaire."""
    email = f"web-{uuid.uuid4().hex[:10]}@example.org"
    body = {"name": name, "email": email, "password": PASSWORD}
    response = await http.post("/auth/register", json=body)
    assert response.status_code == 201, response.text
    user = response.json()
    headers = {"Authorization": f"Bearer {user['access_token']}"}
    options = (await http.get("/users/me/onboarding-options", headers=headers)).json()
    areas = {a["slug"]: a["id"] for a in options["interest_areas"]}
    answers = {
        "professional_role": "software_engineer",
        "experience_level": "advanced",
        "interest_area_ids": [areas[s] for s in interests or ["writing"]],
        "preferred_interaction_style": "concise",
    }
    done = await http.post("/users/me/onboarding", json=answers, headers=headers)
    assert done.status_code == 200, done.text
    return {**user, "email": email, "headers": headers}


async def sign_in(tab: Tab, user: dict[str, Any], path: str = "#/new") -> None:
    """Open the page signed in as ``user`` (its tokens where the page keeps them)."""
    page = tab.page
    # Any page of the origin will do to reach its storage; then a full load of the chat page.
    await page.goto(f"{tab.base}/web/icon.svg")
    auth = {
        "access_token": user["access_token"],
        "refresh_token": user["refresh_token"],
        "expires_at": int(time.time() * 1000) + user["expires_in"] * 1000,
        "user": user["user"],
    }
    await page.evaluate(
        "auth => localStorage.setItem('switchboard.auth', JSON.stringify(auth))", auth
    )
    await page.goto(f"{tab.base}/{path}")
    await expect(page.locator("#sign-out")).to_be_visible()


async def open_agent(tab: Tab, name: str) -> None:
    page = tab.page
    await page.goto(f"{tab.base}/#/new")
    await page.locator(".agent-card", has=page.get_by_text(name, exact=True)).click()
    await expect(page.locator("#composer-input")).to_be_focused()


async def send(page: Page, text: str) -> None:
    await page.locator("#composer-input").fill(text)
    await page.locator("#composer-input").press("Enter")


def tokens(n: int) -> str:
    return " ".join(f"tok{i}" for i in range(n))


def answer(page: Page) -> Any:
    return page.locator("#chat-log .msg-agent:not(.thinking) .md").last


async def chat_id_of(page: Page) -> str:
    await expect(page).to_have_url(re.compile(r"#/chats/[0-9a-f-]{36}$"))
    return page.url.rsplit("/", 1)[-1]


async def runs_of(http: httpx.AsyncClient, user: dict[str, Any], chat_id: str) -> list[dict]:
    response = await http.get(f"/chats/{chat_id}/runs", headers=user["headers"])
    assert response.status_code == 200, response.text
    return response.json()["items"]


def stream_urls(tab: Tab) -> list[str]:
    return [r.url for r in tab.requests if "/stream?stream_token=" in r.url]


# ============================================================================ the whole way


async def test_sign_up_onboard_pick_an_agent_and_watch_the_answer_stream(
    open_tab: Any, http: httpx.AsyncClient, make_agent: MakeAgent
) -> None:
    mentor = await make_agent(
        "fake:tokens-40@40",
        name="Streaming Mentor",
        description="Streams forty tokens, slowly.",
        avatar_url="https://avatars.test/mentor.png",
    )
    options = (await http.get("/interest-areas")).json()
    law = next(a for a in options if a["slug"] == "law")
    await make_agent("fake:echo", name="Law Echo", interest_area_ids=[law["id"]])
    tab = await open_tab()
    page = tab.page
    picture = (Path(__file__).parent.parent / "api" / "web" / "icon.svg").read_bytes()
    await page.route(
        "https://avatars.test/**",
        lambda route: route.fulfill(status=200, content_type="image/svg+xml", body=picture),
    )

    await page.goto(f"{tab.base}/")
    await expect(page.get_by_role("heading", name="Talk to your agents")).to_be_visible()
    await tab.shot("01-sign-in")
    await page.get_by_role("button", name="Create account").click()
    await page.get_by_label("Name", exact=True).fill("Ana Souza")
    email = f"web-{uuid.uuid4().hex[:10]}@example.org"
    await page.get_by_label("Email", exact=True).fill(email)
    await page.get_by_label("Password", exact=True).fill("short")
    await page.locator("#auth-submit").click()
    await expect(page.locator("#auth-error")).to_have_text("At least 8 characters.")
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.locator("#auth-submit").click()

    # The questionnaire, its choices as the server lists them.
    await expect(page.get_by_role("heading", name="Tell us about you")).to_be_visible()
    headers = {"Authorization": "Bearer " + await page.evaluate(
        "JSON.parse(localStorage.getItem('switchboard.auth')).access_token"
    )}  # fmt: skip
    served = (await http.get("/users/me/onboarding-options", headers=headers)).json()
    await expect(page.locator("#onb-role option")).to_have_count(
        len(served["professional_roles"]) + 1
    )
    await expect(page.locator("#onb-interests input")).to_have_count(len(served["interest_areas"]))
    await expect(page.locator("#onb-levels input")).to_have_count(len(served["experience_levels"]))
    await tab.shot("02-onboarding")
    await page.locator("#onb-submit").click()
    await expect(page.locator("#onb-error")).to_contain_text("Professional role")
    await page.get_by_label("Professional role").select_option("lawyer")
    await page.get_by_label("Organization").fill("ABC Law Firm")
    await page.get_by_role("radio", name="Intermediate").check()
    await page.get_by_role("checkbox", name="Law").check()
    await page.get_by_role("radio", name="Formal").check()
    await page.get_by_label("What would you use agents for?").fill("Contract review\nResearch")
    await page.locator("#onb-submit").click()

    # The picker: the agent matching the interest first and marked so; avatars; fake models.
    await expect(page.get_by_role("heading", name="Choose an agent")).to_be_visible()
    status = (await http.get("/users/me/onboarding-status", headers=headers)).json()
    assert status["onboarding_completed"] is True
    profile = status["professional_profile"]
    assert (profile["professional_role"], profile["organization"]) == ("lawyer", "ABC Law Firm")
    assert profile["use_cases"] == ["Contract review", "Research"]
    law_card = page.locator(".agent-card", has=page.get_by_text("Law Echo", exact=True))
    await expect(law_card.locator(".badge-rec")).to_have_text("Recommended for you")
    marked = await page.locator(".agent-card").evaluate_all(
        "cards => cards.map(card => card.querySelector('.badge-rec') !== null)"
    )
    assert marked[0] and sorted(marked, reverse=True) == marked  # recommended first
    mentor_card = page.locator(f'.agent-card[data-id="{mentor["id"]}"]')
    await expect(mentor_card.locator(".badge-rec")).to_have_count(0)
    await expect(mentor_card.locator(".agent-desc")).to_have_text("Streams forty tokens, slowly.")
    await expect(mentor_card.locator(".badge-fake")).to_have_text("Test model")
    await expect(mentor_card.locator(".avatar")).to_have_class(re.compile("has-image"))
    await expect(mentor_card.locator(".avatar img")).to_have_attribute(
        "src", "https://avatars.test/mentor.png"
    )
    await tab.shot("03-agents")

    await mentor_card.click()
    await expect(page.locator("#fake-notice")).to_have_text(
        "Test model (fake:tokens-40@40): answers are generated by a scripted fake, not by an "
        "AI model."
    )
    await send(page, "Hello there")
    # Tokens show as they arrive: part of the answer, still streaming, Stop offered.
    streaming = page.locator("#chat-log .msg-agent.streaming[aria-busy='true'] .md")
    await expect(streaming).to_contain_text("tok3")
    assert "tok39" not in await streaming.inner_text()
    await expect(page.get_by_role("button", name="Stop")).to_be_visible()
    await tab.shot("04-streaming")
    await expect(answer(page)).to_have_text(tokens(40))
    await expect(page.locator("#chat-log .streaming")).to_have_count(0)
    await expect(page.get_by_role("button", name="Send")).to_be_visible()
    await expect(page.locator("#chat-log .msg-user .bubble")).to_have_text("Hello there")
    await expect(page.locator("#status")).to_have_text("Streaming Mentor answered.")
    # The chat is in the list, titled by its first message.
    chat_id = await chat_id_of(page)
    item = page.locator(f'.chat-item[data-id="{chat_id}"]')
    await expect(item.locator(".chat-link-title")).to_have_text("Hello there")
    await expect(item.locator(".chat-link")).to_have_attribute("aria-current", "page")
    await tab.shot("05-answered")
    assert tab.errors == []


# ============================================================================ tools


async def test_a_tool_call_and_its_result_fold_away(
    open_tab: Any, http: httpx.AsyncClient, make_agent: MakeAgent
) -> None:
    await make_agent("fake:tools", ["calculator"], name="Calculator")
    user = await new_user(http)
    tab = await open_tab()
    page = tab.page
    await sign_in(tab, user)
    await open_agent(tab, "Calculator")
    await send(page, "6*7")

    tool = page.locator("#chat-log details.tool")
    await expect(tool).to_have_count(1)
    await expect(tool.locator("summary")).to_contain_text("Tool call: calculator")
    await expect(tool.locator(".tool-state")).to_have_text("✓")
    await expect(answer(page)).to_have_text("42")
    # Folded until asked for.
    assert await tool.get_attribute("open") is None
    await expect(tool.locator(".tool-result")).not_to_be_visible()
    await tool.locator("summary").click()
    await expect(tool.locator(".tool-args")).to_contain_text('"expression": "6*7"')
    await expect(tool.locator(".tool-result")).to_have_text("42")
    await tab.shot("tool-open")

    # The same from the chat's history after a reload.
    await page.reload()
    tool = page.locator("#chat-log details.tool")
    await expect(tool).to_have_count(1)
    await expect(tool.locator(".tool-result")).to_have_text("42", use_inner_text=False)
    await expect(tool.locator(".tool-args")).to_contain_text("6*7", use_inner_text=False)
    await expect(answer(page)).to_have_text("42")
    assert tab.errors == []


# ============================================================================ stop


async def test_stop_cancels_the_answer(
    open_tab: Any, http: httpx.AsyncClient, make_agent: MakeAgent
) -> None:
    await make_agent("fake:tokens-400@30", name="Chatterbox")
    user = await new_user(http)
    tab = await open_tab()
    page = tab.page
    await sign_in(tab, user)
    await open_agent(tab, "Chatterbox")
    await send(page, "talk")
    await expect(answer(page)).to_contain_text("tok3")

    await page.get_by_role("button", name="Stop").click()
    await expect(page.locator("#chat-log .run-note-stopped")).to_have_text("Stopped.")
    await expect(page.get_by_role("button", name="Send")).to_be_visible()
    await expect(page.get_by_role("button", name="Stop")).to_be_hidden()
    await expect(page.locator("#composer-input")).to_be_enabled()
    assert "tok399" not in await answer(page).inner_text()
    chat_id = await chat_id_of(page)
    assert [run["status"] for run in await runs_of(http, user, chat_id)] == ["cancelled"]
    await tab.shot("stopped")

    # The chat goes on.
    await send(page, "again")
    await expect(answer(page)).to_contain_text("tok2")
    await page.get_by_role("button", name="Stop").click()
    await expect(page.locator("#chat-log .run-note-stopped")).to_have_count(2)


# ============================================================================ resuming


async def test_a_reload_mid_answer_picks_the_stream_up_where_it_was(
    open_tab: Any, http: httpx.AsyncClient, make_agent: MakeAgent
) -> None:
    await make_agent("fake:tokens-80@60", name="Slow")
    user = await new_user(http)
    tab = await open_tab()
    page = tab.page
    await sign_in(tab, user)
    await open_agent(tab, "Slow")
    await send(page, "go")
    await expect(answer(page)).to_contain_text("tok8")
    chat_id = await chat_id_of(page)
    saved = await page.evaluate("JSON.parse(sessionStorage.getItem('switchboard.run'))")
    assert saved["chatId"] == chat_id
    assert saved["lastEventId"] > 0

    await page.reload()
    # The partial answer at once, then the rest of it, each token once.
    await expect(page.locator("#chat-log .msg-agent.streaming")).to_have_count(1)
    await tab.shot("reloaded-mid-answer")
    await expect(answer(page)).to_have_text(tokens(80))
    await expect(page.locator("#chat-log .msg-user")).to_have_count(1)
    await expect(page.locator("#chat-log .msg-agent:not(.thinking)")).to_have_count(1)
    # Through a stream token, after the last event the page had seen, no bearer token.
    urls = stream_urls(tab)
    assert urls, [r.url for r in tab.requests]
    resumed_after = re.search(r"last_event_id=(\d+)", urls[0])
    assert resumed_after, urls
    after = int(resumed_after[1])
    assert after >= saved["lastEventId"] > 2  # run, the user's message, then tokens
    resumed = next(r for r in tab.requests if "/stream?stream_token=" in r.url)
    assert "authorization" not in await resumed.all_headers()
    assert await page.evaluate("sessionStorage.getItem('switchboard.run')") is None
    assert [run["status"] for run in await runs_of(http, user, chat_id)] == ["success"]
    assert tab.errors == []


async def test_another_chat_mid_answer_then_back(
    open_tab: Any, http: httpx.AsyncClient, make_agent: MakeAgent
) -> None:
    slow = await make_agent("fake:tokens-80@50", name="Slow")
    user = await new_user(http)
    other = await http.post(
        "/chats/", json={"agent_id": slow["id"], "title": "Quiet chat"}, headers=user["headers"]
    )
    tab = await open_tab()
    page = tab.page
    await sign_in(tab, user)
    await open_agent(tab, "Slow")
    await send(page, "go")
    await expect(answer(page)).to_contain_text("tok3")
    busy = await chat_id_of(page)

    # The answer goes on elsewhere; nothing of it shows in the other chat.
    await page.locator(f'.chat-item[data-id="{other.json()["id"]}"] .chat-link').click()
    await expect(page.locator("#chat-title")).to_have_text("Quiet chat")
    await expect(page.locator("#chat-empty")).to_be_visible()
    await expect(page.get_by_role("button", name="Send")).to_be_visible()
    assert await page.locator("#chat-log > *").count() == 0
    # Back: the same answer, followed to its end, once.
    await page.locator(f'.chat-item[data-id="{busy}"] .chat-link').click()
    await expect(answer(page)).to_have_text(tokens(80))
    await expect(page.locator("#chat-log .msg-agent:not(.thinking)")).to_have_count(1)
    await expect(page.locator("#chat-log .msg-user")).to_have_count(1)
    # And once more from another tab, which knows nothing of this one's run.
    second = await open_tab()
    await sign_in(second, user)
    await send(page, "again")
    await expect(answer(page)).to_contain_text("tok3")
    await second.page.goto(f"{second.base}/#/chats/{busy}")
    await expect(second.page.locator("#chat-log .msg-agent.streaming")).to_have_count(1)
    await expect(answer(second.page)).to_have_text(tokens(80))
    await expect(second.page.locator("#chat-log .msg-user")).to_have_count(2)
    assert stream_urls(second)  # it followed the run through a stream token


class Relay:
    """A TCP relay in front of the server that can cut every connection and refuse new ones
    for a while: a network drop, as the browser sees one."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.refusing = False
        self.connections: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            writer.transport.abort()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self.connections |= {writer, up_writer}

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self.connections -= {writer, up_writer}

    def drop(self) -> None:
        self.refusing = True
        for writer in list(self.connections):
            writer.transport.abort()

    def restore(self) -> None:
        self.refusing = False

    async def close(self) -> None:
        self.drop()
        self.server.close()
        await self.server.wait_closed()


async def test_a_network_drop_mid_answer_resumes_after_the_last_event(
    open_tab: Any, http: httpx.AsyncClient, make_agent: MakeAgent, server: Server
) -> None:
    await make_agent("fake:tokens-60@60", name="Slow")
    user = await new_user(http)
    relay = Relay(server.port)
    await relay.start()
    try:
        tab = await open_tab(base=relay.url)
        page = tab.page
        await sign_in(tab, user)
        await open_agent(tab, "Slow")
        await send(page, "go")
        await expect(answer(page)).to_contain_text("tok8")

        relay.drop()
        await expect(page.locator("#composer-notice")).to_have_text(
            "Connection lost — reconnecting…"
        )
        await tab.shot("connection-lost")
        assert stream_urls(tab) == []
        relay.restore()
        await expect(page.locator("#composer-notice")).to_have_text(
            "Reconnected; the answer continues."
        )
        await expect(answer(page)).to_have_text(tokens(60))
        await expect(page.locator("#chat-log .msg-agent:not(.thinking)")).to_have_count(1)
        urls = stream_urls(tab)
        assert urls
        resumed_after = re.search(r"last_event_id=(\d+)", urls[0])
        assert resumed_after, urls
        after = int(resumed_after[1])
        assert after > 2
        chat_id = await chat_id_of(page)
        assert [run["status"] for run in await runs_of(http, user, chat_id)] == ["success"]
    finally:
        await relay.close()


async def test_an_expired_stream_token_is_replaced_by_a_new_one(
    open_tab: Any, http: httpx.AsyncClient, make_agent: MakeAgent, server: Server
) -> None:
    await make_agent("fake:tokens-160@50", name="Long")
    user = await new_user(http)
    relay = Relay(server.port)
    await relay.start()
    try:
        tab = await open_tab(base=relay.url)
        page = tab.page
        await sign_in(tab, user)
        await open_agent(tab, "Long")
        await send(page, "go")
        await expect(answer(page)).to_contain_text("tok5")
        relay.drop()  # the answer goes on through an EventSource and a stream token
        relay.restore()
        await expect(page.locator("#composer-notice")).to_have_text(
            "Reconnected; the answer continues."
        )
        first = stream_urls(tab)
        assert len(first) == 1
        # Once that token has expired (50 ms a token), the connection drops again: the
        # browser's own reconnect is refused, and the page asks for a new token.
        await expect(answer(page)).to_contain_text(f"tok{(STREAM_TOKEN_TTL + 1) * 20}")
        relay.drop()
        relay.restore()
        await expect(answer(page)).to_have_text(tokens(160))
        await expect(page.locator("#chat-log .msg-agent:not(.thinking)")).to_have_count(1)
        refused = [r for r in tab.responses if r.url == first[0] and r.status == 401]
        assert refused, [(r.url, r.status) for r in tab.responses if "/stream" in r.url]
        grants = [r for r in tab.requests if r.url.endswith("/stream-token")]
        assert len(grants) == 2
        used = {url.split("stream_token=")[1].split("&")[0] for url in stream_urls(tab)}
        assert len(used) == 2
    finally:
        await relay.close()


# ============================================================================ hostile output

HOSTILE = (
    '<img src=x onerror="window.__pwned=1"> <script>window.__pwned=2</script> '
    "[click](javascript:window.__pwned=3) "
    '<a href="javascript:window.__pwned=4">raw</a> '
    '<iframe srcdoc="<script>parent.__pwned=5</script>"></iframe> '
    '<svg onload="window.__pwned=6"></svg> '
    '<p style="position:fixed;inset:0" onclick="window.__pwned=7">cover</p> '
    '<form action="https://evil.test"><input name=q></form> '
    "**bold** and `code`"
)


async def assert_inert(page: Page) -> None:
    log = page.locator("#chat-log")
    # Markdown is rendered...
    await expect(answer(page).locator("strong")).to_have_text("bold")
    await expect(answer(page).locator("code")).to_have_text("code")
    # ...and nothing it carried can run or reach out.
    for selector in (
        "script", "iframe", "svg:not(.avatar svg)", "form", "input", "[style]",
        "[onerror]", "[onload]", "[onclick]", 'a[href^="javascript"]', "img[src='x']",
    ):  # fmt: skip
        await expect(log.locator(selector)).to_have_count(0)
    # The user's own words are shown as they were typed, as text.
    await expect(log.locator(".msg-user .bubble")).to_have_text(HOSTILE)
    await page.locator("#chat-log .md a", has_text="click").click()
    await page.locator("#chat-log .md a", has_text="raw").click()
    await page.locator("#chat-log .md p", has_text="cover").first.click()
    assert await page.evaluate("window.__pwned") is None


async def test_a_hostile_answer_is_rendered_inert(
    open_tab: Any, http: httpx.AsyncClient, make_agent: MakeAgent
) -> None:
    await make_agent("fake:echo", name="Echo")
    user = await new_user(http)
    tab = await open_tab()
    page = tab.page
    await sign_in(tab, user)
    await open_agent(tab, "Echo")
    await send(page, HOSTILE)
    await expect(page.locator("#chat-log .msg-agent .msg-meta")).to_be_visible()
    await assert_inert(page)
    await tab.shot("hostile-live")
    # From the history too.
    await page.reload()
    await expect(page.locator("#chat-log .msg-agent .msg-meta")).to_be_visible()
    await assert_inert(page)
    assert tab.errors == []


# ============================================================================ the chat list


async def test_chats_are_searched_renamed_archived_and_deleted(
    open_tab: Any, http: httpx.AsyncClient, make_agent: MakeAgent
) -> None:
    agent = await make_agent("fake:echo", name="Echo")
    user = await new_user(http)
    ids = {}
    for title in ("Budget for March", "Orçamento de abril", "Trip to Lisbon"):
        made = await http.post(
            "/chats/", json={"agent_id": agent["id"], "title": title}, headers=user["headers"]
        )
        ids[title] = made.json()["id"]
    tab = await open_tab()
    page = tab.page
    await sign_in(tab, user)
    titles = page.locator("#chat-list .chat-link-title")
    await expect(titles).to_have_count(3)

    await page.get_by_role("searchbox", name="Search chats").fill("ORÇAMENTO")
    await expect(titles).to_have_text(["Orçamento de abril"])
    await page.get_by_role("searchbox", name="Search chats").fill("MARC")
    await expect(titles).to_have_text(["Budget for March"])
    await page.get_by_role("searchbox", name="Search chats").fill("zzz")
    await expect(page.locator("#chat-list-empty")).to_have_text("No chat matches “zzz”.")
    await page.get_by_role("searchbox", name="Search chats").fill("")
    await expect(titles).to_have_count(3)

    # Rename through the item's menu and a dialog.
    trip = page.locator(f'.chat-item[data-id="{ids["Trip to Lisbon"]}"]')
    await trip.get_by_role("button", name="Actions for Trip to Lisbon").click()
    await trip.get_by_role("button", name="Rename").click()
    dialog = page.get_by_role("dialog", name="Rename chat")
    await expect(dialog).to_be_visible()
    await dialog.get_by_label("Title").fill("Lisbon, May")
    await tab.shot("rename")
    await dialog.get_by_role("button", name="Save").click()
    await expect(dialog).to_be_hidden()
    await expect(trip.locator(".chat-link-title")).to_have_text("Lisbon, May")
    chat = await http.get(f"/chats/{ids['Trip to Lisbon']}", headers=user["headers"])
    assert chat.json()["title"] == "Lisbon, May"

    # Archive: off the active list, onto the archived one, and back.
    budget = page.locator(f'.chat-item[data-id="{ids["Budget for March"]}"]')
    await budget.get_by_role("button", name="Actions for Budget for March").click()
    await budget.get_by_role("button", name="Archive").click()
    await expect(budget).to_have_count(0)
    await expect(page.locator("#status")).to_have_text("Chat archived.")
    chat = await http.get(f"/chats/{ids['Budget for March']}", headers=user["headers"])
    assert chat.json()["status"] == "archived"
    await page.get_by_role("button", name="Archived").click()
    await expect(titles).to_have_text(["Budget for March"])
    await budget.get_by_role("button", name="Actions for Budget for March").click()
    await budget.get_by_role("button", name="Unarchive").click()
    await expect(page.locator("#chat-list-empty")).to_have_text("No archived chats.")
    await page.get_by_role("button", name="Active").click()
    await expect(titles).to_have_count(3)

    # Delete, after saying yes; cancelling deletes nothing.
    await budget.get_by_role("button", name="Actions for Budget for March").click()
    await budget.get_by_role("button", name="Delete").click()
    confirm = page.get_by_role("dialog", name="Delete this chat?")
    await expect(confirm).to_contain_text("“Budget for March” and its whole history")
    await confirm.get_by_role("button", name="Cancel").click()
    await expect(confirm).to_be_hidden()
    await expect(titles).to_have_count(3)
    await budget.get_by_role("button", name="Actions for Budget for March").click()
    await budget.get_by_role("button", name="Delete").click()
    await confirm.get_by_role("button", name="Delete").click()
    await expect(budget).to_have_count(0)
    await expect(titles).to_have_count(2)
    gone = await http.get(f"/chats/{ids['Budget for March']}", headers=user["headers"])
    assert gone.status_code == 404


async def test_an_archived_chat_cannot_be_sent_to(
    open_tab: Any, http: httpx.AsyncClient, make_agent: MakeAgent
) -> None:
    agent = await make_agent("fake:echo", name="Echo")
    user = await new_user(http)
    made = await http.post(
        "/chats/", json={"agent_id": agent["id"], "title": "Old"}, headers=user["headers"]
    )
    chat_id = made.json()["id"]
    await http.put(f"/chats/{chat_id}", json={"status": "archived"}, headers=user["headers"])
    tab = await open_tab()
    await sign_in(tab, user, f"#/chats/{chat_id}")
    page = tab.page
    await expect(page.locator("#composer-notice")).to_have_text(
        "This chat is archived. Unarchive it to send messages."
    )
    await expect(page.locator("#composer-input")).to_be_disabled()


# ============================================================================ errors


async def test_an_expired_access_token_is_refreshed_and_the_request_retried(
    open_tab: Any, http: httpx.AsyncClient, make_agent: MakeAgent
) -> None:
    await make_agent("fake:echo", name="Echo")
    user = await new_user(http)
    tab = await open_tab()
    page = tab.page
    await sign_in(tab, user)
    # The server no longer takes the access token the page has (as once it expired).
    await page.evaluate(
        """() => {
          const auth = JSON.parse(localStorage.getItem('switchboard.auth'));
          auth.access_token = 'not-a-valid-token';
          localStorage.setItem('switchboard.auth', JSON.stringify(auth));
        }"""
    )
    await page.reload()
    await expect(page.get_by_role("heading", name="Choose an agent")).to_be_visible()
    await expect(page.locator("#who")).to_have_text("Signed in as Ana")
    refreshes = [r for r in tab.requests if r.url.endswith("/auth/refresh")]
    assert len(refreshes) == 1
    auth = await page.evaluate("JSON.parse(localStorage.getItem('switchboard.auth'))")
    assert auth["access_token"] != "not-a-valid-token"
    assert auth["refresh_token"] != user["refresh_token"]  # rotated
    # The refresh token the page started with is spent.
    spent = await http.post("/auth/refresh", json={"refresh_token": user["refresh_token"]})
    assert spent.status_code == 401
    # Signing out revokes the family: the page is back at the sign-in form.
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_role("heading", name="Talk to your agents")).to_be_visible()
    assert await page.evaluate("localStorage.getItem('switchboard.auth')") is None
    revoked = await http.post("/auth/refresh", json={"refresh_token": auth["refresh_token"]})
    assert revoked.status_code == 401


async def test_tokens_are_refreshed_before_they_expire(
    open_tab: Any, http: httpx.AsyncClient
) -> None:
    user = await new_user(http)
    tab = await open_tab()
    page = tab.page
    await page.clock.install()
    await sign_in(tab, user)
    await expect(page.get_by_role("heading", name="Choose an agent")).to_be_visible()
    assert [r for r in tab.requests if r.url.endswith("/auth/refresh")] == []
    # A minute before the access token (15 minutes) expires, the page gets a new pair.
    async with page.expect_request(lambda r: r.url.endswith("/auth/refresh")) as refreshed:
        await page.clock.fast_forward((user["expires_in"] - 50) * 1000)
    response = await (await refreshed.value).response()
    assert response is not None and response.status == 200
    fresh = (await response.json())["access_token"]
    await page.wait_for_function(
        "token => JSON.parse(localStorage.getItem('switchboard.auth')).access_token === token",
        arg=fresh,
    )


async def test_a_run_already_active_is_said_and_followed(
    open_tab: Any, http: httpx.AsyncClient, make_agent: MakeAgent, server: Server
) -> None:
    agent = await make_agent("fake:tokens-30@50", name="Busy")
    user = await new_user(http)
    made = await http.post("/chats/", json={"agent_id": agent["id"]}, headers=user["headers"])
    chat_id = made.json()["id"]
    tab = await open_tab()
    page = tab.page
    await sign_in(tab, user, f"#/chats/{chat_id}")
    await expect(page.locator("#chat-empty")).to_be_visible()
    # Another client starts an answer in this chat; the page does not know yet.
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as other:
        async with other.stream(
            "POST", f"/chats/{chat_id}/messages", json={"content": "from elsewhere"},
            headers={**user["headers"], "Accept": "text/event-stream"},
        ) as started:  # fmt: skip
            assert started.status_code == 200
            await send(page, "mine")
            await expect(page.locator("#composer-notice")).to_have_text(
                "A run is already active in this chat; showing it. Send again when it ends."
            )
            # The message is kept for later, the other answer shown as it streams.
            await expect(page.locator("#composer-input")).to_have_value("mine")
            await expect(answer(page)).to_have_text(tokens(30))
    await expect(page.get_by_role("button", name="Send")).to_be_visible()
    await page.locator("#composer-input").press("Enter")
    await expect(page.locator("#chat-log .msg-user .bubble").last).to_have_text("mine")
    await expect(page.locator("#chat-log .msg-agent .msg-meta")).to_have_count(2)


async def test_too_many_requests_waits_as_told_then_sends(
    open_tab: Any, http: httpx.AsyncClient, make_agent: MakeAgent
) -> None:
    await make_agent("fake:echo", name="Echo")
    user = await new_user(http)
    tab = await open_tab()
    page = tab.page
    await sign_in(tab, user)
    await open_agent(tab, "Echo")
    sent: list[float] = []

    async def limited(route: Route) -> None:
        sent.append(time.monotonic())
        if len(sent) == 1:
            await route.fulfill(
                status=429,
                headers={"Retry-After": "2", "Content-Type": "application/json"},
                body=json.dumps({"detail": "Too many requests", "code": "rate_limited"}),
            )
        else:
            await route.fallback()

    await page.route(re.compile(r"/chats/[0-9a-f-]+/messages$"), limited)
    await send(page, "patience")
    await expect(page.locator("#composer-notice")).to_contain_text("Too many requests. Retrying in")
    await expect(answer(page)).to_have_text("You said: patience")
    assert len(sent) == 2
    assert sent[1] - sent[0] >= 1.9


async def test_a_locked_out_sign_in_says_how_long_to_wait(open_tab: Any) -> None:
    tab = await open_tab()
    page = tab.page
    await page.goto(f"{tab.base}/")
    email = f"nobody-{uuid.uuid4().hex[:8]}@example.org"
    await page.get_by_label("Email", exact=True).fill(email)
    await page.get_by_label("Password", exact=True).fill("wrong-password")
    for _ in range(5):
        await page.locator("#auth-submit").click()
        await expect(page.locator("#auth-error")).to_have_text(
            "That email and password do not match an account."
        )
        await page.evaluate("document.getElementById('auth-error').textContent = ''")
    await page.locator("#auth-submit").click()
    await expect(page.locator("#auth-error")).to_have_text(
        re.compile(r"^Too many attempts\. Try again in \d+ min\.$")
    )
    await expect(page.locator("#auth-submit")).to_be_disabled()


# ============================================================================ language


async def test_the_language_switch_is_remembered(
    open_tab: Any, http: httpx.AsyncClient, make_agent: MakeAgent
) -> None:
    await make_agent("fake:tools", ["calculator"], name="Calculator")
    tab = await open_tab()
    page = tab.page
    await page.goto(f"{tab.base}/")
    await expect(page.locator("html")).to_have_attribute("lang", "en")
    await page.get_by_label("Language").select_option("pt-BR")
    await expect(page.get_by_role("heading", name="Converse com seus agentes")).to_be_visible()
    await expect(page.locator("html")).to_have_attribute("lang", "pt-BR")
    await expect(page.locator("#auth-submit")).to_have_text("Entrar")
    await tab.shot("pt-sign-in")
    await page.reload()
    await expect(page.get_by_role("heading", name="Converse com seus agentes")).to_be_visible()
    await expect(page.get_by_label("Idioma")).to_have_value("pt-BR")

    user = await new_user(http)
    await sign_in(tab, user)
    await expect(page.get_by_role("heading", name="Escolha um agente")).to_be_visible()
    await expect(page.get_by_role("link", name="Nova conversa")).to_be_visible()
    await open_agent(tab, "Calculator")
    await expect(page.locator("#fake-notice")).to_contain_text("Modelo de teste (fake:tools)")
    await send(page, "2+2")
    await expect(page.locator("#chat-log .tool summary")).to_contain_text(
        "Chamada de ferramenta: calculator"
    )
    await expect(answer(page)).to_have_text("4")
    await expect(page.get_by_role("button", name="Enviar")).to_be_visible()
    await tab.shot("pt-chat")
    # Back to English without a reload: what was drawn changes too.
    await page.get_by_label("Idioma").select_option("en")
    await expect(page.locator("#chat-log .tool summary")).to_contain_text("Tool call: calculator")
    await expect(page.get_by_role("button", name="Send")).to_be_visible()
    assert await page.evaluate("localStorage.getItem('switchboard.lang')") == "en"


# ============================================================================ phone, keyboard


async def no_sideways_scroll(page: Page) -> None:
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], width


async def test_on_a_phone(open_tab: Any, http: httpx.AsyncClient, make_agent: MakeAgent) -> None:
    agent = await make_agent("fake:tools", ["calculator"], name="Calculator")
    user = await new_user(http)
    await http.post(
        "/chats/", json={"agent_id": agent["id"], "title": "Earlier sums"},
        headers=user["headers"],
    )  # fmt: skip
    tab = await open_tab(PHONE)
    page = tab.page
    await sign_in(tab, user, "#/chats")
    # The list is a page of its own.
    await expect(page.locator("#chat-list .chat-link-title")).to_have_text(["Earlier sums"])
    await expect(page.locator("#sidebar")).to_be_in_viewport()
    await no_sideways_scroll(page)
    await tab.shot("phone-list")
    await page.get_by_role("link", name="New chat").click()
    await expect(page.get_by_role("heading", name="Choose an agent")).to_be_visible()
    await expect(page.locator("#sidebar")).to_be_hidden()
    await no_sideways_scroll(page)
    await tab.shot("phone-agents")
    await page.locator(".agent-card", has=page.get_by_text("Calculator", exact=True)).click()
    await send(page, "12/4")
    await expect(answer(page)).to_have_text("3")
    await expect(page.locator("#chat-log .tool")).to_be_visible()
    await no_sideways_scroll(page)
    box = await page.locator("#composer-input").bounding_box()
    assert box is not None and box["y"] + box["height"] <= PHONE["height"]
    await tab.shot("phone-chat")
    await page.locator("#view-chat").get_by_role("link", name="Chats").click()
    await expect(page.locator("#chat-list .chat-link-title")).to_have_count(2)
    assert tab.errors == []


async def press_tab_until(page: Page, script: str, limit: int = 60) -> None:
    """Tab through the page until ``script`` (about document.activeElement) is true."""
    for _ in range(limit):
        await page.keyboard.press("Tab")
        if await page.evaluate(f"(el => {script})(document.activeElement)"):
            return
    raise AssertionError(f"never focused: {script}")


async def focus_ring(page: Page) -> str:
    return await page.evaluate(
        "(() => { const s = getComputedStyle(document.activeElement);"
        " return s.outlineStyle === 'none' ? '' : s.outlineStyle + ' ' + s.outlineWidth; })()"
    )


async def test_with_the_keyboard_alone(open_tab: Any, make_agent: MakeAgent) -> None:
    await make_agent("fake:echo", name="Echo")
    tab = await open_tab()
    page = tab.page
    await page.goto(f"{tab.base}/")
    await expect(page.get_by_role("heading", name="Talk to your agents")).to_be_visible()
    # The first stop is the skip link, which moves focus to the content (and is no route).
    await page.keyboard.press("Tab")
    await expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    assert await focus_ring(page)
    await page.keyboard.press("Enter")
    await expect(page.locator("main")).to_be_focused()
    await expect(page.get_by_role("heading", name="Talk to your agents")).to_be_visible()
    await press_tab_until(page, "el.id === 'tab-signup'")
    assert await focus_ring(page)
    await page.keyboard.press("Enter")
    await expect(page.get_by_label("Name", exact=True)).to_be_visible()
    await page.keyboard.press("Tab")
    await page.keyboard.type("Kim")
    await page.keyboard.press("Tab")
    await page.keyboard.type(f"kbd-{uuid.uuid4().hex[:8]}@example.org")
    await page.keyboard.press("Tab")
    await page.keyboard.type(PASSWORD)
    await page.keyboard.press("Enter")

    await expect(page.get_by_role("heading", name="Tell us about you")).to_be_focused()
    await press_tab_until(page, "el.id === 'onb-skip'")
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="Choose an agent")).to_be_focused()
    await press_tab_until(page, "el.closest('.agent-card')?.textContent.includes('Echo')")
    assert await focus_ring(page)
    await page.keyboard.press("Enter")
    await expect(page.locator("#composer-input")).to_be_focused()
    await page.keyboard.type("typed, not clicked")
    await page.keyboard.press("Enter")
    await expect(answer(page)).to_have_text("You said: typed, not clicked")
    await tab.shot("keyboard-answer")
    # Shift+Enter is a new line, not a send.
    await page.keyboard.type("one")
    await page.keyboard.press("Shift+Enter")
    await page.keyboard.type("two")
    await expect(page.locator("#composer-input")).to_have_value("one\ntwo")
    await expect(page.locator("#chat-log .msg-user")).to_have_count(1)
    # The chat's menu opens, moves focus into itself, and Escape brings it back.
    await press_tab_until(page, "el.classList.contains('menu-toggle')")
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("button", name="Rename")).to_be_focused()
    await page.keyboard.press("Escape")
    await expect(page.locator(".menu-toggle")).to_be_focused()
    await expect(page.locator(".menu-toggle")).to_have_attribute("aria-expanded", "false")


# ============================================================================ axe-core


async def axe_violations(page: Page, source: str) -> list[dict]:
    await page.evaluate(source)
    result = await page.evaluate("axe.run(document, { resultTypes: ['violations'] })")
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]]}
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


async def test_axe_finds_no_serious_violation(
    open_tab: Any, http: httpx.AsyncClient, make_agent: MakeAgent, axe_source: str
) -> None:
    await make_agent("fake:tools", ["calculator"], name="Calculator")
    found: dict[str, list[dict]] = {}
    for viewport, lang in ((DESKTOP, "en"), (PHONE, "pt-BR")):
        tab = await open_tab(viewport)
        page = tab.page
        await page.goto(f"{tab.base}/")
        await page.evaluate(f"localStorage.setItem('switchboard.lang', '{lang}')")
        await page.reload()
        await expect(page.locator("#auth-form")).to_be_visible()
        found[f"{lang} sign-in"] = await axe_violations(page, axe_source)
        await page.locator("#tab-signup").click()
        found[f"{lang} sign-up"] = await axe_violations(page, axe_source)

        user = await new_user(http)
        await sign_in(tab, user, "#/onboarding")
        await expect(page.locator("#onb-interests input").first).to_be_attached()
        found[f"{lang} onboarding"] = await axe_violations(page, axe_source)
        await page.goto(f"{tab.base}/#/new")
        await expect(page.locator(".agent-card").first).to_be_visible()
        found[f"{lang} agents"] = await axe_violations(page, axe_source)
        await open_agent(tab, "Calculator")
        await send(page, "6*7")
        await expect(answer(page)).to_have_text("42")
        await page.locator("#chat-log .tool summary").click()
        found[f"{lang} chat"] = await axe_violations(page, axe_source)
        await tab.shot(f"axe-{lang}-chat")
        if viewport is PHONE:
            await page.locator("#view-chat .btn-back").click()
            await expect(page.locator("#chat-list .chat-item")).to_have_count(1)
            found[f"{lang} chat list"] = await axe_violations(page, axe_source)
        await page.locator("#chat-list .menu-toggle").click()
        await expect(page.locator("#chat-list .menu")).to_be_visible()
        found[f"{lang} chat menu"] = await axe_violations(page, axe_source)
        await page.locator("#chat-list .menu-rename").click()
        await expect(page.locator("#dlg-rename")).to_be_visible()
        found[f"{lang} rename dialog"] = await axe_violations(page, axe_source)
        await tab.shot(f"axe-{lang}-dialog")
    assert {name: v for name, v in found.items() if v} == {}

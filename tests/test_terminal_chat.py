"""``switchboard chat`` as a person uses it: the real console script in a pseudo-terminal
(pexpect) against a started server on the test database, sometimes through a TCP proxy that
misbehaves on purpose."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import re
import socket
import stat
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pexpect
import pytest
from rich.console import Console

from api.chat_client import AnswerView
from api.security import TokenCodec
from tests.conftest import JWT_SECRET, User
from tests.servers import SWITCHBOARD, Server, beside_the_tests, clean_env
from tests.test_messages import MakeAgent, make_agent, open_chat

__all__ = ["make_agent"]

# Each step of a dialog may take this long on a slow machine.
TIMEOUT = 90
PROMPT = "you> "
ROWS, COLUMNS = 50, 250
# Terminal escape sequences (colours, cursor moves, line erasing, modes).
ESCAPES = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>]|\r")
CHAT_ID = re.compile(r"chat ([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")


@pytest.fixture(scope="module")
def server(database_url: str) -> Iterator[Server]:
    with beside_the_tests(database_url, JWT_SECRET) as started:
        yield started


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """The user's home and config dir of the client (its token cache goes there)."""
    return tmp_path


def plain(text: str) -> str:
    return ESCAPES.sub("", text)


class Chat:
    """``switchboard chat`` in a pseudo-terminal, and everything it printed."""

    def __init__(self, url: str, home: Path, *args: str, **env: str) -> None:
        environment = clean_env(
            HOME=str(home), XDG_CONFIG_HOME=str(home / "config"), TERM="xterm-256color", **env
        )
        for sized in ("COLUMNS", "LINES"):
            environment.pop(sized, None)
        self.output = io.StringIO()
        self.child = pexpect.spawn(
            SWITCHBOARD, ["chat", "--url", url, *args], env=environment, encoding="utf-8",
            codec_errors="replace", timeout=TIMEOUT, dimensions=(ROWS, COLUMNS),
        )  # fmt: skip
        self.child.logfile_read = self.output

    def expect(self, pattern: str | list[Any]) -> int:
        return int(self.child.expect(pattern))

    @property
    def before(self) -> str:
        """What was printed before the last match, as text."""
        return plain(str(self.child.before))

    def prompt(self) -> str:
        """Wait for the prompt; what was printed since the last match."""
        self.expect(PROMPT)
        return self.before

    def say(self, line: str) -> str:
        """Type a line and wait for the prompt to come back; what was printed meanwhile."""
        self.child.sendline(line)
        return self.prompt()

    def quit(self) -> int:
        self.child.sendline("/quit")
        return self.ended()

    def ended(self) -> int:
        self.expect(pexpect.EOF)
        self.child.close()
        return int(self.child.exitstatus)

    @property
    def transcript(self) -> str:
        return plain(self.output.getvalue())

    def close(self) -> None:
        self.child.close(force=True)


@contextlib.contextmanager
def chat(url: str, home: Path, *args: str, **env: str) -> Iterator[Chat]:
    session = Chat(url, home, *args, **env)
    try:
        yield session
    except BaseException:
        print(session.transcript)  # shown with the failure
        raise
    finally:
        session.close()


def signed_in(user: User) -> tuple[str, ...]:
    return ("--email", user.email)


def cached(home: Path) -> dict[str, Any]:
    return json.loads((home / "config" / "switchboard" / "tokens.json").read_text())["servers"]


def write_cache(home: Path, url: str, entry: dict[str, Any]) -> None:
    directory = home / "config" / "switchboard"
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    (directory / "tokens.json").write_text(json.dumps({"servers": {url: entry}}))


async def messages(client: httpx.AsyncClient, user: User, chat_id: str) -> list[tuple[str, str]]:
    response = await client.get(f"/chats/{chat_id}/messages", headers=user.headers)
    assert response.status_code == 200, response.text
    return [(m["sender"], m["content"]) for m in response.json()["items"]]


async def test_a_full_exchange(
    server: Server, client: httpx.AsyncClient, user: User, make_agent: MakeAgent, home: Path
) -> None:
    await make_agent("fake:echo", name="Parrot")
    counter = await make_agent("fake:tokens-3", name="Counter")

    def dialog() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        with chat(server.url, home, *signed_in(user)) as session:
            session.expect(f"Password for {user.email}: ")
            session.child.sendline(user.password)
            session.expect(r"Pick an agent \[1-\d+\]: ")
            listing = session.before
            number = re.search(r"(\d+)\s+Parrot\s+fake:echo", listing)
            assert number is not None, listing
            seen["opened"] = session.say(number[1])
            seen["answer"] = session.say("hello **there**")
            seen["history"] = session.say("/history")
            seen["new"] = session.say("/new")
            session.child.sendline("/agents")
            session.expect(r"Pick an agent \[1-\d+\]: ")
            seen["other"] = session.say("counter")
            seen["counted"] = session.say("count")
            seen["help"] = session.say("/help")
            seen["exit"] = session.quit()
        return seen

    seen = await asyncio.to_thread(dialog)

    assert "Parrot (fake:echo)" in seen["opened"]
    assert "Note: Parrot runs on fake:echo, a fake model" in seen["opened"]
    first = CHAT_ID.search(seen["opened"])
    assert first is not None
    # The answer as Markdown once complete: bold, without its asterisks.
    assert "You said: hello there" in seen["answer"]
    history = [line.rstrip() for line in seen["history"].splitlines()]
    assert "chat " + first[1] + ": 2 message(s)" in seen["history"]
    assert history.index("hello **there**") < history.index("You said: hello there")
    second = CHAT_ID.search(seen["new"])
    assert second is not None and second[1] != first[1]
    assert "Parrot (fake:echo)" in seen["new"]
    third = CHAT_ID.search(seen["other"])
    assert third is not None and third[1] not in (first[1], second[1])
    assert "Counter (fake:tokens-3)" in seen["other"]
    assert "tok0 tok1 tok2" in seen["counted"]
    assert "/history   this chat's messages" in seen["help"]
    assert seen["exit"] == 0

    chats = await client.get("/chats/", headers=user.headers)
    assert {c["id"] for c in chats.json()["items"]} == {first[1], second[1], third[1]}
    assert await messages(client, user, first[1]) == [
        ("user", "hello **there**"),
        ("agent", "You said: hello **there**"),
    ]
    assert await messages(client, user, second[1]) == []
    counter_chat = await client.get(f"/chats/{third[1]}", headers=user.headers)
    assert counter_chat.json()["agent_id"] == counter["id"]
    assert await messages(client, user, third[1]) == [
        ("user", "count"),
        ("agent", "tok0 tok1 tok2"),
    ]


async def test_continuing_a_chat_shows_its_last_messages(
    server: Server, client: httpx.AsyncClient, user: User, make_agent: MakeAgent, home: Path
) -> None:
    agent = await make_agent("fake:echo", name="Parrot")
    chat_id = await open_chat(client, user, agent["id"])
    for turn in ("first turn", "second turn"):
        sent = await client.post(
            f"/chats/{chat_id}/messages", json={"content": turn}, headers=user.headers
        )
        assert sent.status_code == 201, sent.text

    def dialog() -> tuple[str, str, int]:
        with chat(server.url, home, "--chat", chat_id, "--token", user.access_token) as session:
            opened = session.prompt()
            answer = session.say("third turn")
            return opened, answer, session.quit()

    opened, answer, status = await asyncio.to_thread(dialog)

    assert f"chat {chat_id}" in opened
    shown = [line.strip() for line in opened.splitlines()]
    assert shown.index("first turn") < shown.index("You said: first turn")
    assert shown.index("You said: first turn") < shown.index("second turn")
    assert shown.index("second turn") < shown.index("You said: second turn")
    assert "You said: third turn" in answer
    assert status == 0
    assert (await messages(client, user, chat_id))[-2:] == [
        ("user", "third turn"),
        ("agent", "You said: third turn"),
    ]


HOSTILE = "evil \x1b]0;pwned\x07 \x1b[2J\x9b31m end"


async def test_text_from_the_server_cannot_drive_the_terminal(
    server: Server, client: httpx.AsyncClient, user: User, make_agent: MakeAgent, home: Path
) -> None:
    agent = await make_agent("fake:echo", name="Parrot")
    chat_id = await open_chat(client, user, agent["id"])
    sent = await client.post(
        f"/chats/{chat_id}/messages", json={"content": HOSTILE}, headers=user.headers
    )
    assert sent.json()["messages"][1]["content"] == f"You said: {HOSTILE}"

    def dialog() -> tuple[str, int]:
        with chat(server.url, home, "--chat", chat_id, "--token", user.access_token) as s:
            s.prompt()
            s.say("/history")
            return s.output.getvalue(), s.quit()

    output, status = await asyncio.to_thread(dialog)

    assert status == 0
    # Shown (twice: on opening, and by /history), every control character made visible.
    assert output.count("You said: evil \ufffd]0;pwned\ufffd \ufffd[2J\ufffd31m end") == 2
    for sequence in ("\x1b]0;", "\x07", "\x1b[2J", "\x9b"):
        assert sequence not in output

    # And as an answer streams in, token by token, with its tool calls.
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=100, height=40)
    view = AnswerView(console, "Parrot")
    view.tool_call({"name": "lookup\x1b[2J", "args": {"q": "\x1b]0;x\x07"}})
    view.tool_result({"name": "lookup", "content": HOSTILE, "is_error": False})
    for token in HOSTILE.split(" "):
        view.token("m1", token + " ")
    view.message({"id": "m1", "sender": "agent", "content": HOSTILE})
    view.end("success")
    shown = screen.getvalue()
    assert "pwned" in shown and "lookup" in shown
    for sequence in ("\x1b]0;", "\x07", "\x1b[2J", "\x9b"):
        assert sequence not in shown


async def test_the_sign_in_is_cached_for_the_owner_only(
    server: Server, client: httpx.AsyncClient, user: User, make_agent: MakeAgent, home: Path
) -> None:
    await make_agent("fake:echo", name="Parrot")

    def first() -> int:
        with chat(server.url, home, *signed_in(user), "--agent", "parrot") as session:
            session.expect(f"Password for {user.email}: ")
            session.child.sendline(user.password)
            session.prompt()
            return session.quit()

    assert await asyncio.to_thread(first) == 0
    directory = home / "config" / "switchboard"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE((directory / "tokens.json").stat().st_mode) == 0o600
    entry = cached(home)[server.url]
    assert entry["email"] == user.email
    me = await client.get("/users/me", headers={"Authorization": f"Bearer {entry['access_token']}"})
    assert me.status_code == 200 and me.json()["id"] == user.id

    def second() -> tuple[int, int]:
        # Neither an email nor a password: the cached session of that server.
        with chat(server.url, home, "--agent", "parrot") as session:
            found = session.expect(["Password for", "Email: ", PROMPT])
            session.child.sendeof()  # Ctrl+D at the prompt: leave
            return found, session.ended()

    assert await asyncio.to_thread(second) == (2, 0)


@pytest.mark.parametrize("access_token", ["expired", "rejected"])
async def test_an_expired_or_rejected_access_token_is_refreshed(
    server: Server, client: httpx.AsyncClient, user: User, make_agent: MakeAgent, home: Path,
    access_token: str,
) -> None:  # fmt: skip
    await make_agent("fake:echo", name="Parrot")
    if access_token == "expired":
        token = TokenCodec(JWT_SECRET, "HS256", -60).issue(uuid.UUID(user.id))
        refused = await client.get("/users/me", headers={"Authorization": f"Bearer {token}"})
        assert refused.status_code == 401
    else:
        token = "not-a-token"  # nothing tells the client when it expires: the 401 does
    write_cache(
        home,
        server.url,
        {"email": user.email, "access_token": token, "refresh_token": user.refresh_token},
    )

    def dialog() -> tuple[int, str, int]:
        with chat(server.url, home, "--agent", "parrot") as session:
            found = session.expect(["Password for", PROMPT])
            answer = session.say("still here")
            return found, answer, session.quit()

    found, answer, status = await asyncio.to_thread(dialog)

    assert found == 1, "asked for the password instead of refreshing"
    assert "You said: still here" in answer
    assert status == 0
    entry = cached(home)[server.url]
    assert entry["access_token"] != token
    assert entry["refresh_token"] != user.refresh_token  # spent, and replaced
    me = await client.get("/users/me", headers={"Authorization": f"Bearer {entry['access_token']}"})
    assert me.status_code == 200


async def test_a_refused_refresh_asks_for_the_password_again(
    server: Server, client: httpx.AsyncClient, user: User, make_agent: MakeAgent, home: Path
) -> None:
    await make_agent("fake:echo", name="Parrot")
    write_cache(
        home,
        server.url,
        {"email": user.email, "access_token": "not-a-token", "refresh_token": "revoked"},
    )

    def dialog() -> tuple[str, int]:
        with chat(server.url, home, "--agent", "parrot") as session:
            session.expect(f"Password for {user.email}: ")
            said = session.before
            session.child.sendline(user.password)
            session.prompt()
            return said, session.quit()

    said, status = await asyncio.to_thread(dialog)

    assert "sign in again" in said
    assert status == 0
    entry = cached(home)[server.url]
    assert entry["refresh_token"] != "revoked"
    refreshed = await client.post("/auth/refresh", json={"refresh_token": entry["refresh_token"]})
    assert refreshed.status_code == 200


async def test_ctrl_c_cancels_the_answer_and_stays_at_the_prompt(
    server: Server, client: httpx.AsyncClient, user: User, make_agent: MakeAgent, home: Path
) -> None:
    await make_agent("fake:tokens-200@50", name="Slow")

    def dialog() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        password = {"SWITCHBOARD_PASSWORD": user.password}
        with chat(server.url, home, *signed_in(user), "--agent", "slow", **password) as session:
            seen["opened"] = session.prompt()
            session.child.sendline("go")
            session.expect("tok5 tok6")  # the answer is streaming
            session.child.sendintr()
            seen["cancelled"] = session.prompt()
            seen["history"] = session.say("/history")
            session.child.sendintr()  # at an empty prompt: leave
            seen["exit"] = session.ended()
            seen["transcript"] = session.transcript
        return seen

    seen = await asyncio.to_thread(dialog)

    chat_id = CHAT_ID.search(seen["opened"])
    assert chat_id is not None
    assert "answer cancelled" in seen["cancelled"]
    assert "tok199" not in seen["transcript"]
    assert "go" in [line.strip() for line in seen["history"].splitlines()]
    assert seen["exit"] == 0
    runs = await client.get(f"/chats/{chat_id[1]}/runs", headers=user.headers)
    assert [run["status"] for run in runs.json()["items"]] == ["cancelled"]


async def test_a_tool_call_and_its_result_are_shown(
    server: Server, client: httpx.AsyncClient, user: User, make_agent: MakeAgent, home: Path
) -> None:
    await make_agent("fake:tools", ["calculator"], name="Calculating")

    def dialog() -> tuple[str, int]:
        with chat(server.url, home, "--agent", "calculating", "--token", user.access_token) as s:
            s.prompt()
            return s.say("6*7"), s.quit()

    answer, status = await asyncio.to_thread(dialog)

    shown = re.search(
        r'⚙ calculator \{"expression": "6\*7"\}\n'
        r"╭─ calculator result ─+╮\n│ 42 +│\n╰─+╯\n(?P<after>.*)",
        answer,
        re.S,
    )
    assert shown is not None, answer
    assert re.search(r"^42 *$", shown["after"], re.M)  # the answer, after the result
    assert status == 0


async def test_a_message_while_a_run_is_active_is_refused_with_a_reason(
    server: Server, client: httpx.AsyncClient, user: User, make_agent: MakeAgent, home: Path
) -> None:
    agent = await make_agent("fake:tokens-2000@50", name="Slow")
    chat_id = await open_chat(client, user, agent["id"])
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=TIMEOUT) as http,
        http.stream(
            "POST",
            f"/chats/{chat_id}/messages",
            json={"content": "busy"},
            headers={**user.headers, "Accept": "text/event-stream"},
        ) as started,  # fmt: skip
    ):
        assert started.status_code == 200
        run_id = started.headers["location"].split("/")[2]
    # The stream is closed; the run goes on.

    def dialog() -> tuple[str, int]:
        with chat(server.url, home, "--chat", chat_id, "--token", user.access_token) as s:
            s.prompt()
            return s.say("hello"), s.quit()

    try:
        refused, status = await asyncio.to_thread(dialog)
    finally:
        # Through the server that runs it.
        async with httpx.AsyncClient(base_url=server.url, timeout=TIMEOUT) as http:
            cancelled = await http.post(f"/runs/{run_id}/cancel", headers=user.headers)
    assert cancelled.json()["cancelled"] is True  # it was still running all along
    assert f"This chat is already answering (run {run_id})" in refused
    assert "You said" not in refused and "tok0" not in refused
    assert status == 0
    assert [m for m in await messages(client, user, chat_id) if m[1] == "hello"] == []


class Proxy:
    """A TCP proxy on 127.0.0.1 in front of the server that misbehaves once, on the first
    ``POST /chats/{id}/messages``: ``cut`` forwards it and cuts the connection after
    ``cut_after`` bytes of the answer; ``429`` answers it itself with a 429 (Retry-After: 1).
    Every request it saw is kept."""

    MESSAGE = re.compile(rb"^POST /chats/[^ /]+/messages ")

    def __init__(self, upstream_port: int, mode: str, cut_after: int = 0) -> None:
        self.upstream_port, self.mode, self.cut_after = upstream_port, mode, cut_after
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.requests: list[bytes] = []
        self.misbehaved = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self.listener.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            self._sockets += [client, upstream]
            cut = threading.Event()  # this connection's answer is the one to cut
            threading.Thread(target=self._up, args=(client, upstream, cut), daemon=True).start()
            threading.Thread(target=self._down, args=(upstream, client, cut), daemon=True).start()

    def _first_message(self, request: bytes) -> bool:
        with self._lock:
            if self.MESSAGE.match(request) and not self.misbehaved.is_set():
                self.misbehaved.set()
                return True
            return False

    def _up(self, client: socket.socket, upstream: socket.socket, cut: threading.Event) -> None:
        buffer = b""
        try:
            while data := client.recv(65536):
                buffer += data
                while (head_end := buffer.find(b"\r\n\r\n")) >= 0:
                    length = re.search(rb"(?im)^content-length: *(\d+)", buffer[:head_end])
                    end = head_end + 4 + (int(length[1]) if length else 0)
                    if len(buffer) < end:
                        break
                    request, buffer = buffer[:end], buffer[end:]
                    self.requests.append(request)
                    if self._first_message(request):
                        if self.mode == "429":
                            body = b'{"detail": "Too many requests", "code": "rate_limited"}'
                            client.sendall(
                                b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\n"
                                b"Content-Type: application/json\r\n"
                                b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
                            )
                            continue
                        cut.set()
                    upstream.sendall(request)
        except OSError:
            pass
        finally:
            for sock in (client, upstream):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def _down(self, upstream: socket.socket, client: socket.socket, cut: threading.Event) -> None:
        sent = 0
        try:
            while data := upstream.recv(65536):
                if cut.is_set():
                    if sent + len(data) >= self.cut_after:
                        client.sendall(data[: self.cut_after - sent])
                        break  # and cut
                    sent += len(data)
                client.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (client, upstream):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def proxy(server: Server, request: pytest.FixtureRequest) -> Iterator[Proxy]:
    mode, cut_after = request.param
    started = Proxy(server.port, mode, cut_after)
    try:
        yield started
    finally:
        started.close()


N = 40


@pytest.mark.parametrize("proxy", [("cut", 1500)], indirect=True)
async def test_a_dropped_stream_resumes_without_losing_or_repeating(
    server: Server, client: httpx.AsyncClient, user: User, make_agent: MakeAgent, home: Path,
    proxy: Proxy,
) -> None:  # fmt: skip
    await make_agent(f"fake:tokens-{N}@20", name="Counter")

    def dialog() -> tuple[str, str, int]:
        with chat(proxy.url, home, "--agent", "counter", "--token", user.access_token) as s:
            opened = s.prompt()
            return opened, s.say("count"), s.quit()

    opened, answer, status = await asyncio.to_thread(dialog)

    assert proxy.misbehaved.is_set()
    resumed = re.search(r"connection lost; resuming after event (\d+)", answer)
    assert resumed is not None, answer
    last_seen = int(resumed[1])
    assert last_seen > 0
    # It asked for what came after the last event it had, and only that.
    streams = [r for r in proxy.requests if r.startswith(b"GET /runs/")]
    assert len(streams) == 1
    assert re.search(rb"(?im)^last-event-id: %d\r$" % last_seen, streams[0])
    # Every redraw of the answer, and the answer at the end, is the count in order: a token
    # lost would leave a gap, one shown twice a step back.
    for before, after in re.findall(r"tok(\d+) tok(\d+)", answer):
        assert int(after) == int(before) + 1, answer
    full = " ".join(f"tok{i}" for i in range(N))
    assert re.search(rf"^{full} *$", answer, re.M), answer
    assert status == 0
    chat_id = CHAT_ID.search(opened)
    assert chat_id is not None
    runs = await client.get(f"/chats/{chat_id[1]}/runs", headers=user.headers)
    assert [run["status"] for run in runs.json()["items"]] == ["success"]


@pytest.mark.parametrize("proxy", [("429", 0)], indirect=True)
async def test_a_rate_limited_message_is_sent_again_after_the_wait(
    server: Server, client: httpx.AsyncClient, user: User, make_agent: MakeAgent, home: Path,
    proxy: Proxy,
) -> None:  # fmt: skip
    await make_agent("fake:echo", name="Parrot")

    def dialog() -> tuple[str, str, int]:
        with chat(proxy.url, home, "--agent", "parrot", "--token", user.access_token) as s:
            opened = s.prompt()
            return opened, s.say("once"), s.quit()

    opened, answer, status = await asyncio.to_thread(dialog)

    assert proxy.misbehaved.is_set()
    assert "rate limited: waiting 1 s as the server asks, then retrying" in answer
    assert answer.index("rate limited") < answer.index("You said: once")
    assert status == 0
    chat_id = CHAT_ID.search(opened)
    assert chat_id is not None
    assert await messages(client, user, chat_id[1]) == [
        ("user", "once"),
        ("agent", "You said: once"),
    ]

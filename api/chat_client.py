"""``switchboard chat``: talk to an agent from a terminal, over the server's public HTTP API.

Sign in once: the tokens are kept per server URL in ``$XDG_CONFIG_HOME/switchboard/tokens.json``
(``~/.config/switchboard/`` without it; the file 0600, the directory 0700). The access token is
refreshed with ``POST /auth/refresh`` when it has expired or a request answers 401 (which is
then retried once); when the refresh is refused, the password is asked for again. ``--token``
(or ``SWITCHBOARD_TOKEN``) uses that access token as it is, and caches nothing.

Pick an agent (a numbered list, or ``--agent NAME``), or continue ``--chat ID``; each line typed
at the prompt is a message, whose answer streams token by token (Markdown rendered when it
ends, tool calls and their results dimmed). ``Ctrl+C`` during an answer cancels its run and
comes back to the prompt; ``Ctrl+C`` or ``Ctrl+D`` at an empty prompt leaves. A stream cut by
the network is resumed from the last event seen (``Last-Event-ID``), so nothing is lost or
shown twice. Commands: ``/new``, ``/agents``, ``/history``, ``/help``, ``/quit``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import getpass
import json
import math
import os
import re
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
from rich.cells import cell_len
from rich.console import Console
from rich.live import Live
from rich.markdown import Markdown
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from api.terminal import DEFAULT_URL, CommandError, _refusal, add_connection_arguments

SSE = {"Accept": "text/event-stream"}
# An access token is refreshed this long before it expires.
EXPIRY_MARGIN_SECONDS = 5
# A 429 (or a 503 with Retry-After) is waited out and retried this many times, if the server
# asks for at most this long; past that the refusal is printed.
RATE_LIMIT_RETRIES = 5
MAX_RETRY_AFTER_SECONDS = 120
# A dropped stream is resumed this many times in a row without progress before giving up.
RESUME_ATTEMPTS = 6
# The live view of a streaming answer is redrawn at most this often.
REFRESH_SECONDS = 1 / 30
# What --chat and /history show at most.
RECENT_MESSAGES = 10
HISTORY_MAX_MESSAGES = 2000
TOOL_RESULT_MAX_CHARS = 4000

HELP = """\
Type a message and press Enter; the answer streams in. Ctrl+C stops an answer.
  /new       a new chat with the same agent
  /agents    pick another agent (and start a new chat with it)
  /history   this chat's messages
  /help      this help
  /quit      leave (or Ctrl+D, or Ctrl+C at an empty prompt)
A message that starts with / is written //."""


class ApiError(CommandError):
    """A refusal of the server: ``<detail> (<code>)``."""

    def __init__(self, response: httpx.Response) -> None:
        self.status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = None
        self.code = body.get("code") if isinstance(body, dict) else None
        detail = body.get("detail") if isinstance(body, dict) else None
        self.detail = detail if isinstance(detail, str) else ""
        super().__init__(_refusal(response))


class StreamCut(Exception):
    """The event stream ended without its ``end`` event."""


# Tokens, cached per server


def config_dir() -> Path:
    """``$XDG_CONFIG_HOME/switchboard`` (an absolute one), else ``~/.config/switchboard``."""
    base = os.environ.get("XDG_CONFIG_HOME", "")
    root = Path(base) if os.path.isabs(base) else Path.home() / ".config"
    return root / "switchboard"


def token_expiry(token: str) -> float | None:
    """The ``exp`` claim of a JWT (read, not verified: the server does that), if it has one."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims["exp"])
    except (IndexError, ValueError, KeyError, TypeError):
        return None


class TokenStore:
    """The signed-in sessions, one per server URL, in ``tokens.json``: readable by its owner
    only (0600, in a 0700 directory), replaced whole on each write."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / "tokens.json"

    def _ensure_directory(self) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)

    def load(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        servers = data.get("servers") if isinstance(data, dict) else None
        if not isinstance(servers, dict):
            return {}
        return {url: entry for url, entry in servers.items() if isinstance(entry, dict)}

    def get(self, url: str) -> dict[str, Any] | None:
        return self.load().get(url)

    def put(self, url: str, entry: dict[str, Any] | None) -> None:
        """Write (or with ``None`` forget) ``url``'s session; call it holding ``locked()``."""
        self._ensure_directory()
        servers = self.load()
        if entry is None:
            servers.pop(url, None)
        else:
            servers[url] = entry
        temporary = self.directory / f".tokens-{os.getpid()}.tmp"
        descriptor = os.open(
            temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600
        )
        with os.fdopen(descriptor, "w") as out:
            os.fchmod(out.fileno(), 0o600)
            json.dump({"servers": servers}, out, indent=2)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, self.path)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive use of the file across processes: two clients of one account must not
        both present the same refresh token (the server would revoke the whole family)."""
        self._ensure_directory()
        descriptor = os.open(self.directory / "tokens.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(descriptor, fcntl.LOCK_UN)
            os.close(descriptor)


# The server, signed in


def _retry_after(response: httpx.Response) -> float | None:
    """How long a 429, or a 503 that says so, asks the client to wait."""
    value = response.headers.get("Retry-After")
    if value is not None:
        try:
            return max(0.0, float(value))
        except ValueError:
            return 1.0
    return 1.0 if response.status_code == 429 else None


class Session:
    """HTTP to one server with an access token that is kept fresh, and refusals as errors."""

    def __init__(
        self, url: str, console: Console, store: TokenStore | None, *, interactive: bool
    ) -> None:
        self.url = url
        self.console = console
        self.store = store
        self.interactive = interactive
        self.http = httpx.Client(
            base_url=url,
            timeout=httpx.Timeout(60.0, connect=10.0),
            headers={"User-Agent": "switchboard-chat"},
        )
        self.email: str | None = None
        self.access_token: str | None = None
        self.refresh_token: str | None = None
        self.expires_at: float | None = None

    def close(self) -> None:
        self.http.close()

    # Requests

    def _send(
        self,
        method: str,
        path: str,
        *,
        stream: bool = False,
        auth: bool = True,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        refreshed, waits = False, 0
        while True:
            sent = dict(headers or {})
            if auth:
                self._fresh()
                sent["Authorization"] = f"Bearer {self.access_token}"
            request = self.http.build_request(method, path, headers=sent, **kwargs)
            try:
                response = self.http.send(request, stream=stream)
                if response.status_code < 400:
                    return response
                if stream:
                    response.read()
                    response.close()
            except httpx.HTTPError as exc:
                raise CommandError(f"cannot reach {self.url} ({type(exc).__name__})") from None
            if auth and response.status_code == 401 and not refreshed and self.can_refresh:
                self.refresh()
                refreshed = True
                continue
            wait = _retry_after(response) if response.status_code in (429, 503) else None
            if wait is not None and wait <= MAX_RETRY_AFTER_SECONDS and waits < RATE_LIMIT_RETRIES:
                what = "rate limited" if response.status_code == 429 else "the server is busy"
                self.console.print(
                    f"{what}: waiting {wait:g} s as the server asks, then retrying",
                    style="yellow",
                    markup=False,
                )
                time.sleep(wait)
                waits += 1
                continue
            raise ApiError(response)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._send(method, path, **kwargs)
        return response.json() if response.content else None

    @contextlib.contextmanager
    def stream(self, method: str, path: str, **kwargs: Any) -> Iterator[httpx.Response]:
        response = self._send(method, path, stream=True, **kwargs)
        try:
            yield response
        finally:
            response.close()

    # Tokens

    @property
    def can_refresh(self) -> bool:
        return self.store is not None and self.email is not None

    def _fresh(self) -> None:
        if (
            self.can_refresh
            and self.expires_at is not None
            and time.time() >= self.expires_at - EXPIRY_MARGIN_SECONDS
        ):
            self.refresh()

    def use_token(self, token: str) -> None:
        self.access_token, self.expires_at = token, None

    def adopt(self, entry: dict[str, Any]) -> None:
        """Use a cached session."""
        self.email = str(entry.get("email") or "") or None
        self.access_token = str(entry.get("access_token") or "")
        self.refresh_token = entry.get("refresh_token") or None
        expires = entry.get("expires_at")
        self.expires_at = token_expiry(self.access_token) or (
            float(expires) if isinstance(expires, int | float) else None
        )

    def _entry(self) -> dict[str, Any]:
        return {
            "email": self.email,
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "expires_at": self.expires_at,
        }

    def _take(self, body: dict[str, Any]) -> None:
        """A token pair the server just issued."""
        self.access_token = str(body["access_token"])
        self.refresh_token = str(body["refresh_token"])
        lifetime = body.get("expires_in")
        self.expires_at = token_expiry(self.access_token) or (
            time.time() + float(lifetime) if isinstance(lifetime, int | float) else None
        )

    def refresh(self) -> None:
        """A new token pair for the refresh token; the password again if it is refused."""
        assert self.store is not None and self.email is not None
        with self.store.locked():
            cached = self.store.get(self.url)
            if (
                cached is not None
                and cached.get("email") == self.email
                and cached.get("refresh_token") not in (None, self.refresh_token)
            ):
                # Another client of this account refreshed it meanwhile: theirs is the live one.
                self.adopt(cached)
                if self.expires_at is not None and time.time() < self.expires_at:
                    return
            if self.refresh_token:
                try:
                    body = self.request(
                        "POST",
                        "/auth/refresh",
                        auth=False,
                        json={"refresh_token": self.refresh_token},
                    )
                except ApiError as exc:
                    if exc.status not in (400, 401, 403, 404, 422):
                        raise
                else:
                    self._take(body)
                    self.store.put(self.url, self._entry())
                    return
            self.store.put(self.url, None)
        # The session is over (expired, revoked, or signed out elsewhere).
        self.console.print(f"Your session on {self.url} has ended: sign in again.", style="yellow")
        self.sign_in(self.email, os.environ.get("SWITCHBOARD_PASSWORD"))

    def sign_in(self, email: str, password: str | None) -> None:
        """``POST /auth/login``, asking for the password (again, if refused) on a terminal."""
        self.email = email
        for _ in range(3):
            asked = password is None
            if asked:
                if not self.interactive:
                    raise CommandError(
                        f"--email {email} needs a password (--password or SWITCHBOARD_PASSWORD)"
                    )
                password = getpass.getpass(f"Password for {email}: ")
            try:
                body = self.request(
                    "POST", "/auth/login", auth=False, json={"email": email, "password": password}
                )
            except ApiError as exc:
                if not asked or exc.status != 401:
                    raise
                self.console.print(f"error: {clean(exc)}", style="red", markup=False)
                password = None
                continue
            self._take(body)
            if self.store is not None:
                with self.store.locked():
                    self.store.put(self.url, self._entry())
            return
        raise CommandError("not signed in")


def cached_access_token(url: str) -> str | None:
    """A valid access token of the session ``switchboard chat`` keeps for ``url`` (refreshed
    first if it has expired), for the other commands; ``None`` when there is none, or it cannot
    be refreshed without asking for a password."""
    store = TokenStore(config_dir())
    cached = store.get(url)
    if cached is None or not cached.get("email") or not cached.get("refresh_token"):
        return None
    session = Session(url, Console(stderr=True), store, interactive=False)
    try:
        session.adopt(cached)
        session._fresh()
        return session.access_token
    except CommandError:
        return None
    finally:
        session.close()


def sign_in(args: argparse.Namespace, console: Console) -> Session:
    """A session on ``--url``: ``--email`` (cached, else a password), ``--token``, or the
    session cached for that server, else an email and a password asked for."""
    url = (args.url or os.environ.get("SWITCHBOARD_URL") or DEFAULT_URL).rstrip("/")
    interactive = sys.stdin.isatty()
    email = args.email
    token = args.token or os.environ.get("SWITCHBOARD_TOKEN")
    if not email and token:
        session = Session(url, console, None, interactive=interactive)
        session.use_token(token)
        return session
    store = TokenStore(config_dir())
    session = Session(url, console, store, interactive=interactive)
    cached = store.get(url)
    if cached is not None and cached.get("email") and cached.get("refresh_token"):
        if not email or str(cached["email"]).casefold() == email.casefold():
            session.adopt(cached)
            return session
    if not email:
        if not interactive:
            raise CommandError(
                "sign in with --email (and a password), or --token (or SWITCHBOARD_TOKEN)"
            )
        email = input("Email: ").strip()
        if not email:
            raise CommandError("an email is needed to sign in")
    session.sign_in(email, args.password or os.environ.get("SWITCHBOARD_PASSWORD"))
    return session


# Server-sent events


@dataclass
class Event:
    id: int | None
    event: str
    data: Any


def read_events(lines: Iterable[str]) -> Iterator[Event]:
    """The events of a ``text/event-stream``, from its lines (without their line breaks): an
    event is complete at its blank line, so one cut short by a dropped connection is never
    seen. Comments (``: ping``) are skipped."""
    name, event_id = "message", None
    data: list[str] = []
    for line in lines:
        if line == "":
            if data:
                try:
                    payload = json.loads("\n".join(data))
                except ValueError:
                    payload = None
                yield Event(event_id, name, payload)
            name, data, event_id = "message", [], None
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            name = value
        elif field == "data":
            data.append(value)
        elif field == "id" and value.isdigit():
            event_id = int(value)


# Showing messages and answers

# Control characters but line breaks and tabs: text from the server (a model's answer, a
# tool's result) must not move the cursor, retitle the window or clear the screen.
CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean(text: Any) -> str:
    """Server text made inert for a terminal: each control character shown as ``�``."""
    return CONTROLS.sub("\ufffd", str(text).replace("\r\n", "\n"))


def tool_call_text(name: str, args: Any) -> Text:
    arguments = clean(json.dumps(args, ensure_ascii=False)) if args not in (None, {}) else ""
    return Text.assemble(("⚙ ", "dim"), (clean(name), "dim bold"), (f" {arguments}", "dim"))


def tool_result_panel(name: str, content: Any, is_error: bool) -> Panel:
    text = clean(content if isinstance(content, str) else json.dumps(content, ensure_ascii=False))
    if len(text) > TOOL_RESULT_MAX_CHARS:
        text = text[:TOOL_RESULT_MAX_CHARS] + "…"
    return Panel(
        Text(text, style="dim"),
        title=Text(f"{clean(name)} {'error' if is_error else 'result'}"),
        title_align="left",
        border_style="red" if is_error else "dim",
        expand=False,
    )


class AnswerView:
    """One answer on the screen as its events arrive: text redrawn token by token and
    rendered as Markdown once its message is complete; tool calls and results dimmed.

    Where the screen cannot be redrawn (not a terminal) or an answer grows taller than it,
    tokens are printed as they come instead, and stay plain text."""

    def __init__(self, console: Console, agent_name: str) -> None:
        self.console = console
        self.agent_name = clean(agent_name)
        self.live: Live | None = None
        self.message_id: str | None = None
        self.text = ""
        self.raw = False
        # Raw text was printed and its line is not ended yet.
        self.line_open = False
        self.header_shown = False
        self.finished: set[str] = set()
        self.drawn_at = 0.0

    @property
    def animated(self) -> bool:
        return self.console.is_terminal and not self.console.is_dumb_terminal

    def _header(self) -> None:
        if not self.header_shown:
            self.console.print(Text(self.agent_name, style="bold magenta"))
            self.header_shown = True

    def token(self, message_id: str, delta: str) -> None:
        if message_id != self.message_id:
            self._finish()
            self._header()
            self.message_id, self.text, self.raw = message_id, "", not self.animated
            if not self.raw:
                self.live = Live(Text(), console=self.console, auto_refresh=False, transient=True)
                self.live.start()
        delta = clean(delta)
        self.text += delta
        if self.raw:
            self._out(delta)
        else:
            self._draw()

    def _height(self) -> int:
        width = max(1, self.console.width)
        return sum(max(1, math.ceil(cell_len(line) / width)) for line in self.text.split("\n"))

    def _draw(self) -> None:
        now = time.monotonic()
        if self.live is None or now - self.drawn_at < REFRESH_SECONDS:
            return
        if self._height() >= self.console.height - 2:
            # Taller than the screen: a redraw could no longer erase what scrolled away.
            self._go_raw()
            return
        self.live.update(Text(self.text), refresh=True)
        self.drawn_at = now

    def _go_raw(self) -> None:
        """Stop redrawing: what was received stays on the screen as plain text."""
        if self.live is not None:
            self.live.stop()
            self.live = None
            self._out(self.text)
            self.raw = True

    def _out(self, text: str) -> None:
        if text:
            self.console.out(text, end="", highlight=False)
            self.line_open = True

    def _end_line(self) -> None:
        if self.line_open:
            self.console.out("")
            self.line_open = False

    def _finish(self) -> None:
        """The streamed message is complete."""
        if self.message_id is None:
            return
        if self.live is not None:
            self.live.stop()
            self.live = None
            self.console.print(Markdown(self.text))
        self._end_line()
        self.finished.add(self.message_id)
        self.message_id, self.text, self.raw = None, "", False

    def message(self, message: dict[str, Any]) -> None:
        if message.get("sender") != "agent":
            return  # the user's (typed here) and the tools' (shown by tool_result)
        if message.get("id") == self.message_id:
            self._finish()
        elif message.get("id") not in self.finished and message.get("content"):
            # Not streamed token by token: shown whole.
            self._finish()
            self._header()
            self.console.print(Markdown(clean(message["content"])))
            self.finished.add(str(message.get("id")))

    def tool_call(self, data: dict[str, Any]) -> None:
        self._finish()
        self._header()
        self.console.print(tool_call_text(str(data.get("name")), data.get("args")))

    def tool_result(self, data: dict[str, Any]) -> None:
        self._finish()
        self.console.print(
            tool_result_panel(
                str(data.get("name")), data.get("content"), bool(data.get("is_error"))
            )
        )

    def error(self, data: dict[str, Any]) -> None:
        self._finish()
        message = clean(data.get("message") or "the run failed")
        code = data.get("code")
        self.console.print(
            f"error: {message}" + (f" ({code})" if code else ""), style="red", markup=False
        )

    def end(self, status: str) -> None:
        self._finish()
        if status == "cancelled":
            self.console.print("⏹ answer cancelled", style="yellow")
        elif status == "interrupted":
            self.console.print(
                "the answer was interrupted (by a newer message, or the server stopping)",
                style="yellow",
            )
        elif status == "error":
            self.console.print("the answer failed", style="red")

    def note(self, text: str, style: str = "dim") -> None:
        """A line about the connection, between what was already shown and what follows."""
        self._end_line()
        # Styled as a Text: a style given to print() would also dim the live answer below it.
        self.console.print(Text(text, style=style))

    def suspend(self) -> None:
        """Ctrl+C: keep what arrived on the screen, print what still comes as it comes."""
        self._go_raw()

    def close(self) -> None:
        self._go_raw()
        self._end_line()
        self.message_id, self.raw = None, False


@dataclass
class Turn:
    """What is known of one answer's run while it streams."""

    run_id: str | None = None
    last_id: int = 0
    status: str | None = None


def _run_id_from(location: str | None) -> str | None:
    # ``Location: /runs/{run_id}/stream``
    if location and location.startswith("/runs/"):
        return location.split("/")[2] or None
    return None


def _line_buffer(readline: ModuleType | None) -> str:
    return readline.get_line_buffer() if readline is not None else ""


class Leave(Exception):
    """The user is done."""


class ChatApp:
    def __init__(self, session: Session, console: Console) -> None:
        self.session = session
        self.console = console
        self.agent: dict[str, Any] = {}
        self.chat_id = ""
        self._default_model: str | None = None
        self.readline: ModuleType | None = None
        with contextlib.suppress(ImportError):
            import readline  # line editing and history for input()

            self.readline = readline
        color = console.is_terminal and console.color_system is not None
        # readline measures the prompt: escape sequences go between \001 and \002.
        self.prompt = "\001\033[1;36m\002you> \001\033[0m\002" if color else "you> "

    # Agents and chats

    def default_model(self) -> str:
        if self._default_model is None:
            info = self.session.request("GET", "/info")
            self._default_model = str((info or {}).get("default_model") or "")
        return self._default_model

    def model_of(self, agent: dict[str, Any]) -> str:
        return str(agent.get("model_name") or self.default_model())

    def agents(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        while True:
            page = self.session.request(
                "GET", "/agents/", params={"limit": 100, "offset": len(found)}
            )
            found.extend(page["items"])
            if not page["items"] or len(found) >= page["total"]:
                return found

    def find_agent(self, wanted: str) -> dict[str, Any]:
        """An agent by its id, name or slug (case-insensitive)."""
        for agent in self.agents():
            if wanted == agent["id"] or wanted.casefold() in (
                agent["name"].casefold(),
                agent["slug"].casefold(),
            ):
                return agent
        raise CommandError(f"no agent named {wanted!r}")

    def pick_agent(self) -> dict[str, Any] | None:
        """An agent from a numbered list; ``None`` when the user gives up (Ctrl+C, Ctrl+D)."""
        agents = self.agents()
        if not agents:
            raise CommandError("the server has no agents")
        table = Table(box=None, title="Agents", title_justify="left", pad_edge=False)
        for column in ("#", "agent", "model", "about"):
            table.add_column(column, justify="right" if column == "#" else "left")
        for number, agent in enumerate(agents, 1):
            model = agent.get("model_name") or f"{self.default_model()} (default)"
            about = " ".join((agent.get("description") or "").split())
            about = about if len(about) <= 60 else about[:59] + "…"
            table.add_row(
                str(number), Text(clean(agent["name"])), Text(clean(model)), Text(clean(about))
            )
        self.console.print(table)
        while True:
            try:
                answer = input(f"Pick an agent [1-{len(agents)}]: ").strip()
            except (EOFError, KeyboardInterrupt):
                self.console.print()
                return None
            if answer.isdigit() and 1 <= int(answer) <= len(agents):
                return agents[int(answer) - 1]
            for agent in agents:
                if answer.casefold() in (agent["name"].casefold(), agent["slug"].casefold()):
                    return agent
            self.console.print(f"type a number from 1 to {len(agents)}", style="yellow")

    def _announce(self) -> None:
        model = self.model_of(self.agent)
        self.console.rule(
            Text.assemble(
                (clean(self.agent["name"]), "bold magenta"),
                f" ({clean(model)}) · chat {self.chat_id}",
            ),
            style="dim",
        )
        if model.startswith("fake:"):
            self.console.print(
                f"Note: {clean(self.agent['name'])} runs on {clean(model)}, a fake model built "
                "into the server for testing: its answers are scripted, not written by an AI.",
                style="yellow",
                markup=False,
            )

    def new_chat(self, agent: dict[str, Any]) -> None:
        chat = self.session.request("POST", "/chats/", json={"agent_id": agent["id"]})
        self.agent, self.chat_id = agent, str(chat["id"])
        self._announce()
        self.console.print("Type a message; /help lists the commands.", style="dim")

    def open_chat(self, chat_id: str) -> None:
        chat = self.session.request("GET", f"/chats/{chat_id}")
        try:
            agent = self.session.request("GET", f"/agents/{chat['agent_id']}")
        except ApiError:
            agent = {"id": chat["agent_id"], "name": "agent", "model_name": None}
        self.agent, self.chat_id = agent, str(chat["id"])
        self._announce()
        page = self.session.request(
            "GET", f"/chats/{self.chat_id}/messages", params={"limit": RECENT_MESSAGES}
        )
        if page["has_more"]:
            self.console.print("… earlier messages: /history", style="dim")
        for message in page["items"]:
            self.show(message)

    # Showing messages

    def show(self, message: dict[str, Any]) -> None:
        sender, content = message.get("sender"), message.get("content") or ""
        metadata = message.get("metadata") or {}
        if sender == "user":
            self.console.print(Text("you", style="bold cyan"))
            self.console.print(Text(clean(content)))
        elif sender == "agent":
            self.console.print(Text(clean(self.agent.get("name") or "agent"), style="bold magenta"))
            for call in metadata.get("tool_calls") or []:
                self.console.print(tool_call_text(str(call.get("name")), call.get("args")))
            if content:
                self.console.print(Markdown(clean(content)))
        elif sender == "tool":
            self.console.print(
                tool_result_panel(
                    str(metadata.get("name") or "tool"), content, bool(metadata.get("is_error"))
                )
            )

    def history(self) -> None:
        messages: list[dict[str, Any]] = []
        before: str | None = None
        while len(messages) < HISTORY_MAX_MESSAGES:
            params: dict[str, Any] = {"limit": 500}
            if before is not None:
                params["before"] = before
            page = self.session.request("GET", f"/chats/{self.chat_id}/messages", params=params)
            messages = page["items"] + messages
            if not page["has_more"] or not page["items"]:
                break
            before = page["items"][0]["id"]
        self.console.rule(f"chat {self.chat_id}: {len(messages)} message(s)", style="dim")
        for message in messages:
            self.show(message)
        self.console.rule(style="dim")

    # Answers

    def send(self, content: str) -> None:
        view = AnswerView(self.console, str(self.agent.get("name") or "agent"))
        turn = Turn()
        try:
            try:
                with self.session.stream(
                    "POST",
                    f"/chats/{self.chat_id}/messages",
                    json={"content": content},
                    headers=SSE,
                ) as response:
                    turn.run_id = _run_id_from(response.headers.get("location"))
                    self._consume(response, turn, view)
            except (httpx.HTTPError, StreamCut):
                self._resume(turn, view)
        except KeyboardInterrupt:
            view.suspend()
            self._cancel(turn, view)
        except ApiError as exc:
            view.close()
            if exc.status == 409 and "active run" in exc.detail:
                run_id = exc.detail.rsplit(" ", 1)[-1]
                self.console.print(
                    f"This chat is already answering (run {run_id}): wait for that answer to "
                    "end, or start another chat with /new.",
                    style="yellow",
                    markup=False,
                )
                return
            raise
        finally:
            view.close()

    def _consume(self, response: httpx.Response, turn: Turn, view: AnswerView) -> None:
        """Show the events of one stream until ``end``; raise when it breaks off before."""
        for event in read_events(response.iter_lines()):
            if event.id is not None:
                if event.id <= turn.last_id:
                    continue  # already shown
                turn.last_id = event.id
            data = event.data if isinstance(event.data, dict) else {}
            if event.event == "run":
                turn.run_id = str(data.get("run_id") or turn.run_id)
            elif event.event == "token":
                view.token(str(data.get("message_id")), str(data.get("delta") or ""))
            elif event.event == "message":
                view.message(data)
            elif event.event == "tool_call":
                view.tool_call(data)
            elif event.event == "tool_result":
                view.tool_result(data)
            elif event.event == "error":
                view.error(data)
            elif event.event == "end":
                turn.status = str(data.get("status"))
                view.end(turn.status)
                return
        raise StreamCut

    def _resume(self, turn: Turn, view: AnswerView, *, quiet: bool = False) -> None:
        """Follow the run's stream from the last event seen until its end, through drops."""
        if turn.run_id is None:
            raise CommandError("the connection dropped before the answer started")
        failures = 0
        while True:
            if not quiet:
                view.note(f"connection lost; resuming after event {turn.last_id}…")
            seen = turn.last_id
            try:
                with self.session.stream(
                    "GET",
                    f"/runs/{turn.run_id}/stream",
                    headers={**SSE, "Last-Event-ID": str(turn.last_id)},
                ) as response:
                    self._consume(response, turn, view)
                    return
            except (httpx.HTTPError, StreamCut):
                pass
            except ApiError:
                raise
            except CommandError:  # unreachable for now
                pass
            quiet = False
            failures = 0 if turn.last_id > seen else failures + 1
            if failures >= RESUME_ATTEMPTS:
                raise CommandError(
                    f"lost the connection to {self.session.url}; the answer goes on without "
                    "you, /history shows it once it is back"
                )
            time.sleep(min(0.25 * 2**failures, 5.0))

    def _active_run(self) -> str | None:
        page = self.session.request("GET", f"/chats/{self.chat_id}/runs", params={"limit": 1})
        for run in page["items"]:
            if run["status"] in ("pending", "running"):
                return str(run["id"])
        return None

    def _cancel(self, turn: Turn, view: AnswerView) -> None:
        """Ctrl+C during an answer: stop its run, and show the stream up to its end."""
        view.note("cancelling…", style="yellow")
        try:
            turn.run_id = turn.run_id or self._active_run()
            if turn.run_id is None:
                view.note("there was no answer to cancel")
                return
            self.session.request("POST", f"/runs/{turn.run_id}/cancel")
            # Its stream ends with ``end`` ``cancelled`` (or how the run ended, if it was
            # quicker than the cancel).
            self._resume(turn, view, quiet=True)
        except KeyboardInterrupt:
            view.note("stopped waiting for the answer to end")

    # The prompt

    def command(self, line: str) -> None:
        name = line.split()[0].lower()
        if name in ("/quit", "/exit", "/q"):
            raise Leave
        if name == "/help":
            self.console.print(HELP, markup=False, highlight=False)
        elif name == "/new":
            self.new_chat(self.agent)
        elif name == "/agents":
            agent = self.pick_agent()
            if agent is not None:
                self.new_chat(agent)
        elif name == "/history":
            self.history()
        else:
            self.console.print(f"unknown command {name}; /help lists them", style="yellow")

    def read(self) -> str:
        """A line at the prompt; ``Leave`` on Ctrl+D, or Ctrl+C on an empty line."""
        while True:
            try:
                return input(self.prompt)
            except EOFError:
                self.console.print()
                raise Leave from None
            except KeyboardInterrupt:
                self.console.print()
                if not _line_buffer(self.readline):
                    raise Leave from None

    def loop(self) -> None:
        while True:
            line = self.read()
            text = line.strip()
            if not text:
                continue
            try:
                if text.startswith("/") and not text.startswith("//"):
                    self.command(text)
                else:
                    self.send(text[1:] if text.startswith("//") else text)
            except CommandError as exc:
                self.console.print(f"error: {clean(exc)}", style="red", markup=False)
            except KeyboardInterrupt:
                self.console.print("interrupted", style="yellow")

    def start(self, args: argparse.Namespace) -> int:
        me = self.session.request("GET", "/users/me")
        self.console.print(f"Signed in to {self.session.url} as {me['email']}", style="dim")
        if args.chat_id:
            if args.agent:
                self.console.print("--chat given: --agent is ignored", style="yellow")
            self.open_chat(args.chat_id)
        else:
            agent = self.find_agent(args.agent) if args.agent else self.pick_agent()
            if agent is None:
                return 0
            self.new_chat(agent)
        try:
            self.loop()
        except Leave:
            pass
        return 0


def run(args: argparse.Namespace) -> int:
    console = Console(highlight=False)
    errors = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        session = sign_in(args, console)
        try:
            return ChatApp(session, console).start(args)
        finally:
            session.close()
    except CommandError as exc:
        errors.print(f"error: {clean(exc)}", markup=False)
        return 1
    except (KeyboardInterrupt, EOFError):
        console.print()
        return 130


def add_command(commands: Any) -> None:
    """``switchboard chat``, on ``switchboard``'s parser."""
    parser = commands.add_parser(
        "chat",
        help="talk to an agent: streamed answers; /new, /agents, /history, /quit",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--agent", help="an agent's name, slug or id (default: pick from a list)")
    parser.add_argument("--chat", dest="chat_id", metavar="ID", help="continue this chat")
    add_connection_arguments(parser)
    parser.set_defaults(interactive=run)

"""The evaluator's commands of ``switchboard``: a chat's history, its export and its replay
against another agent or model, from a terminal, over the server's HTTP API.

They sign in with ``--token`` (or ``SWITCHBOARD_TOKEN``), or with ``--email`` and a password
(``--password``, ``SWITCHBOARD_PASSWORD``, or a prompt), or else with the session that
``switchboard chat`` keeps for that server (``api/chat_client.py``), against ``--url`` (or
``SWITCHBOARD_URL``, default ``http://127.0.0.1:8000``). A refusal of the server is printed with
its ``code`` and the command exits 1; bad arguments exit 2.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

DEFAULT_URL = "http://127.0.0.1:8000"
# How often a replay's progress is read while the command waits for it.
POLL_SECONDS = 0.5
ENDED = {"done", "failed", "cancelled", "interrupted"}


class CommandError(Exception):
    """What the command prints (``error: …``) before it exits 1."""


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("connection")
    group.add_argument(
        "--url", default=None, help=f"the server (default $SWITCHBOARD_URL or {DEFAULT_URL})"
    )
    group.add_argument("--token", default=None, help="an access token (default $SWITCHBOARD_TOKEN)")
    group.add_argument("--email", default=None, help="sign in with this account instead of a token")
    group.add_argument(
        "--password", default=None, help="with --email (default $SWITCHBOARD_PASSWORD or a prompt)"
    )


def _refusal(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, list):  # a validation error: name each field
        detail = "; ".join(
            f"{'.'.join(str(p) for p in problem.get('loc', [])[1:])}: {problem.get('msg')}"
            for problem in detail
            if isinstance(problem, dict)
        )
    code = body.get("code") if isinstance(body, dict) else None
    return f"{detail or 'HTTP ' + str(response.status_code)}" + (f" ({code})" if code else "")


class Api:
    """The server, signed in."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.url = (args.url or os.environ.get("SWITCHBOARD_URL") or DEFAULT_URL).rstrip("/")
        self.http = httpx.Client(base_url=self.url, timeout=60)
        token = args.token or os.environ.get("SWITCHBOARD_TOKEN")
        if args.email:
            token = self._sign_in(args.email, args.password)
        if not token:
            # Imported here: the chat client builds on this module.
            from api.chat_client import cached_access_token

            token = cached_access_token(self.url)
        if not token:
            raise CommandError(
                "sign in with --token (or SWITCHBOARD_TOKEN), or with --email and a password, "
                "or once with `switchboard chat`"
            )
        self.http.headers["Authorization"] = f"Bearer {token}"

    def _sign_in(self, email: str, password: str | None) -> str:
        password = password or os.environ.get("SWITCHBOARD_PASSWORD")
        if not password and sys.stdin.isatty():
            password = getpass.getpass(f"Password for {email}: ")
        if not password:
            raise CommandError("--email needs a password (--password or SWITCHBOARD_PASSWORD)")
        body = self.request("POST", "/auth/login", json={"email": email, "password": password})
        return str(body["access_token"])

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise CommandError(f"cannot reach {self.url} ({type(exc).__name__})") from None
        if response.status_code >= 400:
            raise CommandError(_refusal(response))
        return response.json() if response.content else None

    @contextmanager
    def download(self, path: str, **params: str) -> Iterator[httpx.Response]:
        try:
            with self.http.stream("GET", path, params=params) as response:
                if response.status_code >= 400:
                    response.read()
                    raise CommandError(_refusal(response))
                yield response
        except httpx.HTTPError as exc:
            raise CommandError(f"cannot reach {self.url} ({type(exc).__name__})") from None

    def close(self) -> None:
        self.http.close()


def _short(text: str | None, width: int) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= width else text[: width - 1] + "…"


def history(args: argparse.Namespace, api: Api, console: Console) -> None:
    """Every checkpoint of the chat, newest first, paged through until ``--limit``."""
    table = Table(title=f"chat {args.chat_id}: history, newest first")
    for column in ("step", "source", "messages", "next", "created", "checkpoint", "run"):
        table.add_column(column, no_wrap=column in ("checkpoint", "run"))
    shown, before = 0, None
    while shown < args.limit:
        params: dict[str, Any] = {"limit": min(200, args.limit - shown)}
        if before:
            params["before"] = before
        page = api.request("GET", f"/chats/{args.chat_id}/history", params=params)
        for item in page["items"]:
            table.add_row(
                str(item["step"]), item["source"] or "", str(item["message_count"]),
                ", ".join(item["next"]), item["created_at"], item["checkpoint_id"],
                item["run_id"] or "",
            )  # fmt: skip
        shown += len(page["items"])
        if not page["has_more"] or not page["items"]:
            break
        before = page["items"][-1]["checkpoint_id"]
    console.print(table)
    console.print(f"{shown} checkpoint(s)")


def export(args: argparse.Namespace, api: Api, console: Console) -> None:
    """The chat as the server exports it, written as it arrives (to ``-o`` or stdout)."""
    out: IO[bytes]
    with api.download(f"/chats/{args.chat_id}/export", format=args.format) as response:
        if args.output in (None, "-"):
            out = sys.stdout.buffer
            for chunk in response.iter_bytes():
                out.write(chunk)
            out.flush()
            return
        target = Path(args.output)
        with target.open("wb") as out:
            for chunk in response.iter_bytes():
                out.write(chunk)
    console.print(f"wrote {target} ({target.stat().st_size} bytes)", highlight=False)


def _agent_id(api: Api, wanted: str) -> str:
    """An agent by its id, name or slug (case-insensitive)."""
    offset = 0
    while True:
        page = api.request("GET", "/agents/", params={"limit": 100, "offset": offset})
        for agent in page["items"]:
            if wanted == agent["id"] or wanted.casefold() in (
                agent["name"].casefold(),
                agent["slug"].casefold(),
            ):
                return str(agent["id"])
        offset += len(page["items"])
        if not page["items"] or offset >= page["total"]:
            raise CommandError(f"no agent named {wanted!r}")


def replay(args: argparse.Namespace, api: Api, console: Console) -> None:
    """Replay the chat against ``--agent`` or ``--model``, show its progress, then compare."""
    body: dict[str, str] = {}
    if args.agent:
        body["agent_id"] = _agent_id(api, args.agent)
    if args.model:
        body["model_name"] = args.model
    started = api.request("POST", f"/chats/{args.chat_id}/replays", json=body)
    replay_id = started["id"]
    console.print(f"replay {replay_id} started", highlight=False)
    if args.no_wait:
        return
    report = _follow(api, replay_id, console)
    console.print(comparison(report))
    if report["status"] != "done":
        raise CommandError(f"replay {replay_id} ended {report['status']}")


def _follow(api: Api, replay_id: str, console: Console) -> dict[str, Any]:
    columns = (
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
    )  # fmt: skip
    with Progress(*columns, console=console, transient=not console.is_terminal) as progress:
        task = progress.add_task("replaying", total=None)
        while True:
            report = api.request("GET", f"/replays/{replay_id}")
            done, total = report["progress"]["done"], report["progress"]["total"]
            progress.update(task, completed=done, total=total, description=report["status"])
            if report["status"] in ENDED:
                return dict(report)
            time.sleep(POLL_SECONDS)


def comparison(report: dict[str, Any]) -> Table:
    """A replay's turns side by side: what was asked, both answers, their tools and how alike
    they are."""
    table = Table(
        title=f"replay {report['id']}: {report['status']}, "
        f"{report['progress']['done']}/{report['progress']['total']} turns"
    )
    for column in ("#", "user", "original", "replay", "tools (original → replay)", "similarity"):
        table.add_column(column, overflow="fold")
    for turn in report["turns"]:
        original, new = turn["original"], turn["new"] or {}
        tools = (
            f"{_tool_names(original)} → {_tool_names(new)}"
            if original["tool_calls"] or new.get("tool_calls")
            else ""
        )
        similarity = turn["similarity"]
        table.add_row(
            str(turn["position"] + 1), _short(turn["message"]["content"], 40),
            _short(original["content"], 50),
            _short(new.get("content"), 50) if turn["new"] else f"({turn['status']})",
            tools, "" if similarity is None else f"{similarity:.2f}",
        )  # fmt: skip
    return table


def _tool_names(answer: dict[str, Any]) -> str:
    return ", ".join(call["name"] for call in answer.get("tool_calls") or []) or "-"


COMMANDS: dict[str, Callable[[argparse.Namespace, Api, Console], None]] = {
    "history": history,
    "export": export,
    "replay": replay,
}


def add_commands(commands: Any) -> None:
    """The evaluator's subcommands, on ``switchboard``'s parser."""
    parser = commands.add_parser("history", help="a chat's checkpoints, newest first")
    parser.add_argument("chat_id")
    parser.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    add_connection_arguments(parser)
    parser.set_defaults(client=history)

    parser = commands.add_parser("export", help="download a chat as JSONL or JSON")
    parser.add_argument("chat_id")
    parser.add_argument("-o", "--output", help="a file (default: standard output)")
    parser.add_argument("--format", choices=("jsonl", "json"), default="jsonl")
    add_connection_arguments(parser)
    parser.set_defaults(client=export)

    parser = commands.add_parser(
        "replay", help="replay a chat against another agent or model and compare the answers"
    )
    parser.add_argument("chat_id")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--agent", help="an agent's name, slug or id")
    target.add_argument("--model", help="the chat's own agent on this model, e.g. fake:echo")
    parser.add_argument("--no-wait", action="store_true", help="start it and print its id")
    add_connection_arguments(parser)
    parser.set_defaults(client=replay)


def run(args: argparse.Namespace) -> int:
    console = Console(highlight=False)
    # An error is one line, however narrow the terminal.
    errors = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        api = Api(args)
        try:
            args.client(args, api, console)
        finally:
            api.close()
    except CommandError as exc:
        errors.print(f"error: {exc}", markup=False)
        return 1
    return 0

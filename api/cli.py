"""The ``switchboard`` command: serve, worker, db upgrade and vacuum-orphans, users create-admin;
and, as a client of a running server, chat (api/chat_client.py), history, export and replay
(api/terminal.py)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from api.settings import ConfigurationError, Settings, load_settings


def _configure_logging(settings: Settings) -> dict[str, Any]:
    from api import logs

    return logs.configure(settings)


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from api.app import create_app

    app = create_app(settings)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        # Ours, not uvicorn's default: its lines in the same format as every other one.
        log_config=_configure_logging(settings),
        log_level=settings.log_level.lower(),
        # Past the runs' grace period (and the few seconds streams need to send their end),
        # stop waiting for connections.
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds) + 10,
    )
    return 0


async def _with_database(settings: Settings, work: Callable[[str], Awaitable[None]]) -> None:
    from api.bootstrap import resolve_database, upgrade_database

    conninfo, embedded = await resolve_database(settings)
    try:
        await upgrade_database(conninfo, settings.embedding_model)
        await work(conninfo)
    finally:
        if embedded is not None:
            embedded.stop()


def _db_upgrade(_: argparse.Namespace, settings: Settings) -> int:
    async def report(_: str) -> None:
        print("database is up to date")

    asyncio.run(_with_database(settings, report))
    return 0


def _build_pgvector(args: argparse.Namespace, _: Settings) -> int:
    from storage import pgvector

    try:
        target = pgvector.build(args.source)
    except pgvector.BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"pgvector {pgvector.VERSION} built for this CPU: {target}")
    print("restart the server: knowledge search now uses HNSW indexes")
    return 0


def _vacuum_orphans(args: argparse.Namespace, settings: Settings) -> int:
    from api.services.chat_retention import vacuum_orphans
    from storage.db import open_pool

    async def vacuum(conninfo: str) -> None:
        pool = await open_pool(conninfo, min_size=1, max_size=2)
        try:
            found = await vacuum_orphans(pool, dry_run=args.dry_run)
        finally:
            await pool.close()
        verb = "would delete" if args.dry_run else "deleted"
        print(f"orphaned threads: {found.threads}")
        for table, n in found.rows.items():
            print(f"{table}: {verb} {n} rows")

    asyncio.run(_with_database(settings, vacuum))
    return 0


def _create_admin(args: argparse.Namespace, settings: Settings) -> int:
    from api.services.auth import ensure_admin
    from storage.db import open_pool

    password = args.password or os.environ.get("SWITCHBOARD_ADMIN_PASSWORD")
    if not password and sys.stdin.isatty():
        password = getpass.getpass("Password: ")
    if not password or len(password) < 8:
        print("error: a password of at least 8 characters is required", file=sys.stderr)
        return 2

    async def create(conninfo: str) -> None:
        pool = await open_pool(conninfo, min_size=1, max_size=2)
        try:
            outcome = await ensure_admin(pool, email=args.email, password=password, name=args.name)
        finally:
            await pool.close()
        print(f"admin {args.email}: {outcome}")

    asyncio.run(_with_database(settings, create))
    return 0


def _worker(_: argparse.Namespace, settings: Settings) -> int:
    from api.worker import run_worker

    try:
        asyncio.run(run_worker(settings))
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="switchboard", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the HTTP server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.set_defaults(handler=_serve)

    worker = commands.add_parser(
        "worker", help="execute queued runs (needs DATABASE_URL and REDIS_URL)"
    )
    worker.set_defaults(handler=_worker)

    db = commands.add_parser("db", help="database maintenance")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    db_commands.add_parser("upgrade", help="apply pending migrations").set_defaults(
        handler=_db_upgrade
    )
    build = db_commands.add_parser(
        "build-pgvector",
        help="compile the embedded Postgres's pgvector for this CPU (needed for HNSW indexes "
        "on x86-64 CPUs without AVX-512; needs make and a C compiler)",
    )
    build.add_argument(
        "--source", type=Path, help="pgvector's release tarball, if already downloaded"
    )
    build.set_defaults(handler=_build_pgvector)

    vacuum = db_commands.add_parser(
        "vacuum-orphans",
        help="delete checkpoint rows whose thread no longer exists as a chat, with the count "
        "per table",
    )
    vacuum.add_argument("--dry-run", action="store_true", help="count them, delete nothing")
    vacuum.set_defaults(handler=_vacuum_orphans)

    users = commands.add_parser("users", help="user administration")
    users_commands = users.add_subparsers(dest="users_command", required=True)
    admin = users_commands.add_parser("create-admin", help="create an admin, or promote a user")
    admin.add_argument("--email", required=True)
    admin.add_argument("--password", help="defaults to $SWITCHBOARD_ADMIN_PASSWORD or a prompt")
    admin.add_argument("--name", default="Administrator")
    admin.set_defaults(handler=_create_admin)

    from api.chat_client import add_command as add_chat_command
    from api.terminal import add_commands

    add_chat_command(commands)
    add_commands(commands)
    return parser


def _python_objects_in_malloc(argv: list[str] | None) -> None:
    """Restart this process (same pid, same arguments) with ``PYTHONMALLOC=malloc`` unless the
    environment already chose an allocator.

    CPython's own allocator keeps a 1 MiB arena while one object in it lives, and neither
    ``gc`` nor ``malloc_trim`` reaches inside: after a load, the server stayed ~1.5x its
    pre-load RSS. With Python's objects in malloc's heap, the trim the server does once a load
    has ended gives the pages back (bench/BENCHMARKS.md, "Memory after a load"). It must be set
    before the interpreter starts, hence the exec; ``PYTHONMALLOC=pymalloc`` keeps CPython's
    default.
    """
    if "PYTHONMALLOC" in os.environ or not sys.platform.startswith("linux"):
        return
    sys.stdout.flush()
    sys.stderr.flush()
    arguments = sys.argv[1:] if argv is None else argv
    command = [sys.executable, "-m", "api.cli", *arguments]
    os.execve(sys.executable, command, {**os.environ, "PYTHONMALLOC": "malloc"})  # noqa: S606


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    interactive = getattr(args, "interactive", None)
    if interactive is not None:
        # ``switchboard chat``: a client of a running server too, with a session of its own.
        return int(interactive(args))
    if getattr(args, "client", None) is not None:
        # A client of a running server: none of the server's settings apply.
        from api.terminal import run

        return run(args)
    if args.handler in (_serve, _worker):
        _python_objects_in_malloc(argv)
    try:
        settings = load_settings()
    except ConfigurationError as exc:
        print(f"error: invalid configuration: {exc}", file=sys.stderr)
        return 2
    _configure_logging(settings)
    return args.handler(args, settings)


if __name__ == "__main__":
    sys.exit(main())

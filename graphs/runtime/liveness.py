"""Runs that outlive their process, and a process that ends with runs going.

Every active run heartbeats. At start and on every beat, runs left active by a dead process are
marked ``interrupted`` (at once when the process was on this host and its pid is gone, after
``stale_seconds`` without a heartbeat otherwise), and their event logs get the ``end`` their
readers wait for. On shutdown the process takes no new runs, gives active ones the grace
period, then interrupts the rest.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Mapping
from uuid import UUID

import anyio

from graphs.events import EventLogs
from storage import runs as runs_store
from storage.db import PoolType, pid_alive

log = logging.getLogger(__name__)


class Liveness:
    """Heartbeats, recovery of orphaned runs, and the drain at shutdown for one process."""

    def __init__(
        self,
        pool: PoolType,
        logs: EventLogs,
        tasks: Mapping[UUID, asyncio.Task[None]],
        on_freed: Callable[[str], Awaitable[None]],
        *,
        heartbeat_seconds: float,
        stale_seconds: float,
        shutdown_grace_seconds: float,
    ) -> None:
        self.pool = pool
        self.logs = logs
        self.tasks = tasks
        self.on_freed = on_freed
        self.heartbeat_seconds = heartbeat_seconds
        self.stale_seconds = stale_seconds
        self.shutdown_grace_seconds = shutdown_grace_seconds
        self.host = socket.gethostname()
        self.worker_id = f"{self.host}:{os.getpid()}"
        # Set by the SSE layer when the server starts shutting down (SIGTERM), or the worker.
        self.shutdown_event = anyio.Event()
        self.accepting = True
        self._helpers: list[asyncio.Task[None]] = []

    async def open(self) -> None:
        """Recover runs left behind by dead processes, then keep our own runs' heartbeat."""
        await self.recover()
        self._helpers = [
            asyncio.create_task(self._beat(), name="run-heartbeat"),
            asyncio.create_task(self._drain_on_shutdown(), name="run-drain"),
        ]

    async def recover(self) -> list[UUID]:
        """Mark interrupted the runs nobody is running any more; returns their ids."""
        async with self.pool.connection() as conn:
            dead = [
                row["id"]
                for row in await runs_store.active_on_host(conn, self.host)
                if row["worker_id"] != self.worker_id and not _worker_alive(row["worker_id"])
            ]
            rows = await runs_store.interrupt_stale(
                conn, dead_ids=dead, stale_seconds=self.stale_seconds
            )
        for row in rows:
            log.warning("run %s was left unfinished by a dead process: interrupted", row["id"])
            await self.logs.end_orphan(row["id"], "interrupted")
            await self.on_freed(str(row["chat_id"]))
        return [row["id"] for row in rows]

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_seconds)
            try:
                async with self.pool.connection() as conn:
                    await runs_store.heartbeat(conn, list(self.tasks))
                await self.recover()
            except Exception:
                log.exception("run heartbeat failed")

    async def _drain_on_shutdown(self) -> None:
        await self.shutdown_event.wait()
        await self.drain()

    async def drain(self) -> None:
        """Stop taking runs, give active ones the grace period, then interrupt the rest.

        Interrupted runs still write their ``end`` event, so every open stream ends cleanly.
        """
        self.accepting = False
        tasks = list(self.tasks.values())
        if tasks:
            log.info(
                "shutting down: waiting up to %ss for %d run(s)",
                self.shutdown_grace_seconds,
                len(tasks),
            )
            _, pending = await asyncio.wait(tasks, timeout=self.shutdown_grace_seconds)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def aclose(self) -> None:
        await self.drain()
        for task in self._helpers:
            task.cancel()
        await asyncio.gather(*self._helpers, return_exceptions=True)


def _worker_alive(worker_id: str | None) -> bool:
    """Whether the process a ``host:pid`` worker id names (on this host) still exists."""
    pid = (worker_id or "").rpartition(":")[2]
    return pid.isdigit() and pid_alive(int(pid))

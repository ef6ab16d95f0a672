"""Runs that outlive their process, and a process that ends with runs going.

Every active run heartbeats. At start and on every beat, runs left active by a dead process are
marked ``interrupted`` (at once when the process was on this host and its pid is gone, after
``stale_seconds`` without a heartbeat otherwise), and their event logs get the ``end`` their
readers wait for. On shutdown the process takes no new runs, gives active ones the grace
period, then interrupts the rest.

Every ``sweep_seconds`` finished runs' logs are expired and the caches forget what has not
been used for a while (``forget_unused``), busy or idle. Once a sweep has freed something and
no run is active (or at most every ``RELEASE_BUSY_SECONDS`` while busy), the process collects
garbage and asks glibc to hand free pages back to the OS (``malloc_trim``). Measured in
bench/BENCHMARKS.md ("Soak"): the trim reaches Python's objects only when they live in malloc's
heap (``PYTHONMALLOC=malloc``, which ``switchboard serve`` sets), and a load's heap comes back
only once the long-lived objects it left among its short-lived ones (cached checkpoints) go.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
import os
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from uuid import UUID

import anyio

from graphs.events import EventLogs
from storage import runs as runs_store
from storage.db import PoolType, pid_alive

log = logging.getLogger(__name__)

# While runs are active, memory is given back at most this often (the heap is reused anyway).
RELEASE_BUSY_SECONDS = 60.0


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
        sweep_seconds: float = 5.0,
        release_memory: bool = True,
        forget_unused: Callable[[], int] = lambda: 0,
    ) -> None:
        self.pool = pool
        self.logs = logs
        self.tasks = tasks
        self.on_freed = on_freed
        self.heartbeat_seconds = heartbeat_seconds
        self.stale_seconds = stale_seconds
        self.shutdown_grace_seconds = shutdown_grace_seconds
        self.sweep_seconds = sweep_seconds
        self.release_memory = release_memory
        self.forget_unused = forget_unused
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
        if self.sweep_seconds > 0:
            self._helpers.append(asyncio.create_task(self._sweep(), name="run-log-sweep"))

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

    async def _sweep(self) -> None:
        freed = 0  # logs packed or dropped, cache entries forgotten, since memory was given back
        released = time.monotonic()
        while True:
            await asyncio.sleep(self.sweep_seconds)
            try:
                swept = self.logs.sweep()
                forgotten = self.forget_unused()
                freed += swept.packed + swept.dropped + forgotten
                quiet = not self.tasks or time.monotonic() - released >= RELEASE_BUSY_SECONDS
                if freed and quiet and self.release_memory:
                    release_memory(f"{freed} run log(s) or cache entries let go")
                    freed, released = 0, time.monotonic()
            except Exception:
                log.exception("run log sweep failed")

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


def release_memory(reason: str = "") -> int:
    """Collect garbage, then give the heap's free pages back to the OS; returns what the
    collector found unreachable.

    Startup's objects are frozen (``api.bootstrap.settle_heap``), so the collection walks only
    what the process allocated since: a few milliseconds once a load has ended.
    """
    started, before = time.perf_counter(), _rss_mib()
    found = gc.collect()
    trimmed = _trim()
    log.info(
        "released memory (%s): %d unreachable objects, trim %s, RSS %.1f -> %.1f MiB in %.0f ms",
        reason, found, trimmed, before, _rss_mib(), (time.perf_counter() - started) * 1000,
    )  # fmt: skip
    return found


def _malloc_trim() -> Callable[[], int] | None:
    """glibc's ``malloc_trim(0)``; None where there is none (macOS, musl, Windows)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):  # None (or ValueError) off glibc
            return None
        trim = ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError, ValueError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return lambda: int(trim(0))


_TRIM = _malloc_trim()


def _trim() -> bool | None:
    """Whether ``malloc_trim`` returned memory; None without glibc."""
    return None if _TRIM is None else bool(_TRIM())


def _rss_mib() -> float:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return float("nan")


def _worker_alive(worker_id: str | None) -> bool:
    """Whether the process a ``host:pid`` worker id names (on this host) still exists."""
    pid = (worker_id or "").rpartition(":")[2]
    return pid.isdigit() and pid_alive(int(pid))

"""Replays in the background: one task per replay sends its turns, one at a time, as ordinary
runs of its chat (``Runtime.start``, the path of ``POST /chats/{id}/messages``), so each is
queued, streamed, cancellable and counted like any other run.

A replay survives its process. Every API process heartbeats the replays it drives and, at
start and on every beat, adopts those whose process is gone (its pid is dead on this host, its
heartbeat is older than ``stale_seconds``, or it let go of them at shutdown) and resumes them
where they were. Nothing is sent twice: each message keeps its original's id, so a turn whose
run was cut short is found in the thread and answered again on a branch just before it (as a
regenerate does), and a run that ended after its process died is only read. A replay resumed
``MAX_RESUMES`` times after crashes without a turn ending in between is marked
``interrupted`` rather than taking its next process down too.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import TYPE_CHECKING
from uuid import UUID

from api.errors import AppError, NotFound, quota_detail
from api.services.comparison import answer_after, similarity
from api.services.forks import start_point
from api.services.messages import ready
from graphs.runtime import ChatGone, ShuttingDown
from storage import replays as replays_store
from storage import runs as runs_store
from storage.db import pid_alive
from storage.quotas import QuotaExceeded
from storage.rows import ReplayRow, ReplayTurnRow, RunRow
from storage.types import ACTIVE, REPLAY_ACTIVE

if TYPE_CHECKING:
    from api.state import AppState

log = logging.getLogger(__name__)

MAX_RESUMES = 3
CHAT_GONE = "The replay's chat was deleted"


class ReplayDriver:
    """The replays this process drives: their tasks, their heartbeat, adopting orphans."""

    def __init__(self, state: AppState) -> None:
        self.state = state
        self.tasks: dict[UUID, asyncio.Task[None]] = {}
        self._beat: asyncio.Task[None] | None = None

    @property
    def worker_id(self) -> str:
        # The runtime's: a replay and its runs name the same process.
        return self.state.runs.worker_id

    async def open(self) -> None:
        await self.adopt()
        self._beat = asyncio.create_task(self._heartbeat(), name="replay-heartbeat")

    async def aclose(self) -> None:
        """Stop driving (the runs in flight are the runtime's to drain) and let go of the
        replays, so whichever process starts next resumes them at once."""
        if self._beat is not None:
            self._beat.cancel()
        tasks = dict(self.tasks)
        for task in tasks.values():
            task.cancel()
        await asyncio.gather(*tasks.values(), *filter(None, [self._beat]), return_exceptions=True)
        try:
            async with self.state.pool.connection() as conn:
                await replays_store.release(conn, list(tasks), self.worker_id)
        except Exception:
            log.warning("could not let go of %d replay(s); they are adopted when stale", len(tasks))

    def launch(self, replay_id: UUID) -> None:
        if replay_id in self.tasks:
            return
        task = asyncio.create_task(self._drive(replay_id), name=f"replay-{replay_id}")
        self.tasks[replay_id] = task
        task.add_done_callback(lambda _: self.tasks.pop(replay_id, None))

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.state.settings.heartbeat_seconds)
            try:
                async with self.state.pool.connection() as conn:
                    await replays_store.heartbeat(conn, list(self.tasks), self.worker_id)
                await self.adopt()
            except Exception:
                log.exception("replay heartbeat failed")

    async def adopt(self) -> list[UUID]:
        """Take over and resume the replays nobody drives any more; returns their ids."""
        if not self.state.runs.accepting:
            return []
        host = socket.gethostname()
        async with self.state.pool.connection() as conn:
            dead = [
                owner
                for owner in await replays_store.owners_on_host(conn, host)
                if owner != self.worker_id and not _alive(owner)
            ]
            adopted = await replays_store.adopt(
                conn, self.worker_id, dead=dead, stale_seconds=self.state.settings.stale_seconds
            )
            for row in adopted:
                if row["resumes"] > MAX_RESUMES:
                    log.warning("replay %s keeps losing its process: interrupted", row["id"])
                    error = f"Its process stopped {row['resumes']} times before a turn ended"
                    await replays_store.finish(conn, row["id"], "interrupted", error)
        resumed = [row["id"] for row in adopted if row["resumes"] <= MAX_RESUMES]
        for replay_id in resumed:
            log.info("resuming replay %s", replay_id)
            self.launch(replay_id)
        return resumed

    async def _drive(self, replay_id: UUID) -> None:
        try:
            await self._turns(replay_id)
        except ShuttingDown:
            pass  # resumed by the next process
        except ChatGone:
            # Deleted between our look at it and the run's insert.
            await self._fail(replay_id, CHAT_GONE)
        except AppError as exc:
            # The chat cannot take the next message: deleted, archived, its agent retired.
            detail = CHAT_GONE if isinstance(exc, NotFound) else exc.detail
            await self._fail(replay_id, detail)
        except QuotaExceeded as exc:
            # The turns so far stay; the replay says which quota stopped it.
            await self._fail(replay_id, quota_detail(exc))
        except Exception:
            log.exception("replay %s failed", replay_id)
            await self._fail(replay_id, "The replay stopped on an unexpected error")

    async def _fail(self, replay_id: UUID, error: str) -> None:
        try:
            async with self.state.pool.connection() as conn:
                await replays_store.finish(conn, replay_id, "failed", error)
        except Exception:
            log.warning("could not mark replay %s failed; it is adopted when stale", replay_id)

    async def _turns(self, replay_id: UUID) -> None:
        """Send the turns not answered yet, one after the other, until none is left."""
        while True:
            async with self.state.pool.connection() as conn:
                replay = await replays_store.get(conn, replay_id)
                if replay is None or replay["status"] not in REPLAY_ACTIVE:
                    return
                turn = await replays_store.next_turn(conn, replay_id)
                if turn is None:
                    await replays_store.finish(conn, replay_id, "done")
                    return
            target = replay["target_chat_id"]
            if target is None:
                await self._fail(replay_id, CHAT_GONE)
                return
            # Runs still going in the chat (a run of the process that died, which recovery
            # ends; a message of the user's) decide what the thread holds: let them end, then
            # look again (the replay may have been cancelled meanwhile).
            if await self._chat_busy(target):
                continue
            if turn["status"] == "running" and turn["run_id"] is not None:
                async with self.state.pool.connection() as conn:
                    run = await runs_store.get(conn, turn["run_id"])
                if run is not None and run["status"] == "success":
                    # It ended after its process died: only its answer is left to read.
                    await self.record(replay, turn, run)
                    continue
            started = await self._start(replay, turn, target)
            if started is None:
                return
            run = await self._wait(started["id"])
            if not self.state.runs.accepting:
                # Shutting down: a run cut short by the drain is answered again after the
                # restart, not recorded as interrupted.
                return
            if run is not None:
                await self.record(replay, turn, run)

    async def _start(self, replay: ReplayRow, turn: ReplayTurnRow, target: UUID) -> RunRow | None:
        """Start the turn's run; ``None`` when the replay ended meanwhile (the run is stopped)."""
        user_id = replay["user_id"]
        _, chat, agent, profile = await ready(self.state, user_id, target)
        threads = self.state.runs.threads
        tip = await threads.snapshot(target)
        held = (tip.values or {}).get("messages", []) if tip is not None else []
        checkpoint_id = None
        if any(message.id == turn["message_id"] for message in held):
            # Sent before, and its run cut short: answered again from just before it.
            start = await start_point(threads, target, tip, turn["message_id"])
            checkpoint_id = start.config["configurable"]["checkpoint_id"]
        run, _ = await self.state.runs.start(
            chat=chat, agent=agent, user_id=user_id, content=turn["content"], profile=profile,
            strategy="enqueue", checkpoint_id=checkpoint_id, message_id=turn["message_id"],
            model_name=replay["model_name"], parts=turn["parts"],
        )  # fmt: skip
        position = turn["position"]
        async with self.state.pool.connection() as conn:
            going = await replays_store.turn_started(conn, replay["id"], position, run["id"])
        if not going:
            # Cancelled between our last look and this run: it must not answer.
            await self.state.runs.stop(run["id"], "cancelled", wait=None)
            return None
        return run

    async def _wait(self, run_id: UUID) -> RunRow | None:
        """The run once it has ended (``None`` if its record is gone), read from its events
        when they are at hand, else from its record every second."""
        while True:
            async with self.state.pool.connection() as conn:
                run = await runs_store.get(conn, run_id)
            if run is None or run["status"] not in ACTIVE:
                return run
            source = await self.state.runs.events(run_id, active=True)
            if source is not None:
                async for _ in source.read_batches():
                    pass
                async with self.state.pool.connection() as conn:
                    run = await runs_store.get(conn, run_id)
                if run is None or run["status"] not in ACTIVE:
                    return run
            # A run of a process that died, until recovery ends it (or an end not recorded).
            await asyncio.sleep(1)

    async def _chat_busy(self, chat_id: UUID) -> bool:
        """Wait for the chat's active runs to end; whether it had any."""
        async with self.state.pool.connection() as conn:
            active = await runs_store.active_run_ids(conn, chat_id)
        for run_id in active:
            await self._wait(run_id)
        return bool(active)

    async def record(self, replay: ReplayRow, turn: ReplayTurnRow, run: RunRow) -> None:
        """Record how the turn's run ended and what it answered (once: whoever sees the end
        first, this driver or a cancel, records it; the other changes nothing)."""
        if run["status"] in ACTIVE:
            return
        answer = None
        if replay["target_chat_id"] is not None:
            messages = await self.state.runs.threads.messages(replay["target_chat_id"])
            answer = answer_after(messages, turn["message_id"])
        score = None
        if answer is not None and run["status"] == "success":
            score = similarity(turn["original"]["content"], answer["content"])
        async with self.state.pool.connection() as conn:
            await replays_store.turn_ended(
                conn, replay["id"], turn["position"], status=run["status"], answer=answer,
                similarity=score,
            )  # fmt: skip


def _alive(worker_id: str) -> bool:
    """Whether the process a ``host:pid`` worker id of this host names still exists."""
    pid = worker_id.rpartition(":")[2]
    return pid.isdigit() and pid_alive(int(pid))

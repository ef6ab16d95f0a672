"""One run's lifecycle: drive the graph, tell the run's writer what it streams, record the end.

A run is a background task; the HTTP request that started it only reads its log, so a slow or
vanished client never slows or stops it. The input decides how the graph is called (a native
message, or an Agent Protocol request with its command, checkpoint and stream modes); the
writer the API supplied for it decides which events that makes. Every run counts its usage and
messages as it streams and ends the same way (``_finish``), shielded so a cancelled run still
records its end.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langgraph.types import Command

from graphs.events import EventLogs, RunLog
from graphs.runtime import logged, streams
from graphs.runtime.inputs import NativeInput, ProtocolInput, RunInput, stamp_messages
from graphs.runtime.threads import Threads
from graphs.runtime.types import RunContext, RunObserver, WriterFactory
from graphs.spec import AgentContext, AgentSpec
from storage import chats as chats_store
from storage import runs as runs_store
from storage.db import PoolType
from storage.rows import RunRow

log = logging.getLogger(__name__)


class Executor:
    """Runs in this process: their tasks, and how each one is driven to its end.

    ``wait_turn`` blocks a queued run until it may start; ``on_ended`` is told the chat of every
    run that ends (both set by the scheduler). ``observer`` is told of each run's steps.
    """

    def __init__(
        self,
        pool: PoolType,
        threads: Threads,
        logs: EventLogs,
        writers: WriterFactory,
        run_timeout_seconds: float = 0,
    ) -> None:
        self.pool = pool
        self.run_timeout_seconds = run_timeout_seconds
        self.threads = threads
        self.logs = logs
        self.writers = writers
        self.tasks: dict[UUID, asyncio.Task[None]] = {}
        self._stopped: dict[UUID, str] = {}
        self.wait_turn: Callable[[UUID, str], Awaitable[None]] | None = None
        self.on_ended: Callable[[str], Awaitable[None]] | None = None
        # Told of every run of this process that ends, once its end is recorded.
        self.ended: list[Callable[[RunRow], None]] = []
        # Handed to every run's context, for the knowledge_search tool (set by the runtime).
        self.knowledge: Any = None
        self.observer = RunObserver()

    def context(
        self,
        run: RunRow,
        spec: AgentSpec,
        run_input: RunInput,
        context: AgentContext,
        needs_closing: bool | None = None,
    ) -> RunContext:
        """A new run's working set, with a fresh log and the writer for its kind of input."""
        run_log = self.logs.create(run["id"])
        writer = self.writers(run_log, run, run_input)
        # The agent and the knowledge search come from the server, never from the run's input.
        context = replace(context, agent_id=str(spec.id), knowledge=self.knowledge)
        return RunContext(run, spec, run_log, run_input, writer, context, needs_closing)

    def launch(self, ctx: RunContext) -> RunLog:
        """Start the run's task; its log (already holding the first event) is returned."""
        ctx.writer.opened()
        task = asyncio.create_task(logged.run(ctx, self._execute(ctx)), name=f"run-{ctx.run_id}")
        self.tasks[ctx.run_id] = task
        task.add_done_callback(lambda _: self.tasks.pop(ctx.run_id, None))
        return ctx.log

    def cancel(self, run_id: UUID, status: str = "cancelled") -> bool:
        """Stop a run of this process, ending it with ``status``; ``False`` if not running here."""
        task = self.tasks.get(run_id)
        if task is None or task.done():
            return False
        self._stopped[run_id] = status
        task.cancel()
        return True

    async def _execute(self, ctx: RunContext) -> None:
        ctx.tally.exact = ctx.run["multitask_strategy"] != "rollback"
        try:
            if ctx.run["status"] == "pending" and self.wait_turn is not None:
                await self.wait_turn(ctx.run_id, ctx.chat_id)
            self.observer.started(ctx)
            async with asyncio.timeout(self.run_timeout_seconds or None):
                await self._stream(ctx)
        except TimeoutError:
            log.warning("run %s stopped after %s s", ctx.run_id, self.run_timeout_seconds)
            ctx.status, ctx.error = "error", "RunTimeout"
            ctx.writer.failed("RunTimeout")
        except asyncio.CancelledError:
            ctx.status = self._stopped.pop(ctx.run_id, "interrupted")  # type: ignore[assignment]
            ctx.error = None if ctx.status == "cancelled" else "Stopped before it finished"
            raise
        except Exception as exc:
            # The reason goes to the log, never to the client: it may hold internals.
            log.exception("run %s failed", ctx.run_id)
            ctx.status, ctx.error = "error", type(exc).__name__
            ctx.writer.failed(type(exc).__name__)
        finally:
            await asyncio.shield(self._finish(ctx))

    async def _stream(self, ctx: RunContext) -> None:
        """Call the graph as the input asks and hand every part to the run's writer."""
        graph = await self.threads.run_graph(ctx.spec)
        graph_input, options = await self._call(ctx)
        writer, subgraphs = ctx.writer, bool(options.get("subgraphs"))
        options["stream_mode"] = sorted({*writer.modes, "updates", "checkpoints"})

        def take(part: Any) -> None:
            namespace, (mode, data) = (part[0], part[1:]) if subgraphs else ((), part)
            if mode == "checkpoints" and not namespace:
                self.threads.remember(data)
            elif mode == "updates" and not namespace:
                ctx.tally.paused |= streams.pauses(data)
                ctx.tally.approval |= streams.asks_approval(data)
                for message in streams.updated_messages(data):
                    ctx.tally.added += 1
                    if isinstance(message, AIMessage):
                        streams.add_usage(ctx.usage, message)
            if mode == "messages" and ctx.first_token_at is None:
                self.observer.first_token(ctx)
            if mode in writer.modes:
                writer.part(tuple(namespace), mode, data)

        if writer.events:
            async for event in graph.astream_events(graph_input, version="v2", **options):
                writer.event(event)
                if event["event"] == "on_chain_stream" and not event.get("parent_ids"):
                    take(event["data"]["chunk"])
        else:
            async for part in graph.astream(graph_input, **options):
                take(part)

    async def _call(self, ctx: RunContext) -> tuple[Any, dict[str, Any]]:
        """The graph's input and ``astream`` options for this run's input."""
        configurable: dict[str, Any] = {"thread_id": ctx.chat_id}
        # Stamped on every checkpoint, so a rollback can find what this run wrote.
        metadata: dict[str, Any] = {"run_id": str(ctx.run_id)}
        if isinstance(ctx.input, NativeInput):
            config = {"configurable": configurable, "run_id": ctx.run_id, "metadata": metadata}
            if ctx.input.resume is not None:
                # Decisions on tool calls waiting for approval: the paused turn goes on.
                ctx.tally.exact = False
                return Command(resume=ctx.input.resume), {"config": config, "context": ctx.context}
            human = HumanMessage(
                content=ctx.input.parts or ctx.input.content,  # type: ignore[arg-type]
                id=ctx.input.message_id or str(uuid.uuid4()),
                response_metadata={"created_at": datetime.now(UTC).isoformat()},
            )
            if ctx.input.checkpoint_id:
                # A branch: what the thread holds afterwards is counted by reading it.
                configurable["checkpoint_id"] = ctx.input.checkpoint_id
                ctx.tally.exact = False
            # Thread order: answers to a stopped run's tool calls, then the new message.
            messages: list[BaseMessage] = [*await self._closing_messages(ctx), human]
            ctx.tally.added += len(messages)
            ctx.writer.added(messages)
            return {"messages": messages}, {"config": config, "context": ctx.context}
        request: ProtocolInput = ctx.input
        graph_input: Any
        if request.command or request.checkpoint_id:
            # A command may rewrite the state, a fork starts elsewhere: count by reading.
            ctx.tally.exact = False
        if request.command:
            command: Mapping[str, Any] = request.command
            graph_input = Command(
                resume=command.get("resume"),
                update=command.get("update"),
                goto=command.get("goto") or (),
            )
        else:
            graph_input = stamp_messages(request.input)
            if isinstance(graph_input, dict) and graph_input.get("messages"):
                closing = await self._closing_messages(ctx)
                graph_input["messages"] = [*closing, *graph_input["messages"]]
                ctx.tally.added += len(graph_input["messages"])
                ctx.writer.added(closing)
        if request.checkpoint_id:
            configurable["checkpoint_id"] = request.checkpoint_id
        config = {
            **(request.config or {}),
            "configurable": configurable,
            "run_id": ctx.run_id,
            "metadata": {
                **request.metadata,
                **metadata,
                "thread_id": ctx.chat_id,
                "assistant_id": str(ctx.spec.id),
                "graph_id": ctx.spec.slug,
                "run_attempt": 1,
            },
        }
        return graph_input, {
            "config": config,
            "context": ctx.context,
            "subgraphs": request.stream_subgraphs,
            "interrupt_before": request.interrupt_before,
            "interrupt_after": request.interrupt_after,
        }

    async def _finish(self, ctx: RunContext) -> None:
        try:
            content = streams.input_text(ctx.input)
            # Counted as they streamed on the common path; read back from the thread otherwise.
            counted = ctx.status == "success" and ctx.tally.exact
            paused, count = ctx.tally.paused, None
            if not counted:
                count, paused = await self.threads.summary(ctx.chat_id)
            thread_status = "error" if ctx.status == "error" else "idle"
            if paused and ctx.status == "success":
                thread_status = "interrupted"
                if ctx.tally.approval:
                    # Waiting for a decision on its tool calls: the run ends, its work does not.
                    ctx.status = "interrupted"
            async with self.pool.connection() as conn:
                await runs_store.finish_with_summary(
                    conn, ctx.run_id, status=ctx.status, error=ctx.error, usage=ctx.usage,
                    added=ctx.tally.added, message_count=count,
                    title=streams.title_from(content) or None, thread_status=thread_status,
                )  # fmt: skip
        except Exception:
            log.exception("could not record the end of run %s", ctx.run_id)
        finally:
            ctx.log.append("end", {"status": ctx.status, "usage": ctx.usage})
            ctx.log.close()
            self.tell_ended(ctx.run)
            self.observer.ended(ctx)
            if self.on_ended is not None:
                await self.on_ended(ctx.chat_id)

    def tell_ended(self, run: RunRow) -> None:
        """Tell ``ended``'s callbacks (``Runtime.when_run_ends``) that ``run`` has ended."""
        for callback in self.ended:
            callback(run)

    async def _closing_messages(self, ctx: RunContext) -> list[ToolMessage]:
        """Answers for tool calls a stopped run left unanswered, to add before the new message.

        A run cancelled or interrupted while a tool ran leaves an agent message whose tool calls
        have no result; providers such as OpenAI reject such a history, so each gets an error
        result saying the tool never finished. Reading the thread costs as much as the thread is
        long, so it is only read when the last run was stopped or the thread waits
        (``needs_closing``; asked here when not known yet).
        """
        start = ctx.input.checkpoint_id if isinstance(ctx.input, NativeInput) else None
        if start is not None:
            # A branch starts from an older state, which the chat's last run says nothing of.
            snapshot = await self.threads.snapshot(ctx.chat_id, start)
            messages: list[BaseMessage] = snapshot.values.get("messages", []) if snapshot else []
        else:
            needs_closing = ctx.needs_closing
            if needs_closing is None:
                async with self.pool.connection() as conn:
                    needs_closing = await chats_store.needs_closing(conn, ctx.chat_id)
            if not needs_closing:
                return []
            messages = await self.threads.messages(ctx.chat_id)
        last_ai = next(
            (i for i in range(len(messages) - 1, -1, -1) if isinstance(messages[i], AIMessage)),
            None,
        )
        if last_ai is None:
            return []
        answered = {m.tool_call_id for m in messages[last_ai + 1 :] if isinstance(m, ToolMessage)}
        now = datetime.now(UTC).isoformat()
        return [
            ToolMessage(
                content="Error: this tool call was stopped before it returned a result.",
                tool_call_id=call["id"],
                name=call["name"],
                status="error",
                id=str(uuid.uuid4()),
                response_metadata={"created_at": now},
            )
            for call in messages[last_ai].tool_calls  # type: ignore[attr-defined]
            if call["id"] not in answered
        ]

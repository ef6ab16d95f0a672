"""One run's lifecycle: stream the graph, write every event to the run's log, record the end.

A run is a background task; the HTTP request that started it only reads its log, so a slow or
vanished client never slows or stops it. Two ways to drive the graph, one per kind of input:
a native message (``message``/``token``/``tool_call``/``tool_result`` events) and an Agent
Protocol request (the stream modes it asked for). Both count usage and messages as they stream
and end the same way (``_finish``), shielded so a cancelled run still records its end.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    ToolMessage,
)
from langgraph.types import Command

from graphs.events import EventLogs, RunLog
from graphs.messages import to_api
from graphs.protocol import Translator, graph_modes, jsonable, stamp_messages
from graphs.runtime.streams import (
    add_usage,
    first_event,
    first_text,
    pauses,
    title_from,
    updated_messages,
)
from graphs.runtime.threads import Threads
from graphs.runtime.types import RunContext
from storage import chats as chats_store
from storage import runs as runs_store
from storage.db import PoolType

log = logging.getLogger(__name__)


class Executor:
    """Runs in this process: their tasks, and how each one is driven to its end.

    ``wait_turn`` blocks a queued run until it may start; ``on_ended`` is told the chat of every
    run that ends (both set by the scheduler).
    """

    def __init__(self, pool: PoolType, threads: Threads, logs: EventLogs) -> None:
        self.pool = pool
        self.threads = threads
        self.logs = logs
        self.tasks: dict[UUID, asyncio.Task[None]] = {}
        self._stopped: dict[UUID, str] = {}
        self.wait_turn: Callable[[UUID, str], Awaitable[None]] | None = None
        self.on_ended: Callable[[str], Awaitable[None]] | None = None

    def launch(self, ctx: RunContext) -> RunLog:
        """Start the run's task; its log (already holding the first event) is returned."""
        ctx.log.append(*first_event(ctx.run))
        task = asyncio.create_task(self._execute(ctx), name=f"run-{ctx.run_id}")
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
            graph = self.threads.graphs.get(ctx.spec)
            await (self._protocol(ctx, graph) if ctx.protocol else self._native(ctx, graph))
        except asyncio.CancelledError:
            ctx.status = self._stopped.pop(ctx.run_id, "interrupted")  # type: ignore[assignment]
            ctx.error = None if ctx.status == "cancelled" else "Stopped before it finished"
            raise
        except Exception as exc:
            # The reason goes to the log, never to the client: it may hold internals.
            log.exception("run %s failed", ctx.run_id)
            ctx.status, ctx.error = "error", type(exc).__name__
            message = "The agent could not answer. Try again."
            if ctx.protocol:
                ctx.log.append("error", {"error": type(exc).__name__, "message": message})
            else:
                ctx.log.append("error", {"code": "run_failed", "message": message})
        finally:
            await asyncio.shield(self._finish(ctx))

    async def _native(self, ctx: RunContext, graph: Any) -> None:
        """Answer one message: the user's message, tokens, tool rounds, the answer."""
        human = HumanMessage(
            content=ctx.payload.get("content") or "",
            id=str(uuid.uuid4()),
            response_metadata={"created_at": datetime.now(UTC).isoformat()},
        )
        # Thread order: answers to a stopped run's tool calls, then the new message.
        closing = await self._closing_messages(ctx)
        ctx.tally.added += len(closing) + 1
        message: BaseMessage
        for message in closing:
            self._emit_message(ctx, message)
        ctx.log.append("message", to_api(human, ctx.chat_id))
        config = {
            "configurable": {"thread_id": ctx.chat_id},
            "run_id": ctx.run_id,
            # Stamped on every checkpoint, so a rollback can find what this run wrote.
            "metadata": {"run_id": str(ctx.run_id)},
        }
        async for mode, part in graph.astream(
            {"messages": [*closing, human]},
            config=config,
            context=ctx.context,
            stream_mode=["messages", "updates", "checkpoints"],
        ):
            if mode == "messages":
                chunk, _ = part
                if isinstance(chunk, AIMessageChunk) and (delta := chunk.text):
                    ctx.log.append("token", {"message_id": chunk.id, "delta": delta})
            elif mode == "checkpoints":
                self.threads.remember(part)
            else:
                ctx.tally.paused |= pauses(part)
                for message in updated_messages(part):
                    ctx.tally.added += 1
                    self._emit_message(ctx, message)

    async def _protocol(self, ctx: RunContext, graph: Any) -> None:
        """Run the graph as the Agent Protocol asks, writing the events it asked for."""
        payload = ctx.payload
        command = payload.get("command")
        if command or payload.get("checkpoint_id"):
            # A command may rewrite the state, a fork starts elsewhere: count by reading.
            ctx.tally.exact = False
        graph_input: Any
        if command:
            graph_input = Command(
                resume=command.get("resume"),
                update=command.get("update"),
                goto=command.get("goto") or (),
            )
        else:
            graph_input = stamp_messages(payload.get("input"))
            if isinstance(graph_input, dict) and graph_input.get("messages"):
                closing = await self._closing_messages(ctx)
                graph_input["messages"] = [*closing, *graph_input["messages"]]
                ctx.tally.added += len(graph_input["messages"])
        configurable: dict[str, Any] = {"thread_id": ctx.chat_id}
        if payload.get("checkpoint_id"):
            configurable["checkpoint_id"] = payload["checkpoint_id"]
        config: dict[str, Any] = {
            **(payload.get("config") or {}),
            "configurable": configurable,
            "run_id": ctx.run_id,
            "metadata": {
                **(payload.get("metadata") or {}),
                "run_id": str(ctx.run_id),
                "thread_id": ctx.chat_id,
                "assistant_id": str(ctx.spec.id),
                "graph_id": ctx.spec.slug,
                "run_attempt": 1,
            },
        }
        requested = payload.get("stream_mode") or ["values"]
        subgraphs = bool(payload.get("stream_subgraphs"))
        translator = Translator(requested)
        options = {
            "config": config,
            "context": ctx.context,
            "stream_mode": [*graph_modes(requested), "checkpoints"],
            "subgraphs": subgraphs,
            "interrupt_before": payload.get("interrupt_before"),
            "interrupt_after": payload.get("interrupt_after"),
        }

        def emit(part: Any) -> None:
            namespace, (mode, data) = (part[0], part[1:]) if subgraphs else ((), part)
            if mode == "checkpoints":
                if not namespace:
                    self.threads.remember(data)
                return
            if mode == "updates" and not namespace:
                ctx.tally.paused |= pauses(data)
                for message in updated_messages(data):
                    ctx.tally.added += 1
                    if isinstance(message, AIMessage):
                        add_usage(ctx.usage, message)
            for name, event_data, text in translator.feed(mode, data, tuple(namespace)):
                ctx.log.append(name, event_data, text)

        if "events" in requested:
            async for event in graph.astream_events(graph_input, version="v2", **options):
                ctx.log.append("events", jsonable(event))
                if event["event"] == "on_chain_stream" and not event.get("parent_ids"):
                    emit(event["data"]["chunk"])
        else:
            async for part in graph.astream(graph_input, **options):
                emit(part)

    def _emit_message(self, ctx: RunContext, message: BaseMessage) -> None:
        if isinstance(message, AIMessage):
            add_usage(ctx.usage, message)
            for call in message.tool_calls:
                ctx.log.append(
                    "tool_call",
                    {
                        "message_id": message.id,
                        "tool_call_id": call["id"],
                        "name": call["name"],
                        "args": call["args"],
                    },
                )
        elif isinstance(message, ToolMessage):
            ctx.log.append(
                "tool_result",
                {
                    "tool_call_id": message.tool_call_id,
                    "name": message.name,
                    "content": message.text,
                    "is_error": message.status == "error",
                },
            )
        ctx.log.append("message", to_api(message, ctx.chat_id))

    async def _finish(self, ctx: RunContext) -> None:
        try:
            content = ctx.payload.get("content") or first_text(ctx.payload.get("input"))
            # Counted as they streamed on the common path; read back from the thread otherwise.
            counted = ctx.status == "success" and ctx.tally.exact
            paused, count = ctx.tally.paused, None
            if not counted:
                count, paused = await self.threads.summary(ctx.chat_id)
            thread_status = "error" if ctx.status == "error" else "idle"
            if paused and ctx.status == "success":
                thread_status = "interrupted"
            async with self.pool.connection() as conn:
                await runs_store.finish_with_summary(
                    conn, ctx.run_id, status=ctx.status, error=ctx.error, usage=ctx.usage,
                    added=ctx.tally.added, message_count=count, title=title_from(content) or None,
                    thread_status=thread_status,
                )  # fmt: skip
        except Exception:
            log.exception("could not record the end of run %s", ctx.run_id)
        finally:
            ctx.log.append("end", {"status": ctx.status, "usage": ctx.usage})
            ctx.log.close()
            if self.on_ended is not None:
                await self.on_ended(ctx.chat_id)

    async def _closing_messages(self, ctx: RunContext) -> list[ToolMessage]:
        """Answers for tool calls a stopped run left unanswered, to add before the new message.

        A run cancelled or interrupted while a tool ran leaves an agent message whose tool calls
        have no result; providers such as OpenAI reject such a history, so each gets an error
        result saying the tool never finished. Reading the thread costs as much as the thread is
        long, so it is only read when the last run was stopped or the thread waits
        (``needs_closing``; asked here when not known yet).
        """
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

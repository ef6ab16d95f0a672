"""The native API's wire format: the Message shape, and a native run's events.

A message is ``{id, chat_id, sender: user|agent|tool, content, metadata, created_at}`` (and
``parts`` for a message sent in parts, with images); the
checkpoint is the only copy of a conversation, and this is a view of it. A native run's log:

    ``run`` {run_id, chat_id, agent_id} first · ``message`` each message added to the thread ·
    ``token`` {message_id, delta} · ``tool_call`` {message_id, tool_call_id, name, args} ·
    ``tool_result`` {tool_call_id, name, content, is_error} · ``approval_required`` {run_id,
    tool_calls: [{id, name, args}]} when the run pauses for decisions on its tool calls ·
    ``error`` {code, message} · ``end`` {status, usage} last (written by the runtime).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    ToolMessage,
)

from graphs import approval, images
from graphs.events import RunLog
from graphs.runtime.streams import pauses, updated_messages, usage_of

SENDERS = {"human": "user", "ai": "agent", "tool": "tool"}
FAILED = "The agent could not answer. Try again."


def to_api(message: BaseMessage, chat_id: str) -> dict[str, Any]:
    meta = message.response_metadata or {}
    metadata: dict[str, Any] = {}
    if isinstance(message, AIMessage):
        metadata["model"] = meta.get("model") or meta.get("model_name")
        metadata["usage"] = usage_of(message)
        metadata["latency_ms"] = meta.get("latency_ms")
        metadata["finish_reason"] = meta.get("finish_reason")
        metadata["tool_calls"] = [
            {"id": call["id"], "name": call["name"], "args": call["args"]}
            for call in message.tool_calls
        ]
        # The owner's vote, filled in on reads of the chat (a new answer has none).
        metadata["feedback"] = None
        # The passages of the knowledge searches the answer ending a turn drew on.
        if citations := meta.get("citations"):
            metadata["citations"] = citations
    elif isinstance(message, ToolMessage):
        metadata["tool_call_id"] = message.tool_call_id
        metadata["name"] = message.name
        metadata["is_error"] = message.status == "error"
    out: dict[str, Any] = {
        "id": message.id,
        "chat_id": chat_id,
        "sender": SENDERS.get(message.type, message.type),
        "content": message.text,
        "metadata": metadata,
        "created_at": meta.get("created_at"),
    }
    if isinstance(message.content, list) and images.has_images(message.content):
        shown = parts(message.content)
        out["parts"] = shown
        # Its text parts one per line, as the message was titled (LangChain's ``.text`` runs
        # them together).
        out["content"] = "\n".join(part["text"] for part in shown if part["type"] == "text")
    return out


def parts(content: list[Any]) -> list[dict[str, Any]]:
    """A message's content blocks as the parts of the Message shape (``content`` stays its
    text, for clients that know no parts)."""
    out: list[dict[str, Any]] = []
    for block in content:
        if isinstance(block, str):
            out.append({"type": "text", "text": block})
        elif block.get("type") == "text":
            out.append({"type": "text", "text": block["text"]})
        elif images.is_image(block) and (source := images.inline(block)) is not None:
            data, mime = source[0], source[1] or ""
            out.append({"type": "image", "mime_type": mime, "url": f"data:{mime};base64,{data}"})
    return out


def is_visible(message: BaseMessage) -> bool:
    """Messages a chat shows (system messages are never stored, but be safe)."""
    return isinstance(message, (HumanMessage, AIMessage, ToolMessage))


class NativeWriter:
    """A native run's events, from what its graph streams."""

    modes = ("messages", "updates")
    events = False

    def __init__(self, log: RunLog, run: Mapping[str, Any]) -> None:
        self.log = log
        self.run = run
        self.chat_id = str(run["chat_id"])
        # The run's latest model turn: the calls an approval request asks about are its.
        self._last_ai: list[BaseMessage] = []

    def opened(self) -> None:
        run = self.run
        self.log.append(
            "run",
            {
                "run_id": str(run["id"]),
                "chat_id": self.chat_id,
                "agent_id": str(run["agent_id"]),
            },
        )

    def added(self, messages: Sequence[BaseMessage]) -> None:
        for message in messages:
            self._message(message)

    def part(self, namespace: tuple[str, ...], mode: str, data: Any) -> None:
        if mode == "messages":
            chunk, _ = data
            if isinstance(chunk, AIMessageChunk) and (delta := chunk.text):
                self.log.append("token", {"message_id": chunk.id, "delta": delta})
        elif mode == "updates":
            for message in updated_messages(data):
                self._message(message)
            if pauses(data) and (request := approval.request_in(data["__interrupt__"])):
                calls = approval.calls(request, self._last_ai)
                self.log.append(
                    "approval_required", {"run_id": str(self.run["id"]), "tool_calls": calls}
                )

    def event(self, event: Mapping[str, Any]) -> None:
        """Native runs stream no ``astream_events``."""

    def failed(self, error: str) -> None:
        self.log.append("error", {"code": "run_failed", "message": FAILED})

    def _message(self, message: BaseMessage) -> None:
        if isinstance(message, AIMessage):
            self._last_ai = [message]
            for call in message.tool_calls:
                self.log.append(
                    "tool_call",
                    {
                        "message_id": message.id,
                        "tool_call_id": call["id"],
                        "name": call["name"],
                        "args": call["args"],
                    },
                )
        elif isinstance(message, ToolMessage):
            self.log.append(
                "tool_result",
                {
                    "tool_call_id": message.tool_call_id,
                    "name": message.name,
                    "content": message.text,
                    "is_error": message.status == "error",
                },
            )
        self.log.append("message", to_api(message, self.chat_id))

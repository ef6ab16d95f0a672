"""LangChain messages of a thread, presented in the product's Message shape.

``{id, chat_id, sender: user|agent|tool, content, metadata, created_at}``. The checkpoint is
the only copy of a conversation; this is a view of it.
"""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

SENDERS = {"human": "user", "ai": "agent", "tool": "tool"}
USAGE_KEYS = ("input_tokens", "output_tokens", "total_tokens")


def to_api(message: BaseMessage, chat_id: str) -> dict[str, Any]:
    meta = message.response_metadata or {}
    metadata: dict[str, Any] = {}
    if isinstance(message, AIMessage):
        metadata["model"] = meta.get("model") or meta.get("model_name")
        usage = message.usage_metadata
        metadata["usage"] = {k: usage.get(k, 0) for k in USAGE_KEYS} if usage else None
        metadata["latency_ms"] = meta.get("latency_ms")
        metadata["finish_reason"] = meta.get("finish_reason")
        metadata["tool_calls"] = [
            {"id": call["id"], "name": call["name"], "args": call["args"]}
            for call in message.tool_calls
        ]
    elif isinstance(message, ToolMessage):
        metadata["tool_call_id"] = message.tool_call_id
        metadata["name"] = message.name
        metadata["is_error"] = message.status == "error"
    return {
        "id": message.id,
        "chat_id": chat_id,
        "sender": SENDERS.get(message.type, message.type),
        "content": message.text,
        "metadata": metadata,
        "created_at": meta.get("created_at"),
    }


def is_visible(message: BaseMessage) -> bool:
    """Messages a chat shows (system messages are never stored, but be safe)."""
    return isinstance(message, (HumanMessage, AIMessage, ToolMessage))

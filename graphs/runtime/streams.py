"""Reading what a run's graph streams: the messages a node wrote, usage, pauses, titles."""

from __future__ import annotations

from typing import Any, cast

from langchain_core.messages import AIMessage, BaseMessage

from graphs import approval
from graphs.models import USAGE_ESTIMATED
from graphs.runtime.inputs import NativeInput, RunInput

TITLE_LENGTH = 60
# The token counts a run and a message report.
USAGE_KEYS = ("input_tokens", "output_tokens", "total_tokens")


def title_from(text: str) -> str:
    """A chat title from its first message: the first line, cut at a word boundary."""
    line = " ".join(text.strip().split())
    if len(line) <= TITLE_LENGTH:
        return line
    cut = line[:TITLE_LENGTH].rsplit(" ", 1)[0]
    return (cut or line[:TITLE_LENGTH]) + "…"


def add_usage(total: dict[str, int], message: AIMessage) -> None:
    """Add ``message``'s counts to a run's; the run's are ``estimated`` (``True``) once any of
    its answers' are."""
    usage = message.usage_metadata
    if usage:
        for key in USAGE_KEYS:
            # The USAGE_KEYS are UsageMetadata's int counts (the TypedDict takes no str key).
            total[key] = total.get(key, 0) + int(cast(int, usage.get(key, 0)))
        if message.response_metadata.get(USAGE_ESTIMATED):
            total["estimated"] = True


def usage_of(message: AIMessage) -> dict[str, Any] | None:
    """One answer's usage as the APIs show it: the counts, and ``estimated: true`` when the
    provider reported none and they were estimated."""
    usage = message.usage_metadata
    if not usage:
        return None
    shown: dict[str, Any] = {key: usage.get(key, 0) for key in USAGE_KEYS}
    if message.response_metadata.get(USAGE_ESTIMATED):
        shown["estimated"] = True
    return shown


def pauses(update: Any) -> bool:
    """Whether an ``updates`` stream item says the graph paused on ``interrupt()``."""
    return isinstance(update, dict) and "__interrupt__" in update


def asks_approval(update: Any) -> bool:
    """Whether an ``updates`` stream item pauses for decisions on tool calls (approval)."""
    return pauses(update) and approval.request_in(update["__interrupt__"]) is not None


def input_text(run_input: RunInput) -> str:
    """The text a run's input starts with (a new chat's title is made from it)."""
    if isinstance(run_input, NativeInput):
        return run_input.content
    return first_text(run_input.input)


def first_text(value: Any) -> str:
    """The first message's text in a protocol input, for the chat's title."""
    messages = value.get("messages") if isinstance(value, dict) else None
    if not messages:
        return ""
    first = messages[0]
    content = first.get("content") if isinstance(first, dict) else getattr(first, "content", "")
    return content if isinstance(content, str) else ""


def updated_messages(update: Any) -> list[BaseMessage]:
    """The messages a node wrote, from one ``updates`` stream item."""
    found: list[BaseMessage] = []
    items = update if isinstance(update, list) else [update]
    for item in items:
        if not isinstance(item, dict):
            continue
        for node_update in item.values():
            values = node_update if isinstance(node_update, list) else [node_update]
            for value in values:
                if isinstance(value, dict):
                    found.extend(m for m in value.get("messages", []) if isinstance(m, BaseMessage))
    return found

"""What a replay compares: each side's answer to one user message, and how alike two answers are.

A turn of a thread is a user message and the messages after it, up to the next user message:
the agent's messages (tool calls, then the answer) and the tools' results. Its answer is the
text of its last agent message; its cost is counted over all of its agent messages.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from graphs.runtime.streams import USAGE_KEYS, add_usage

# Words: runs of letters, digits and underscores in any script, compared case-insensitively.
_TOKEN = re.compile(r"\w+")
SIMILARITY_DIGITS = 4


def turns_of(messages: Sequence[BaseMessage]) -> list[tuple[HumanMessage, list[BaseMessage]]]:
    """The thread's turns, in order: each user message and what came after it."""
    turns: list[tuple[HumanMessage, list[BaseMessage]]] = []
    for message in messages:
        if isinstance(message, HumanMessage):
            turns.append((message, []))
        elif turns:
            turns[-1][1].append(message)
    return turns


def answer_of(replies: Sequence[BaseMessage]) -> dict[str, Any]:
    """One side of a turn: the answer's text and id, every tool call (name and arguments), the
    tokens and the model time of all its agent messages, and the model that answered."""
    answers = [m for m in replies if isinstance(m, AIMessage)]
    last = answers[-1] if answers else None
    usage = dict.fromkeys(USAGE_KEYS, 0)
    latencies = []
    for message in answers:
        add_usage(usage, message)
        latency = message.response_metadata.get("latency_ms")
        if isinstance(latency, int | float):
            latencies.append(latency)
    meta = last.response_metadata if last is not None else {}
    return {
        "message_id": last.id if last is not None else None,
        "content": last.text if last is not None else "",
        "tool_calls": [
            {"name": call["name"], "args": call["args"]} for m in answers for call in m.tool_calls
        ],
        "usage": usage,
        "latency_ms": round(sum(latencies), 1) if latencies else None,
        "model": meta.get("model") or meta.get("model_name"),
    }


def answer_after(messages: Sequence[BaseMessage], message_id: str) -> dict[str, Any] | None:
    """The answer to user message ``message_id`` in ``messages``; ``None`` if it is not there."""
    for message, replies in turns_of(messages):
        if message.id == message_id:
            return answer_of(replies)
    return None


def similarity(first: str, second: str) -> float:
    """Token-level F1 of two texts, in [0, 1], rounded to ``SIMILARITY_DIGITS`` places.

    Tokens are words (``\\w+``, lowercased; punctuation and spacing do not count), compared as
    multisets: ``2 * common / (len(first) + len(second))``. 1 means the same words as often,
    0 no word in common; two empty answers are alike (1), one empty answer is not (0).
    """
    a = Counter(_TOKEN.findall(first.lower()))
    b = Counter(_TOKEN.findall(second.lower()))
    total = a.total() + b.total()
    if total == 0:
        return 1.0
    common = (a & b).total()
    return round(2 * common / total, SIMILARITY_DIGITS)

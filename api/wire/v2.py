"""The v2 event stream's wire format (``langgraph-api`` ≥ 0.10, the JS SDK's ``ThreadStream``).

A v2 event is ``{type: "event", event_id, seq, method, params: {namespace, timestamp, data}}``
with the methods ``lifecycle`` · ``values`` · ``updates`` · ``messages`` (content-block events:
``message-start``, ``content-block-start``, ``content-block-delta``, ``content-block-finish``,
``message-finish``) · ``custom`` · ``input.requested``. They are read off the runs' own event
logs (a run started by ``run.start`` records the protocol modes this needs), so a v2 reader is
one more reader of the same logs, never a second pipeline.

``event_id`` is ``<run id>:<log event id>`` (``.<n>`` for the n-th further v2 event made of the
same log event): the same on every connection, which is what the SDK deduplicates by. ``seq``
is given by the reader (a thread-level count), not here.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

from graphs.events import Event

# The channels a filter may name (``custom:<name>`` too), as the official server takes them.
CHANNELS = (
    "values", "updates", "checkpoints", "messages", "tools", "custom", "lifecycle", "input",
    "tasks",
)  # fmt: skip
# The protocol stream modes a v2 run records: what the v2 events are made of.
RUN_STREAM_MODES = ["values", "updates", "messages-tuple", "custom"]
# A run's terminal lifecycle, by the status its ``end`` reports.
_TERMINAL = {
    "success": "completed",
    "error": "failed",
    "interrupted": "interrupted",
    "cancelled": "interrupted",
}
GRAPH_NAME = "agent"
# A v2 event before its envelope: (method, namespace, data, more params).
Made = tuple[str, list[str], Any, dict[str, Any]]
_EMPTY_TEXT = {"type": "text", "text": ""}


def _msg(namespace: list[str], data: dict[str, Any]) -> Made:
    return ("messages", namespace, data, {})


def _block(event: str, index: int, content: dict[str, Any]) -> dict[str, Any]:
    return {"event": event, "index": index, "content": content}


def supported_channel(channel: str) -> bool:
    return channel in CHANNELS or (channel.startswith("custom:") and len(channel) > 7)


def _split(name: str) -> tuple[str, list[str]]:
    """A log event's mode and namespace: ``values|parent|child:1`` -> (values, [parent, …])."""
    method, *namespace = name.split("|")
    return method, namespace


def channel_of(event: dict[str, Any]) -> str | None:
    """The channel a v2 event belongs to (the SDK's ``inferChannel``)."""
    method = event["method"]
    if method in ("input.requested", "input.answered"):
        return "input"
    if method == "custom":
        name = event["params"]["data"].get("name")
        return f"custom:{name}" if name is not None else "custom"
    return method if method in CHANNELS else None


def _prefix_match(namespace: Sequence[str], prefix: Sequence[str]) -> bool:
    # A segment of the filter without ``:`` also matches the event's segment with its dynamic
    # suffix (``tools:3f2a…``) cut off, as the official server and the SDK both match.
    if len(prefix) > len(namespace):
        return False
    for segment, candidate in zip(prefix, namespace, strict=False):
        if candidate == segment:
            continue
        if ":" in segment or candidate.split(":")[0] != segment:
            return False
    return True


class Filter:
    """Which events a stream (or a WebSocket subscription) sends: by channel, then by namespace
    prefix and depth below it."""

    def __init__(
        self, channels: Sequence[str], namespaces: Sequence[Sequence[str]] | None = None,
        depth: int | None = None,
    ) -> None:  # fmt: skip
        self.channels = set(channels)
        self.namespaces = [list(ns) for ns in namespaces] if namespaces else None
        self.depth = depth

    def matches(self, event: dict[str, Any]) -> bool:
        channel = channel_of(event)
        if channel is None:
            return False
        if channel not in self.channels and not (
            channel.startswith("custom:") and "custom" in self.channels
        ):
            return False
        if self.namespaces is None:
            return True
        namespace = event["params"]["namespace"]
        return any(
            _prefix_match(namespace, prefix)
            and (self.depth is None or len(namespace) - len(prefix) <= self.depth)
            for prefix in self.namespaces
        )


class _Message:
    """A message being streamed: its text block, open until the message is finished."""

    def __init__(self, message_id: str) -> None:
        self.id = message_id
        self.text = ""
        self.tool_calls: list[dict[str, Any]] = []


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            block.get("text", "") if isinstance(block, dict) else str(block) for block in content
        )
    return ""


class RunTranslator:
    """One run's log events as v2 events (without ``seq``), in order. Keeps what a message
    needs across its chunks, so a run is translated by one translator from its first event."""

    def __init__(self, run_id: Any) -> None:
        self.run_id = str(run_id)
        self.last_id = 0
        # Per namespace, the message being streamed there.
        self._open: dict[tuple[str, ...], _Message] = {}
        # The interrupts already requested: both ``updates`` and ``values`` report a pause.
        self._requested: set[str] = set()
        self._failure: str | None = None
        self.ended = False

    def feed(self, events: Sequence[Event]) -> Iterator[dict[str, Any]]:
        for event in events:
            if event.id <= self.last_id:
                continue  # a finished run's log may send its ``end`` again
            self.last_id = event.id
            made = self._translate(event)
            for n, (method, namespace, data, extra) in enumerate(made):
                event_id = f"{self.run_id}:{event.id}" + (f".{n}" if n else "")
                params: dict[str, Any] = {
                    "namespace": namespace,
                    "timestamp": int(time.time() * 1000),
                    "data": data,
                }
                params.update(extra)
                yield {"type": "event", "event_id": event_id, "method": method, "params": params}

    def _translate(self, event: Event) -> list[Made]:
        name, data = event.event, event.data
        mode, namespace = _split(name)
        out: list[Made] = []
        if mode in ("metadata", "run"):
            # The first event of a protocol run, or of a native one.
            out.append(("lifecycle", [], {"event": "running", "graph_name": GRAPH_NAME}, {}))
        elif mode == "messages" and isinstance(data, list) and data:
            out.extend(self._message(tuple(namespace), data[0]))
        elif mode == "values" and isinstance(data, dict):
            out.extend(self._close(tuple(namespace)))
            out.extend(self._interrupts(namespace, data.get("__interrupt__")))
            values = {k: v for k, v in data.items() if k != "__interrupt__"}
            if values:
                out.append(("values", namespace, values, {}))
        elif mode == "updates" and isinstance(data, dict):
            out.extend(self._close(tuple(namespace)))
            for node, update in data.items():
                if node == "__interrupt__":
                    out.extend(self._interrupts(namespace, update))
                else:
                    values = update if isinstance(update, dict) else {"value": update}
                    out.append(("updates", namespace, values, {"node": node}))
        elif mode == "custom":
            out.append(("custom", namespace, {"payload": data}, {}))
        elif mode == "error" and isinstance(data, dict):
            self._failure = str(data.get("message") or "The agent could not answer.")
        elif mode == "end" and isinstance(data, dict):
            for key in list(self._open):
                out.extend(self._close(key))
            status = _TERMINAL.get(str(data.get("status")), "failed")
            if status == "completed" and self._requested:
                status = "interrupted"
            lifecycle: dict[str, Any] = {"event": status, "graph_name": GRAPH_NAME}
            if status == "failed":
                lifecycle["error"] = self._failure or "The run ended without an answer."
            out.append(("lifecycle", [], lifecycle, {}))
            self.ended = True
        # A native run's tokens and messages, and modes v2 has no channel for, are not sent.
        return out

    def _interrupts(self, namespace: list[str], interrupts: Any) -> list[Made]:
        out: list[Made] = []
        for item in interrupts if isinstance(interrupts, list) else []:
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                if item["id"] in self._requested:
                    continue
                self._requested.add(item["id"])
                data = {"interrupt_id": item["id"], "payload": item.get("value")}
                out.append(("input.requested", namespace, data, {}))
        return out

    def _message(self, namespace: tuple[str, ...], chunk: Any) -> list[Made]:
        if not isinstance(chunk, dict) or not isinstance(chunk.get("id"), str):
            return []
        ns = list(namespace)
        out: list[Made] = []
        kind = chunk.get("type")
        if kind == "tool":
            # A tool's result comes whole: a message of its own, opened and finished at once.
            out.extend(self._close(namespace))
            text = _text(chunk.get("content"))
            start = {"event": "message-start", "role": "tool", "id": chunk["id"]}
            if chunk.get("tool_call_id"):
                start["tool_call_id"] = chunk["tool_call_id"]
            out.append(("messages", ns, start, {}))
            out.extend(self._text_block(ns, text))
            out.append(("messages", ns, {"event": "message-finish"}, {}))
            return out
        current = self._open.get(namespace)
        if current is not None and current.id != chunk["id"]:
            out.extend(self._close(namespace))
            current = None
        if current is None:
            current = self._open[namespace] = _Message(chunk["id"])
            start = {"event": "message-start", "role": "ai", "id": chunk["id"]}
            out.append(("messages", ns, start, {}))
            block = {
                "event": "content-block-start",
                "index": 0,
                "content": {"type": "text", "text": ""},
            }
            out.append(("messages", ns, block, {}))
        delta = _text(chunk.get("content"))
        if delta:
            current.text += delta
            out.append((
                "messages", ns,
                {"event": "content-block-delta", "index": 0,
                 "delta": {"type": "text-delta", "text": delta}},
                {},
            ))  # fmt: skip
        for call in chunk.get("tool_calls") or []:
            if isinstance(call, dict) and call.get("name"):
                current.tool_calls.append(call)
        if chunk.get("chunk_position") == "last":
            out.extend(self._close(namespace))
        return out

    def _text_block(self, ns: list[str], text: str) -> list[Made]:
        delta = {"event": "content-block-delta", "index": 0,
                 "delta": {"type": "text-delta", "text": text}}  # fmt: skip
        return [
            _msg(ns, _block("content-block-start", 0, _EMPTY_TEXT)),
            _msg(ns, delta),
            _msg(ns, _block("content-block-finish", 0, {"type": "text", "text": text})),
        ]

    def _close(self, namespace: tuple[str, ...]) -> list[Made]:
        """Finish the message being streamed in ``namespace``, if any: its blocks, then it."""
        current = self._open.pop(namespace, None)
        if current is None:
            return []
        ns = list(namespace)
        out: list[Made] = [(
            "messages", ns,
            {"event": "content-block-finish", "index": 0,
             "content": {"type": "text", "text": current.text}},
            {},
        )]  # fmt: skip
        for index, call in enumerate(current.tool_calls, start=1):
            block = {
                "type": "tool_call", "id": call.get("id"), "name": call["name"],
                "args": call.get("args") or {},
            }  # fmt: skip
            out.append(
                (
                    "messages",
                    ns,
                    {"event": "content-block-start", "index": index, "content": block},
                    {},
                )
            )
            out.append(
                (
                    "messages",
                    ns,
                    {"event": "content-block-finish", "index": index, "content": block},
                    {},
                )
            )
        out.append(("messages", ns, {"event": "message-finish"}, {}))
        return out

"""A small, strict parser of ``text/event-stream`` bodies for the tests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


@dataclass
class SSEEvent:
    event: str
    id: int
    data: Any


def parse(body: str) -> tuple[list[SSEEvent], list[str]]:
    """The events and the comments of a stream, in order."""
    events: list[SSEEvent] = []
    comments: list[str] = []
    for block in body.replace("\r\n", "\n").split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            if not line:
                continue
            if line.startswith(":"):
                comments.append(line[1:].strip())
                continue
            name, _, value = line.partition(":")
            fields[name] = value[1:] if value.startswith(" ") else value
        if "event" in fields:
            events.append(SSEEvent(fields["event"], int(fields["id"]), json.loads(fields["data"])))
    return events, comments


def read_events(lines: Iterator[str]) -> Iterator[tuple[int, str, Any]]:
    """Complete SSE events from a line iterator: (id, event, data)."""
    fields: dict[str, str] = {}
    for line in lines:
        if line == "":
            if "event" in fields:
                yield int(fields["id"]), fields["event"], json.loads(fields["data"])
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")

"""The wire formats: how a run's events look to each kind of client.

- ``native``: the native API's events and its Message shape.
- ``protocol``: the Agent Protocol's stream, as the official server sends it.
- ``sse``: the ``text/event-stream`` framing both are sent in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from api.wire.native import NativeWriter
from api.wire.protocol import ProtocolWriter
from graphs.events import RunLog
from graphs.runtime.inputs import ProtocolInput, RunInput
from graphs.runtime.types import EventWriter


def writer_for(log: RunLog, run: Mapping[str, Any], run_input: RunInput) -> EventWriter:
    """The events a run writes, by the API its input came from (the runtime's ``writers``)."""
    if isinstance(run_input, ProtocolInput):
        return ProtocolWriter(log, run, run_input)
    return NativeWriter(log, run)

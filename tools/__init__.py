"""The tool registry: one tool per module in this package, listed by name in ``TOOLS``.

Agents enable tools by these names (``tools_enabled``); an unknown name is rejected when the
agent is saved.
"""

from __future__ import annotations

from langchain_core.tools import BaseTool

TOOLS: dict[str, BaseTool] = {}

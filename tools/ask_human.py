"""``ask_human``: the agent asks the user something and the run pauses until they answer.

The pause is LangGraph's ``interrupt()``: the thread waits (status ``interrupted``) with the
question in ``__interrupt__``; a run with ``command: {"resume": <answer>}`` continues it, and
the answer becomes this tool's result.
"""

from __future__ import annotations

from typing import Annotated

from langchain_core.tools import tool
from langgraph.types import interrupt
from pydantic import Field


@tool("ask_human")
def ask_human(
    question: Annotated[str, Field(description="What to ask the user.", max_length=2000)],
) -> str:
    """Ask the user a question and wait for the answer (for approvals and missing details)."""
    answer = interrupt({"question": question})
    return answer if isinstance(answer, str) else str(answer)

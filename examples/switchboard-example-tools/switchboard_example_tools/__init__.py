"""Example Switchboard tools, one per form of the ``switchboard.tools`` entry point."""

from __future__ import annotations

from typing import Annotated, Any

from langchain_core.tools import BaseTool, tool
from pydantic import Field


@tool("word_count")
def word_count(
    text: Annotated[str, Field(max_length=100_000, description="The text whose words to count")],
) -> str:
    """Count the words of `text` (runs of characters between spaces). Returns the number."""
    return str(len(text.split()))


@tool("reverse_text")
def reverse_text(
    text: Annotated[str, Field(max_length=100_000, description="The text to reverse")],
) -> str:
    """Reverse `text` character by character. Returns the reversed text."""
    return text[::-1]


@tool("shout")
def shout(text: Annotated[str, Field(max_length=100_000, description="The text to shout")]) -> str:
    """Write `text` in capital letters. Returns the capitalized text."""
    return text.upper()


TEXT_TOOLS = [reverse_text, shout]


def make_greeter(settings: Any) -> BaseTool:
    """A tool built at the server's start from its settings (here: which model it defaults to)."""
    model = getattr(settings, "effective_default_model", "unknown")

    @tool("greet")
    def greet(name: Annotated[str, Field(max_length=200, description="Whom to greet")]) -> str:
        """Greet `name` by name. Returns the greeting."""
        return f"Hello, {name}! (served by a Switchboard whose default model is {model})"

    return greet

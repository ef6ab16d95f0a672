"""The error a tool raises when its input is wrong; its message is written for the model."""

from __future__ import annotations


class ToolInputError(ValueError):
    """Bad tool arguments. The agent returns the message to the model, which can try again."""

"""``AgentSpec``: what a graph is built from, taken from an ``agents`` row."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from storage.rows import AgentRow


@dataclass(frozen=True)
class AgentSpec:
    """An agent definition, frozen at one version.

    Attributes:
        id: The agent's id.
        version: Bumped by every update; a compiled graph is cached per (id, version).
        slug: Stable graph name (the assistant id of the Agent Protocol).
        name: Display name.
        system_prompt: The agent's own instructions, applied on every model call.
        model_name: ``provider:model``, the server default already filled in.
        tools: Names of enabled tools, in the agent's order.
        approval: The tools among ``tools`` whose calls wait for a person's decision.
    """

    id: UUID
    version: int
    slug: str
    name: str
    system_prompt: str
    model_name: str
    tools: tuple[str, ...]
    approval: tuple[str, ...] = ()
    # ``graph``: a graph of langgraph.json (graphs/custom.py), served as it is.
    kind: str = "agent"

    @classmethod
    def from_row(cls, row: AgentRow, default_model: str) -> AgentSpec:
        return cls(
            id=row["id"],
            version=row["version"],
            slug=row["slug"],
            name=row["name"],
            system_prompt=row["system_prompt"],
            model_name=row["model_name"] or default_model,
            tools=tuple(row["tools_enabled"]),
            approval=tuple(row["tools_requiring_approval"]),
            kind=row["kind"],
        )


@dataclass(frozen=True)
class AgentContext:
    """Per-run data a graph receives as its runtime context (never stored in the thread).

    Attributes:
        user_id: Who is chatting; tools that need it read it from here, never from globals.
        chat_id: The chat (= LangGraph thread) being answered.
        profile: The user's onboarding profile, or ``None`` when they skipped onboarding.
        agent_id: The agent answering (set by the runtime from the run's agent).
        knowledge: The knowledge search (``graphs.knowledge.Knowledge``) tools search with.
    """

    user_id: str | None = None
    chat_id: str | None = None
    profile: dict[str, Any] | None = None
    agent_id: str | None = None
    knowledge: Any = field(default=None, compare=False, repr=False)

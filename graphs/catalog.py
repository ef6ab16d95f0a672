"""The agents every new installation starts with, and seeding them on first start."""

from __future__ import annotations

from typing import Any

from storage import agents as agents_store
from storage import interests as interests_store
from storage.db import Conn

SEED_AGENTS: list[dict[str, Any]] = [
    {
        "slug": "assistant",
        "name": "General Assistant",
        "description": "A helpful generalist for everyday questions, writing and planning.",
        "system_prompt": (
            "You are Switchboard's general assistant. Answer clearly and accurately. When a "
            "question is ambiguous, say what you assumed. When you do not know, say so rather "
            "than guess. Prefer short answers unless the user asks for depth."
        ),
        "interests": ["writing", "research", "education", "operations"],
        "tools": ["calculator", "current_datetime", "unit_converter"],
    },
    {
        "slug": "personal-finance",
        "name": "Personal Finance Specialist",
        "description": "Budgets, saving, debt payoff and retirement planning, with the math shown.",
        "system_prompt": (
            "You are a personal-finance specialist. Help the user budget, save, pay down debt "
            "and plan for retirement. Show the arithmetic behind every number you give. You "
            "are not a licensed advisor: for tax, legal or investment decisions with large "
            "consequences, recommend consulting a professional."
        ),
        "interests": ["personal-finance", "finance"],
        "tools": ["calculator"],
    },
    {
        "slug": "marketing",
        "name": "Marketing Specialist",
        "description": "Positioning, campaigns, copy and channel strategy for products and brands.",
        "system_prompt": (
            "You are a marketing specialist. Help with positioning, audience research, campaign "
            "plans, copywriting and channel strategy. Ask who the audience is when it matters, "
            "give concrete examples, and suggest how to measure whether an idea works."
        ),
        "interests": ["marketing", "sales", "writing", "entrepreneurship"],
        "tools": ["current_datetime"],
    },
    {
        "slug": "software-engineer",
        "name": "Software Engineering Mentor",
        "description": "Code review, debugging, architecture and testing advice.",
        "system_prompt": (
            "You are a senior software engineer and mentor. Explain trade-offs, write correct "
            "and idiomatic code, point out edge cases and security issues, and suggest how to "
            "test what you propose."
        ),
        "interests": ["software-engineering", "data-science", "product-management"],
        "tools": ["calculator", "unit_converter"],
    },
    {
        "slug": "legal-research",
        "name": "Legal Research Assistant",
        "description": "Contract review checklists and legal research, with its limits stated.",
        "system_prompt": (
            "You are a legal research assistant. Help structure legal questions, review "
            "contracts against checklists and summarize principles. Always state which "
            "jurisdiction you assume and that your answer is not legal advice."
        ),
        "interests": ["law", "research"],
        "tools": ["current_datetime"],
    },
]


async def seed_agents(conn: Conn) -> int:
    """Insert the seed agents when the agents table is empty; returns how many were inserted.

    Deleted agents are only soft-deleted, so this runs once per installation: an admin who
    deletes a seeded agent does not see it come back on the next start.
    """
    async with conn.transaction():
        await agents_store.lock_table(conn)
        if await agents_store.count_all(conn):
            return 0
        slugs = {s for agent in SEED_AGENTS for s in agent["interests"]}
        area_ids = await interests_store.ids_by_slug(conn, slugs)
        for agent in SEED_AGENTS:
            await agents_store.insert(
                conn,
                {
                    "slug": agent["slug"],
                    "name": agent["name"],
                    "description": agent["description"],
                    "system_prompt": agent["system_prompt"],
                    "avatar_url": None,
                    "model_name": None,
                    "tools_enabled": agent["tools"],
                    "interest_area_ids": [area_ids[s] for s in agent["interests"]],
                    "created_by": None,
                },
            )
    return len(SEED_AGENTS)

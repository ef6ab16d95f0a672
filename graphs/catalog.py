"""The agents every new installation starts with, and seeding them on first start."""

from __future__ import annotations

from typing import Any

from storage import agents as agents_store
from storage import interests as interests_store
from storage import knowledge as knowledge_store
from storage.db import Conn

# The personal-finance agent's knowledge base: plain definitions its knowledge_search finds.
FINANCE_GLOSSARY = """\
# Personal finance glossary

## Amortization
Paying off a loan with regular payments that cover both interest and principal. Early payments
are mostly interest; later payments are mostly principal. An amortization schedule lists each
payment's split and the balance left after it.

## Annual percentage rate (APR)
The yearly cost of borrowing, including interest and most fees, expressed as a percentage. It
lets you compare loans with different fee structures. APR does not include compounding; APY
does.

## Annual percentage yield (APY)
The yearly return on savings including the effect of compounding. A 5% rate compounded monthly
has an APY of about 5.12%.

## Compound interest
Interest earned on both the original amount and the interest already added to it. Money growing
at 7% a year roughly doubles in about ten years (the rule of 72: 72 / 7 is about 10.3).

## Debt avalanche
Paying the minimum on every debt and putting every extra dollar toward the debt with the highest
interest rate first. It costs the least interest overall.

## Debt snowball
Paying the minimum on every debt and putting every extra dollar toward the smallest balance
first. It costs more interest than the avalanche, but early payoffs can keep people motivated.

## Emergency fund
Cash kept for unexpected expenses such as a job loss, a car repair or a medical bill. A common
target is three to six months of essential expenses, held in an easily accessible savings
account.

## Index fund
A fund that tracks a market index, such as the S&P 500, by holding the securities in it. Index
funds usually have low fees (expense ratios) and broad diversification.

## Expense ratio
The yearly fee a fund charges, as a percentage of the money invested. A 0.05% expense ratio costs
$5 a year for every $10,000 invested.

## Net worth
Everything you own (assets) minus everything you owe (liabilities). Tracking it over time shows
whether your finances are moving in the right direction.

## 50/30/20 budget
A simple budget that puts 50% of after-tax income toward needs, 30% toward wants and 20% toward
savings and paying down debt.

## Roth IRA
A US individual retirement account funded with after-tax money. Qualified withdrawals in
retirement, including the growth, are tax-free. Contributions are limited each year and phase
out at higher incomes.

## 401(k)
A US employer-sponsored retirement plan funded from your paycheck, often before tax. Many
employers match part of what you put in; contributing at least enough to get the full match is
usually the first step in retirement saving.

## Credit utilization
How much of your available revolving credit you are using, as a percentage. Keeping it below
about 30% (lower is better) helps a credit score.

## Sinking fund
Money set aside a little at a time for a known future expense, such as insurance premiums,
holidays or a new laptop, so the expense does not land on a credit card.
"""

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
        "tools": ["calculator", "knowledge_search"],
        "knowledge": [("Personal finance glossary", FINANCE_GLOSSARY)],
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
            row = await agents_store.insert(
                conn,
                {
                    "slug": agent["slug"],
                    "name": agent["name"],
                    "description": agent["description"],
                    "system_prompt": agent["system_prompt"],
                    "avatar_url": None,
                    "model_name": None,
                    "tools_enabled": agent["tools"],
                    "tools_requiring_approval": [],
                    "interest_area_ids": [area_ids[s] for s in agent["interests"]],
                    "created_by": None,
                },
            )
            for title, text in agent.get("knowledge", []):
                # Indexed by the first API process's indexer, like any upload.
                await knowledge_store.insert(
                    conn,
                    {
                        "agent_id": row["id"], "chat_id": None, "user_id": None,
                        "title": title, "filename": None, "media_type": "text/markdown",
                        "bytes": len(text.encode()), "text": text,
                        "content_hash": knowledge_store.content_hash(text),
                    },
                )  # fmt: skip
    return len(SEED_AGENTS)

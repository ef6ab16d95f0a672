"""The system prompt of one model call: the agent's prompt plus what we know of the user."""

from __future__ import annotations

from typing import Any

_STYLE_HINTS = {
    "formal": "Use a formal, professional register.",
    "casual": "Keep the tone relaxed and conversational.",
    "concise": "Be brief: lead with the answer and skip preamble.",
    "detailed": "Be thorough: explain your reasoning and cover edge cases.",
    "technical": "Use precise technical vocabulary; do not oversimplify.",
    "friendly": "Be warm and encouraging.",
}
_LEVEL_HINTS = {
    "beginner": "Explain terms of art and avoid assuming background knowledge.",
    "intermediate": "Assume working knowledge of the basics.",
    "advanced": "Skip the basics; focus on nuance.",
    "expert": "Speak peer to peer; skip the basics entirely.",
}


def _label(value: str) -> str:
    return value.replace("_", " ")


def system_prompt(base: str, profile: dict[str, Any] | None) -> str:
    """``base`` followed by a short section about the user, when they completed onboarding.

    ``profile`` holds ``professional_role``, ``experience_level``,
    ``preferred_interaction_style`` and ``interests`` (names, highest priority first).
    """
    if not profile:
        return base
    lines = []
    if role := profile.get("professional_role"):
        lines.append(f"- Profession: {_label(role)}")
    if level := profile.get("experience_level"):
        lines.append(f"- Experience level: {_label(level)}. {_LEVEL_HINTS.get(level, '')}".rstrip())
    if style := profile.get("preferred_interaction_style"):
        hint = _STYLE_HINTS.get(style, "")
        lines.append(f"- Preferred interaction style: {_label(style)}. {hint}".rstrip())
    if interests := profile.get("interests"):
        lines.append(f"- Interests: {', '.join(interests)}")
    if not lines:
        return base
    section = "About the user (adapt your answers to them):\n" + "\n".join(lines)
    return f"{base}\n\n{section}" if base else section

"""Approval of tool calls: an agent's gated tools wait for a person's decision before they run.

The pause is LangChain's ``HumanInTheLoopMiddleware`` in its batched mode, the shape
agent-chat-ui and the Agent Protocol's clients know: after a model turn that calls gated
tools, the graph interrupts with ``{action_requests: [{name, args, description}],
review_configs}`` and is resumed with ``{decisions: [...]}``, one per gated call, by position.
The native API names calls by id instead (``approval_required {run_id, tool_calls: [{id,
name, args}]}``, ``POST /chats/{id}/approvals``); this module translates between the two.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from langchain.agents.middleware import HumanInTheLoopMiddleware
from langchain_core.messages import AIMessage, BaseMessage

DECISIONS = ("approve", "edit", "reject")


def middleware(tools: Iterable[str]) -> HumanInTheLoopMiddleware | None:
    """The middleware gating ``tools`` (approve, edit or reject each call); ``None`` for none."""
    gated = {name: {"allowed_decisions": list(DECISIONS)} for name in tools}
    return HumanInTheLoopMiddleware(interrupt_on=gated) if gated else None  # type: ignore[arg-type]


def is_request(value: Any) -> bool:
    """Whether an interrupt's value is an approval request (not, say, ``ask_human``'s)."""
    return (
        isinstance(value, Mapping)
        and isinstance(value.get("action_requests"), list)
        and isinstance(value.get("review_configs"), list)
    )


def _value(interrupt: Any) -> Any:
    return interrupt.get("value") if isinstance(interrupt, Mapping) else interrupt.value


def request_in(interrupts: Sequence[Any]) -> Mapping[str, Any] | None:
    """The approval request among a pause's interrupts, if one is."""
    return next((_value(i) for i in interrupts if is_request(_value(i))), None)


def calls(request: Mapping[str, Any], messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """The gated calls ``request`` asks about as ``{id, name, args}``, in its order.

    The request holds names and arguments only; the ids are those of the last model turn's
    calls of the gated tools, which the middleware lists in the order the model made them.
    """
    last_ai = next((m for m in reversed(messages) if isinstance(m, AIMessage)), None)
    gated = {config["action_name"] for config in request["review_configs"]}
    made = [c for c in (last_ai.tool_calls if last_ai is not None else []) if c["name"] in gated]
    asked = request["action_requests"]
    return [
        {"id": call["id"], "name": action["name"], "args": action["args"]}
        for call, action in zip(made, asked, strict=False)
    ]


class DecisionError(ValueError):
    """Decisions that do not answer the pending calls (one each, by id); the text says why."""


def resume_value(
    pending: Sequence[Mapping[str, Any]], decisions: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """The middleware's resume value for native ``decisions`` (``{tool_call_id, action,
    args?, reason?}``) on the ``pending`` calls; ``DecisionError`` if they do not answer
    each pending call exactly once."""
    by_id = {}
    for decision in decisions:
        call_id = decision["tool_call_id"]
        if call_id in by_id:
            raise DecisionError(f"Tool call {call_id} has more than one decision")
        by_id[call_id] = decision
    known = {call["id"] for call in pending}
    if unknown := sorted(set(by_id) - known):
        raise DecisionError(f"No pending tool call has the id {', '.join(unknown)}")
    if missing := [call["id"] for call in pending if call["id"] not in by_id]:
        raise DecisionError(f"Tool call(s) {', '.join(missing)} need a decision too")
    answers: list[dict[str, Any]] = []
    for call in pending:
        decision = by_id[call["id"]]
        action = decision["action"]
        if action == "approve":
            answers.append({"type": "approve"})
        elif action == "edit":
            answers.append(
                {"type": "edit", "edited_action": {"name": call["name"], "args": decision["args"]}}
            )
        else:
            reason = decision.get("reason")
            answers.append({"type": "reject", **({"message": reason} if reason else {})})
    return {"decisions": answers}

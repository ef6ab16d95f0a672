"""The peers' graph: one node calling a deterministic streaming chat model that answers 50
tokens ``tok0`` … ``tok49`` at once, like Switchboard's ``fake:tokens-50`` (standalone: the peer
servers import it from their own venvs). No ``from __future__ import annotations``: Aegra
resolves the state's type hints in a namespace where string annotations fail."""

from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any, TypedDict

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages

TOKENS = 50


class TokenModel(BaseChatModel):
    @property
    def _llm_type(self) -> str:
        return "bench-tokens"

    def _tokens(self) -> list[str]:
        return [f"tok{i}" if i == 0 else f" tok{i}" for i in range(TOKENS)]

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:  # fmt: skip
        message = AIMessage(content="".join(self._tokens()))
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                **kwargs: Any) -> Iterator[ChatGenerationChunk]:  # fmt: skip
        for token in self._tokens():
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=token))
            if run_manager:
                run_manager.on_llm_new_token(token, chunk=chunk)
            yield chunk

    async def _astream(self, messages: list[BaseMessage], stop: Any = None,
                       run_manager: Any = None, **kwargs: Any
                       ) -> AsyncIterator[ChatGenerationChunk]:  # fmt: skip
        for token in self._tokens():
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=token))
            if run_manager:
                await run_manager.on_llm_new_token(token, chunk=chunk)
            yield chunk


class State(TypedDict):
    messages: Annotated[list[BaseMessage], add_messages]


model = TokenModel()


async def chat(state: State) -> dict[str, Any]:
    return {"messages": [await model.ainvoke(state["messages"])]}


builder = StateGraph(State)
builder.add_node("chat", chat)
builder.add_edge(START, "chat")
builder.add_edge("chat", END)
graph = builder.compile()

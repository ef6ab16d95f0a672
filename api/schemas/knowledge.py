"""Knowledge documents (of agents, of chats) and searches over them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, Field

from api.schemas.common import JsonInteger, NotBlank, RequestModel, text_rules

Title = Annotated[str, text_rules(min_length=1, max_length=200), NotBlank]
# A pasted document: as long as a file's text may be (the route's body limit bounds it).
Text = Annotated[str, text_rules(min_length=1, max_length=10 * 1_048_576, strip=False), NotBlank]
Query = Annotated[str, text_rules(min_length=1, max_length=2000), NotBlank]
DocumentStatus = Literal["pending", "indexing", "indexed", "failed"]


class DocumentTextIn(RequestModel):
    """A document given as text instead of a file."""

    title: Title
    text: Text


class DocumentOut(BaseModel):
    id: UUID
    agent_id: UUID | None = Field(description="Set on an agent's document")
    chat_id: UUID | None = Field(description="Set on a chat's file")
    title: str
    filename: str | None = Field(description="The uploaded file's name; null for pasted text")
    media_type: str = Field(description="What it was read as, e.g. `application/pdf`")
    bytes: int = Field(description="Size of the upload (the file, or the pasted text as UTF-8)")
    status: DocumentStatus = Field(
        description="`pending` (queued), `indexing`, `indexed` (searchable) or `failed`"
    )
    error: str | None = Field(description="Why indexing failed")
    chunk_count: int = Field(description="Chunks made of it (0 until indexed)")
    embedding_model: str | None = Field(description="The model of its vectors, once indexed")
    created_at: datetime
    indexed_at: datetime | None


class DocumentList(BaseModel):
    items: list[DocumentOut]


class SearchIn(RequestModel):
    query: Query
    k: Annotated[
        int, Field(ge=1, le=20, description="How many chunks to return (1 to 20)"), JsonInteger
    ] = 5
    chat_id: UUID | None = Field(
        None, description="Also search this chat's files (your own chat; another's is a 404)"
    )


class SearchHit(BaseModel):
    document_id: UUID
    title: str
    chunk_id: UUID = Field(description="Cite the chunk by this id")
    text: str
    score: float = Field(
        description="Higher is closer: the cosine similarity of the query and the chunk, or "
        "with hybrid retrieval (`SWITCHBOARD_KNOWLEDGE_HYBRID`) the fused reciprocal-rank score"
    )


class SearchOut(BaseModel):
    items: list[SearchHit]
    indexing: bool = Field(description="Some documents in scope are not indexed yet")
    reindexing: bool = Field(
        description="Some documents are being indexed again with the current embedding model, "
        "and are missing from the results until they are"
    )

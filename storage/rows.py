"""The rows storage functions return, one ``TypedDict`` per shape.

Each matches the column list of the statement that reads it (``USER_COLUMNS``,
``AGENT_COLUMNS``, ``CHAT_COLUMNS``, ``RUN_COLUMNS`` …) and the column types of
``storage/migrations``: ``uuid`` is ``UUID``, ``timestamptz`` ``datetime``, a nullable column
``X | None``. The rows themselves stay the plain dicts psycopg's ``dict_row`` builds: these
types only describe them (``cast``, no copy).

No ``from __future__ import annotations`` here: ``TypedDict`` reads ``NotRequired`` from
evaluated annotations, so ``RunRow.__optional_keys__`` is right at run time too.
"""

from datetime import datetime
from typing import Any, Literal, NotRequired, TypedDict
from uuid import UUID

from storage.types import (
    ChatStatus,
    DeliveryStatus,
    DocumentStatus,
    MultitaskStrategy,
    ReplayStatus,
    RunStatus,
    ShareRole,
    ThreadStatus,
    UserRole,
)


class UserRow(TypedDict):
    """``users``: ``USER_COLUMNS``."""

    id: UUID
    name: str
    email: str
    role: UserRole
    password_hash: str
    created_at: datetime
    updated_at: datetime
    professional_role: str | None
    organization: str | None
    experience_level: str | None
    preferred_interaction_style: str | None
    onboarding_completed: bool
    # The onboarding answers (``use_cases``, ``goals``, ``interest_area_ids``, ``completed_at``…).
    onboarding_data: dict[str, Any] | None


class UserInterestRow(TypedDict):
    """One of a user's interest areas (``users.interests``)."""

    id: UUID
    slug: str
    name: str
    priority: int


class InterestAreaRow(TypedDict):
    """``interest_areas``: the catalog (``interests.list_all``)."""

    id: UUID
    slug: str
    name: str
    description: str


class AgentRow(TypedDict):
    """``agents``: ``AGENT_COLUMNS``. The recommended listing (``agents.list_page`` with
    ``recommended_for``) also has ``overlap`` and ``weight``, which no caller reads."""

    id: UUID
    slug: str
    name: str
    description: str
    system_prompt: str
    avatar_url: str | None
    model_name: str | None
    # jsonb: the names of the enabled tools, in the agent's order.
    tools_enabled: list[str]
    # jsonb: the enabled tools whose calls wait for a person's decision (graphs/approval.py).
    tools_requiring_approval: list[str]
    interest_area_ids: list[UUID]
    # ``agent`` (built from this definition) or ``graph`` (a graph of langgraph.json).
    kind: str
    version: int
    created_by: UUID | None
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None


class AgentVersionRow(TypedDict):
    """``agent_versions``: ``VERSION_COLUMNS``, the definition an agent had at one version."""

    agent_id: UUID
    version: int
    name: str
    description: str
    system_prompt: str
    avatar_url: str | None
    model_name: str | None
    tools_enabled: list[str]
    tools_requiring_approval: list[str]
    interest_area_ids: list[UUID]
    created_at: datetime


class ChatRow(TypedDict):
    """``chats``: ``CHAT_COLUMNS``. A chat is also an Agent Protocol thread."""

    id: UUID
    user_id: UUID
    # ``None``: a thread no run has bound to an agent yet.
    agent_id: UUID | None
    title: str | None
    status: ChatStatus
    created_at: datetime
    updated_at: datetime
    last_message_at: datetime | None
    message_count: int
    metadata: dict[str, Any]
    thread_status: ThreadStatus
    # {chat_id, checkpoint_id, message_id?} of the chat this one was forked from.
    forked_from: dict[str, Any] | None


class ThreadRow(ChatRow):
    """A chat as ``threads.get`` and ``threads.search`` read it: with its agent's slug and its
    status as the protocol shows it (``busy`` while it has an active run)."""

    graph_id: str | None
    protocol_status: ThreadStatus | Literal["busy"]


class ImportedFeedback(TypedDict):
    """A vote an import recreates (``feedback.insert_imported``): a ``message_feedback`` row."""

    chat_id: UUID
    message_id: str
    user_id: UUID
    agent_id: UUID | None
    agent_version: int | None
    score: int
    comment: str | None
    created_at: datetime
    updated_at: datetime


class ReadableChatRow(ChatRow):
    """A chat as ``shares.get_readable`` reads it for someone who may read it: whether they
    own it or it is shared with them, and its owner's name."""

    access: Literal["owner", "viewer"]
    owner_name: str


class SharedChatRow(ChatRow):
    """A chat shared with the caller (``shares.shared_with``)."""

    owner_name: str
    role: ShareRole
    shared_at: datetime


class ShareRow(TypedDict):
    """``chat_shares`` with the email of the user it is shared with (``shares.list_for_chat``,
    ``shares.upsert``)."""

    user_id: UUID
    email: str
    role: ShareRole
    created_at: datetime
    # Only in the row ``shares.upsert`` returns: whether the share is new.
    created: NotRequired[bool]


class ShareLinkRow(TypedDict):
    """``chat_share_links`` without its token hash (``shares.LINK_COLUMNS``)."""

    chat_id: UUID
    # The thread's checkpoint the link shows; ``None``: the chat had no messages yet.
    checkpoint_id: str | None
    created_at: datetime


class OpenedLinkRow(ShareLinkRow):
    """A link found by its token (``shares.open_link``), with what its page shows besides the
    messages."""

    title: str | None
    # ``None``: a thread no run has bound to an agent yet.
    agent_name: str | None


class RunRow(TypedDict):
    """``runs``: ``RUN_COLUMNS``."""

    id: UUID
    chat_id: UUID
    user_id: UUID
    agent_id: UUID
    agent_version: int
    model_name: str
    status: RunStatus
    multitask_strategy: MultitaskStrategy
    error: str | None
    # jsonb: token counts (``input_tokens``, ``output_tokens``, ``total_tokens``).
    usage: dict[str, int] | None
    worker_id: str | None
    heartbeat_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    # jsonb: what the run executes (``graphs.runtime.inputs``), validated when read back.
    input: dict[str, Any] | None
    # Where the run's final record is POSTed when it ends (``storage.webhooks``), if anywhere.
    webhook_url: str | None
    # Only in the row ``runs.insert_starting`` returns (the scheduler pops it): whether the
    # thread may hold tool calls a stopped run left unanswered.
    needs_closing: NotRequired[bool]


class ClaimedDeliveryRow(TypedDict):
    """A webhook delivery a process claimed (``webhooks.claim_due``): where to, how many
    attempts came before, and the run as it was when it ended."""

    url: str
    attempted: int
    run: RunRow


class DeliveryStateRow(TypedDict):
    """Where a run's webhook delivery stands (``webhooks.states``)."""

    run_id: UUID
    status: DeliveryStatus
    # jsonb: [{at, status_code, error}], oldest first.
    attempts: list[dict[str, Any]]


class ActiveRunRow(TypedDict):
    """An active run of one host (``runs.active_on_host``): ``worker_id`` matched a pattern,
    so it is set."""

    id: UUID
    worker_id: str


class InterruptedRunRow(TypedDict):
    """A run ``runs.interrupt_stale`` ended."""

    id: UUID
    chat_id: UUID


class ReplayRow(TypedDict):
    """``replays``: ``REPLAY_COLUMNS``."""

    id: UUID
    user_id: UUID
    source_chat_id: UUID
    # ``None`` once the replay's chat was deleted (the report stays).
    target_chat_id: UUID | None
    agent_id: UUID
    # The model the runs use instead of the agent's; ``None``: the agent's own.
    model_name: str | None
    status: ReplayStatus
    total: int
    done: int
    error: str | None
    worker_id: str | None
    heartbeat_at: datetime | None
    resumes: int
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None


class ReplayTurnRow(TypedDict):
    """``replay_turns``: ``TURN_COLUMNS``. ``original`` and ``answer`` are one side of the
    comparison each (``api.services.comparison.answer_of``)."""

    replay_id: UUID
    position: int
    message_id: str
    content: str
    # Its content blocks when the message has images (sent again as they were).
    parts: list[dict[str, Any]] | None
    original: dict[str, Any]
    # The status of the turn's run (``pending`` until one is started).
    status: RunStatus
    run_id: UUID | None
    answer: dict[str, Any] | None
    similarity: float | None
    started_at: datetime | None
    ended_at: datetime | None
    # ``replays.turns`` only: the agent version the turn's run recorded (null: no run).
    agent_version: NotRequired[int | None]


class AdoptedReplayRow(TypedDict):
    """A replay ``replays.adopt`` took over from a process that is gone."""

    id: UUID
    resumes: int


class RefreshTokenRow(TypedDict):
    """``refresh_tokens`` as ``tokens.lock_refresh`` reads it."""

    id: UUID
    user_id: UUID
    family_id: UUID
    expires_at: datetime
    used_at: datetime | None
    revoked_at: datetime | None
    expired: bool


class KnowledgeDocumentRow(TypedDict):
    """``knowledge_documents``: ``DOCUMENT_COLUMNS`` (without its text)."""

    id: UUID
    agent_id: UUID | None
    chat_id: UUID | None
    user_id: UUID | None
    title: str
    filename: str | None
    media_type: str
    bytes: int
    status: DocumentStatus
    error: str | None
    chunk_count: int
    embedding_model: str | None
    created_at: datetime
    indexed_at: datetime | None


class ClaimedDocumentRow(TypedDict):
    """A document the indexer claimed (``knowledge.claim``): what it needs to index it."""

    id: UUID
    agent_id: UUID | None
    chat_id: UUID | None
    text: str


class KnowledgeHitRow(TypedDict):
    """One chunk a search found (``knowledge.search_vector``, ``knowledge.search_text``)."""

    chunk_id: UUID
    document_id: UUID
    title: str
    text: str
    score: float


class ReindexRow(TypedDict):
    """A memory-store vector to make again (``store.claim_reindex``): which item and field,
    and the item's value now (``None`` when the item was deleted meanwhile)."""

    prefix: str
    key: str
    field_name: str
    value: dict[str, Any] | None


class CronRow(TypedDict):
    """``crons``: ``CRON_COLUMNS``. ``chat_id`` null: a stateless cron (a new thread each tick),
    whose ``on_run_completed`` says what becomes of that thread; null for a thread cron."""

    id: UUID
    user_id: UUID
    agent_id: UUID
    chat_id: UUID | None
    schedule: str
    timezone: str | None
    end_time: datetime | None
    enabled: bool
    on_run_completed: Literal["delete", "keep"] | None
    # The run each tick starts: its assistant_id, input, config, stream modes … (jsonb).
    payload: dict[str, Any]
    metadata: dict[str, Any]
    # Null once no tick is left before ``end_time``.
    next_run_date: datetime | None
    created_at: datetime
    updated_at: datetime


class DueCronRow(CronRow):
    """A due cron a scheduler claimed (``crons.claim_due``), with the database's time then."""

    now: datetime


class McpServerRow(TypedDict):
    """``mcp_servers``: ``MCP_SERVER_COLUMNS``. ``tools`` is ``[{name, description,
    input_schema}]`` as of ``refreshed_at``; null before the first refresh. ``headers`` and
    ``env`` may hold secrets: never shown, never logged."""

    id: UUID
    name: str
    transport: Literal["streamable_http", "stdio"]
    url: str | None
    headers: dict[str, str]
    command: str | None
    args: list[str]
    env: dict[str, str]
    tools: list[dict[str, Any]] | None
    refreshed_at: datetime | None
    created_by: UUID | None
    created_at: datetime

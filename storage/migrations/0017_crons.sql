-- Crons, the Agent Protocol's scheduled runs: each tick of a user's schedule starts an ordinary
-- run of agent_id with payload (its input, config, stream modes …), on chat_id (a thread cron)
-- or on a new thread each time (chat_id null: a stateless cron, whose thread is deleted after
-- the run or kept, as on_run_completed says). Every process looks for due crons (next_run_date
-- passed) and claims them with FOR UPDATE SKIP LOCKED, moving next_run_date to the schedule's
-- next tick after now in the same transaction: each tick fires once whatever the number of
-- processes, and one that was missed (nothing was running) fires once, late, not once per tick
-- missed. next_run_date is null once no tick is left before end_time.
CREATE TABLE crons (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    agent_id uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    chat_id uuid REFERENCES chats (id) ON DELETE CASCADE,
    schedule text NOT NULL,
    -- An IANA name; null: UTC.
    timezone text,
    end_time timestamptz,
    enabled boolean NOT NULL DEFAULT true,
    on_run_completed text CHECK (on_run_completed IN ('delete', 'keep')),
    payload jsonb NOT NULL,
    metadata jsonb NOT NULL DEFAULT '{}',
    next_run_date timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    -- What happens to the thread concerns stateless crons only.
    CHECK ((chat_id IS NULL) = (on_run_completed IS NOT NULL))
);
-- The schedulers' look for due crons, and for when the next one is due (every process, every
-- few seconds): disabled crons and those with no tick left are not in it.
CREATE INDEX crons_due_idx ON crons (next_run_date) WHERE enabled AND next_run_date IS NOT NULL;
-- A user's crons (search, count, newest first by default) and the per-user cascade.
CREATE INDEX crons_user_idx ON crons (user_id, created_at DESC);
-- The cascades when a thread is deleted and when an agent goes.
CREATE INDEX crons_chat_idx ON crons (chat_id) WHERE chat_id IS NOT NULL;
CREATE INDEX crons_agent_idx ON crons (agent_id);

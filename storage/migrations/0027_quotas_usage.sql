-- Quotas and usage (storage/quotas.py, storage/usage.py).

-- A user's own limits, set by an admin; a null column is the role's default, which comes from
-- the settings of the process that starts the run (passed to quota_admit below).
CREATE TABLE user_quotas (
    user_id uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    runs_per_minute integer CHECK (runs_per_minute >= 0),
    tokens_per_day bigint CHECK (tokens_per_day >= 0),
    active_runs integer CHECK (active_runs >= 0),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- What runs used, per user, agent, model and UTC day, added to as each run ends (in the same
-- statement that records its end, storage/runs.py). Kept apart from runs: a chat's deletion
-- (or a stateless run's thread, deleted when it ends) takes its runs, not what they used.
-- estimated_tokens: the part of total_tokens that a provider did not report (estimated).
CREATE TABLE usage_daily (
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    day date NOT NULL,
    agent_id uuid NOT NULL,
    model_name text NOT NULL,
    runs integer NOT NULL DEFAULT 0,
    input_tokens bigint NOT NULL DEFAULT 0,
    output_tokens bigint NOT NULL DEFAULT 0,
    total_tokens bigint NOT NULL DEFAULT 0,
    estimated_tokens bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, day, agent_id, model_name)
);
-- The admin's report reads a range of days across users.
CREATE INDEX usage_daily_day_idx ON usage_daily (day);

-- When each user's runs were started in the last minute: the runs-per-minute window. Not
-- counted from runs, whose rows go with their chat (a user deleting chats, or running
-- stateless runs whose threads are deleted as they end, would never reach the limit).
CREATE TABLE run_starts (
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    started_at timestamptz NOT NULL
);
CREATE INDEX run_starts_user_idx ON run_starts (user_id, started_at);

-- Every inserted run is noted, in its insert's transaction (a refused or rolled-back insert
-- notes nothing); the user's notes older than the window go at the same time, so the table
-- holds about a minute of starts per user.
CREATE FUNCTION note_run_start() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM run_starts
    WHERE user_id = NEW.user_id AND started_at < NEW.created_at - interval '1 minute';
    INSERT INTO run_starts (user_id, started_at) VALUES (NEW.user_id, NEW.created_at);
    RETURN NULL;
END
$$;
CREATE TRIGGER runs_note_start AFTER INSERT ON runs
    FOR EACH ROW EXECUTE FUNCTION note_run_start();

-- Refuses a run the user's quotas do not allow, raising SQLSTATE 'SBQ01' with the quota's code
-- as message, the seconds until it frees as detail and the limit as hint; returns otherwise.
-- Called in the transaction that inserts the run, before the insert: under a per-user lock,
-- so runs started at once by several processes are counted one after the other. ``defaults``
-- is each role's limits from the settings: {"user": {"runs_per_minute": 10, ...}, "admin": …};
-- a user's own (user_quotas) win. Users without any limit take no lock.
CREATE FUNCTION quota_admit(p_user uuid, p_defaults jsonb) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_rpm integer;
    v_tpd bigint;
    v_active integer;
    v_now timestamptz;
    v_day date;
    v_used bigint;
    v_count integer;
    v_oldest timestamptz;
BEGIN
    SELECT coalesce(q.runs_per_minute, (p_defaults -> u.role ->> 'runs_per_minute')::integer),
           coalesce(q.tokens_per_day, (p_defaults -> u.role ->> 'tokens_per_day')::bigint),
           coalesce(q.active_runs, (p_defaults -> u.role ->> 'active_runs')::integer)
    INTO v_rpm, v_tpd, v_active
    FROM users u LEFT JOIN user_quotas q ON q.user_id = u.id
    WHERE u.id = p_user;
    IF v_rpm IS NULL AND v_tpd IS NULL AND v_active IS NULL THEN
        RETURN;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtextextended('quota:' || p_user::text, 0));
    -- After the lock: what the runs admitted before this one committed is seen from here on.
    v_now := clock_timestamp();
    IF v_tpd IS NOT NULL THEN
        v_day := (v_now AT TIME ZONE 'UTC')::date;
        SELECT coalesce(sum(total_tokens), 0) INTO v_used
        FROM usage_daily WHERE user_id = p_user AND day = v_day;
        IF v_used >= v_tpd THEN
            RAISE EXCEPTION USING ERRCODE = 'SBQ01', MESSAGE = 'quota_tokens_per_day',
                DETAIL = ceil(extract(epoch FROM ((v_day + 1)::timestamp AT TIME ZONE 'UTC') - v_now))::bigint,
                HINT = v_tpd;
        END IF;
    END IF;
    IF v_rpm IS NOT NULL THEN
        -- The start that must leave the window before one more fits: the v_rpm-th newest.
        SELECT started_at INTO v_oldest FROM run_starts
        WHERE user_id = p_user AND started_at > v_now - interval '1 minute'
        ORDER BY started_at DESC OFFSET greatest(v_rpm - 1, 0) LIMIT 1;
        IF v_rpm = 0 OR v_oldest IS NOT NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'SBQ01', MESSAGE = 'quota_runs_per_minute',
                -- 0 allows none: a minute is as good an answer as any.
                DETAIL = CASE WHEN v_rpm = 0 THEN 60
                    ELSE greatest(1, ceil(extract(epoch FROM v_oldest + interval '1 minute' - v_now)))::bigint END,
                HINT = v_rpm;
        END IF;
    END IF;
    IF v_active IS NOT NULL THEN
        SELECT count(*) INTO v_count FROM runs
        WHERE status IN ('pending', 'running') AND user_id = p_user;
        IF v_count >= v_active THEN
            -- No window: a run may end at any moment.
            RAISE EXCEPTION USING ERRCODE = 'SBQ01', MESSAGE = 'quota_active_runs',
                DETAIL = 1, HINT = v_active;
        END IF;
    END IF;
END
$$;

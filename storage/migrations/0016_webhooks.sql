-- Webhooks: a run may name a URL (`webhook` on run creation, both APIs) that is POSTed the
-- run's final record once it ends (api/services/webhooks.py).

-- The URL, as the API checked it when the run was created.
ALTER TABLE runs ADD COLUMN webhook_url text;

-- One delivery per run with a webhook, made when the run ends, in the same transaction as its
-- final status, whichever statement ends it (a run's own end, a cancel of a queued run, the
-- recovery of a dead process's runs): the trigger below. No foreign key to runs: a delivery
-- outlives its run (a stateless run's thread, and with it the run, is deleted when the run
-- ends), so it keeps the run's row as it ended (`run`) until it is delivered or given up.
CREATE TABLE webhook_deliveries (
    run_id uuid PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    url text NOT NULL,
    status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    -- [{at, status_code, error}], oldest first: what each attempt got (never the secret).
    attempts jsonb NOT NULL DEFAULT '[]',
    -- The run's row when it ended (to_jsonb); null once the delivery is settled.
    run jsonb,
    -- The run was deleted while this was pending: the row goes once it is settled.
    run_deleted boolean NOT NULL DEFAULT false,
    -- When the next attempt is due; a process that claims the delivery moves it past the
    -- attempt's timeout (a lease), so a process that dies mid-attempt leaves it to another.
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- What every process asks every few seconds: the pending deliveries that are due.
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';

CREATE FUNCTION queue_run_webhook() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_deliveries (run_id, user_id, url, run)
    VALUES (NEW.id, NEW.user_id, NEW.webhook_url, to_jsonb(NEW))
    ON CONFLICT (run_id) DO NOTHING;
    RETURN NULL;
END
$$;
CREATE TRIGGER runs_queue_webhook AFTER UPDATE OF status ON runs
    FOR EACH ROW
    WHEN (NEW.webhook_url IS NOT NULL AND OLD.status IN ('pending', 'running')
          AND NEW.status NOT IN ('pending', 'running'))
    EXECUTE FUNCTION queue_run_webhook();

-- A settled delivery goes with its run; a pending one is still sent, and deleted once settled
-- (storage/webhooks.py DELETE_SETTLED), so no URL outlives what it was about. The update
-- locks the delivery's row and reads its latest status, so whichever order this and an
-- attempt's record commit in, the row goes.
CREATE FUNCTION forget_run_webhook() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    settled boolean;
BEGIN
    UPDATE webhook_deliveries SET run_deleted = true WHERE run_id = OLD.id
    RETURNING status <> 'pending' INTO settled;
    IF settled THEN
        DELETE FROM webhook_deliveries WHERE run_id = OLD.id;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER runs_forget_webhook AFTER DELETE ON runs
    FOR EACH ROW
    WHEN (OLD.webhook_url IS NOT NULL)
    EXECUTE FUNCTION forget_run_webhook();

-- Login lockout per (email, client address) instead of per email: five wrong passwords sent
-- by anyone locked the account's owner out too, a free denial of service. client_key is the
-- client's address (an IPv6 client's /64); rows from before this migration have '' and age out
-- with the window.
ALTER TABLE login_failures ADD COLUMN client_key text NOT NULL DEFAULT '';
DROP INDEX login_failures_key_idx;
-- The check counts one address's failures in the window (per email and across emails);
-- a successful login clears its (address, email) failures.
CREATE INDEX login_failures_client_idx ON login_failures (client_key, email_key, failed_at);
-- Every recorded failure prunes the expired ones.
CREATE INDEX login_failures_failed_at_idx ON login_failures (failed_at);

-- Fixed-window request counters per (bucket, client address): registrations and refreshes.
-- One row per pair, reset in place when its window is over; rows of windows long over are
-- pruned whenever a new window starts. In Postgres so the limits hold across API replicas.
CREATE TABLE auth_rate_limits (
    bucket text NOT NULL,
    client_key text NOT NULL,
    hits integer NOT NULL,
    resets_at timestamptz NOT NULL,
    PRIMARY KEY (bucket, client_key)
);
CREATE INDEX auth_rate_limits_resets_idx ON auth_rate_limits (resets_at);

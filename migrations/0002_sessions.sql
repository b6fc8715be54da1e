-- Session state a fleet of lrsgate instances shares (Postgres mode). Applied by `lrsgate migrate`.
--
-- fetch_codes: one row per cmi5 fetch URL, keyed by the SHA-256 of its code (the code itself is
-- never stored). Redeeming is one conditional UPDATE, so of all the instances that receive the
-- same code exactly one hands out the token.
-- session_events: an append-only, versioned log of session ends (the LMS's abandon/end,
-- `terminated`) and revocations (of a session, one token, or a learner). Every instance keeps the ends in memory (the hot path reads no database); it
-- catches up by version when woken by NOTIFY lrsgate_sessions (sent in batches, never from a
-- request's own transaction) and at least every second.
-- session_progress: the cmi5-defined verbs each session has sent (bits, policy::Progress). A
-- statement that sends one is judged against this row and advances it with one conditional
-- UPDATE, so two instances cannot both accept a `completed`, or a `passed` and a `failed`.
-- Times are Unix seconds, as the tokens carry them.

CREATE TABLE fetch_codes (
    code_hash     bytea PRIMARY KEY CHECK (length(code_hash) = 32),
    tenant_id     text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    -- The session claims signed into the auth-token at redemption (JSON).
    claims        text NOT NULL,
    -- After this an unused code answers "already used or expired" (cmi5 error-code 1).
    unused_until  bigint NOT NULL,
    -- The row (as a tombstone once redeemed or stale) is kept until the session would expire.
    keep_until    bigint NOT NULL,
    redeemed_at   bigint
);
CREATE INDEX fetch_codes_keep_until ON fetch_codes (keep_until);

CREATE TABLE session_events (
    version     bigserial PRIMARY KEY,
    tenant_id   text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    -- What the event is about: a session (its id), one token (its jti), or every token a
    -- learner holds (the hex SHA-256 learner key, never the learner's identity itself).
    kind        text NOT NULL DEFAULT 'session' CHECK (kind IN ('session', 'jti', 'learner')),
    subject     text NOT NULL,
    -- 'terminated' (sessions only): the LRS stored the AU's terminated at `at`, the grace runs
    -- from it. For a learner, tokens issued up to `at` are revoked.
    reason      text NOT NULL CHECK (reason IN ('abandoned', 'ended', 'revoked', 'terminated')),
    at          bigint,
    keep_until  bigint NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX session_events_keep_until ON session_events (keep_until);
CREATE INDEX session_events_created_at ON session_events (created_at);

CREATE TABLE session_progress (
    tenant_id     text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    session_id    text NOT NULL,
    bits          integer NOT NULL,
    keep_until    bigint NOT NULL,
    PRIMARY KEY (tenant_id, session_id)
);
CREATE INDEX session_progress_keep_until ON session_progress (keep_until);

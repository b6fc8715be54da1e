-- lrsgate operations (Postgres mode): the audit trail, rate limits per tenant, and the
-- heartbeat rate limits are shared by.

-- Per-tenant rate limits, requests per second; NULL: unlimited. Each instance enforces
-- limit / live instances (see lrsgate_instances).
ALTER TABLE tenants
    ADD COLUMN edge_requests_per_second              bigint  CHECK (edge_requests_per_second > 0),
    ADD COLUMN edge_requests_per_second_per_token    bigint  CHECK (edge_requests_per_second_per_token > 0),
    ADD COLUMN token_requests_per_second_per_api_key bigint  CHECK (token_requests_per_second_per_api_key > 0);

-- The audit trail: append-only (UPDATE is refused; rows leave only by lrsgate's retention
-- sweep, `[audit] retention_days`). No foreign key to tenants: the trail outlives a tenant.
-- Ids are made by lrsgate, so a replayed spool inserts each event once (ON CONFLICT (id)).
-- Learners appear only as lrsgate's salted hash; never a body, token or secret.
CREATE TABLE audit_events (
    id           uuid PRIMARY KEY,
    at           timestamptz NOT NULL,
    kind         text NOT NULL,
    service      text NOT NULL,
    tenant_id    text,
    reason       text,
    resource     text,
    status       smallint,
    session_id   text,
    learner_hash text,
    actor        text,
    request_id   text,
    detail       text,
    stored_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_events_tenant_at ON audit_events (tenant_id, at);
CREATE INDEX audit_events_at ON audit_events (at);
CREATE INDEX audit_events_session ON audit_events (session_id) WHERE session_id IS NOT NULL;
CREATE INDEX audit_events_learner ON audit_events (learner_hash) WHERE learner_hash IS NOT NULL;

CREATE FUNCTION lrsgate_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only';
END;
$$;
CREATE TRIGGER audit_events_append_only BEFORE UPDATE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION lrsgate_audit_append_only();

-- Live instances: each upserts its row every few seconds; rate limits are divided by the
-- number seen recently.
CREATE TABLE lrsgate_instances (
    id         text PRIMARY KEY,
    started_at timestamptz NOT NULL DEFAULT now(),
    last_seen  timestamptz NOT NULL DEFAULT now()
);

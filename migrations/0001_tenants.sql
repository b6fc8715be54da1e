-- lrsgate tenant configuration (Postgres mode). Applied by `lrsgate migrate`, once, in order.
--
-- Every table that describes a tenant fires NOTIFY lrsgate_config, '<tenant_id>' on change, so
-- every lrsgate instance reloads that tenant (and only it) within about a second.
-- Secrets (LRS passwords, signing secrets, TLS private keys) are stored encrypted with
-- AES-256-GCM under lrsgate's master key: `*_enc` holds nonce || ciphertext || tag, `key_id`
-- names the master key that sealed it, so the master key can be rotated.

CREATE TABLE tenants (
    id                        text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_-]{1,64}$'),
    status                    text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    -- The edge's origin as content sees it (cmi5 fetch URLs); NULL: no cmi5 delivery.
    public_origin             text,
    -- Limits and switches; NULL keeps lrsgate's documented default.
    max_body_bytes            bigint CHECK (max_body_bytes > 0),
    default_ttl_seconds       bigint,
    max_ttl_seconds           bigint,
    session_max_seconds       bigint,
    terminated_grace_seconds  bigint,
    fetch_ttl_seconds         bigint,
    cors_max_age_seconds      integer,
    policy_alternate_syntax   text CHECK (policy_alternate_syntax IN ('decode', 'refuse')),
    policy_cmi5_other_objects boolean,
    policy_require_session_id boolean,
    policy_learner_preferences_writes boolean,
    policy_activity_profile_writes    boolean,
    policy_cmi5_session_rules boolean,
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz NOT NULL DEFAULT now()
);

-- Host names (lower case, no port) a tenant is served at: by TLS SNI and by Host.
CREATE TABLE tenant_hosts (
    host      text PRIMARY KEY CHECK (host = lower(host) AND host <> '' AND position(':' in host) = 0),
    tenant_id text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE
);
CREATE INDEX tenant_hosts_tenant ON tenant_hosts (tenant_id);

-- The tenant's LRS nodes: base URLs with their xAPI path, balanced by weight.
CREATE TABLE upstream_nodes (
    id        bigserial PRIMARY KEY,
    tenant_id text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    url       text NOT NULL,
    weight    integer NOT NULL DEFAULT 1 CHECK (weight BETWEEN 1 AND 1000),
    UNIQUE (tenant_id, url)
);

-- The credential lrsgate presents to the tenant's LRS.
CREATE TABLE lrs_credentials (
    tenant_id    text PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    username     text NOT NULL CHECK (position(':' in username) = 0),
    password_enc bytea NOT NULL,
    key_id       text NOT NULL
);

-- HS256 signing secrets; the newest active one signs, every active one verifies.
CREATE TABLE signing_keys (
    id         bigserial PRIMARY KEY,
    tenant_id  text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    algorithm  text NOT NULL DEFAULT 'HS256' CHECK (algorithm = 'HS256'),
    secret_enc bytea NOT NULL,
    key_id     text NOT NULL,
    active     boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX signing_keys_tenant ON signing_keys (tenant_id);

-- LMS API keys, stored only as SHA-256 hashes.
CREATE TABLE lms_api_keys (
    id          bigserial PRIMARY KEY,
    tenant_id   text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    key_hash    bytea NOT NULL UNIQUE CHECK (length(key_hash) = 32),
    description text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz,
    revoked_at  timestamptz
);
CREATE INDEX lms_api_keys_tenant ON lms_api_keys (tenant_id);

-- Browser origins allowed to call the edge ('*' alone allows every origin).
CREATE TABLE cors_origins (
    tenant_id text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    origin    text NOT NULL,
    PRIMARY KEY (tenant_id, origin)
);

-- Courses for the course scope: the course id and its AU activity ids.
CREATE TABLE courses (
    tenant_id  text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    course_id  text NOT NULL,
    activities text[] NOT NULL,
    PRIMARY KEY (tenant_id, course_id)
);

-- TLS certificate chain (PEM) and encrypted private key (PEM) per host, chosen by SNI.
CREATE TABLE tls_certificates (
    host      text PRIMARY KEY REFERENCES tenant_hosts (host) ON DELETE CASCADE,
    tenant_id text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    cert_pem  text NOT NULL,
    key_enc   bytea NOT NULL,
    key_id    text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Operators' admin API keys, stored only as SHA-256 hashes.
CREATE TABLE admin_keys (
    id          bigserial PRIMARY KEY,
    key_hash    bytea NOT NULL UNIQUE CHECK (length(key_hash) = 32),
    description text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

-- NOTIFY lrsgate_config with the changed tenant's id (old and new, when a row moves).
CREATE FUNCTION lrsgate_notify_config() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    new_id text;
    old_id text;
BEGIN
    IF TG_TABLE_NAME = 'tenants' THEN
        IF TG_OP <> 'DELETE' THEN new_id := NEW.id; END IF;
        IF TG_OP <> 'INSERT' THEN old_id := OLD.id; END IF;
    ELSE
        IF TG_OP <> 'DELETE' THEN new_id := NEW.tenant_id; END IF;
        IF TG_OP <> 'INSERT' THEN old_id := OLD.tenant_id; END IF;
    END IF;
    IF new_id IS NOT NULL THEN PERFORM pg_notify('lrsgate_config', new_id); END IF;
    IF old_id IS NOT NULL AND old_id IS DISTINCT FROM new_id THEN
        PERFORM pg_notify('lrsgate_config', old_id);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER tenants_notify AFTER INSERT OR UPDATE OR DELETE ON tenants
    FOR EACH ROW EXECUTE FUNCTION lrsgate_notify_config();
CREATE TRIGGER tenant_hosts_notify AFTER INSERT OR UPDATE OR DELETE ON tenant_hosts
    FOR EACH ROW EXECUTE FUNCTION lrsgate_notify_config();
CREATE TRIGGER upstream_nodes_notify AFTER INSERT OR UPDATE OR DELETE ON upstream_nodes
    FOR EACH ROW EXECUTE FUNCTION lrsgate_notify_config();
CREATE TRIGGER lrs_credentials_notify AFTER INSERT OR UPDATE OR DELETE ON lrs_credentials
    FOR EACH ROW EXECUTE FUNCTION lrsgate_notify_config();
CREATE TRIGGER signing_keys_notify AFTER INSERT OR UPDATE OR DELETE ON signing_keys
    FOR EACH ROW EXECUTE FUNCTION lrsgate_notify_config();
CREATE TRIGGER lms_api_keys_notify AFTER INSERT OR UPDATE OR DELETE ON lms_api_keys
    FOR EACH ROW EXECUTE FUNCTION lrsgate_notify_config();
CREATE TRIGGER cors_origins_notify AFTER INSERT OR UPDATE OR DELETE ON cors_origins
    FOR EACH ROW EXECUTE FUNCTION lrsgate_notify_config();
CREATE TRIGGER courses_notify AFTER INSERT OR UPDATE OR DELETE ON courses
    FOR EACH ROW EXECUTE FUNCTION lrsgate_notify_config();
CREATE TRIGGER tls_certificates_notify AFTER INSERT OR UPDATE OR DELETE ON tls_certificates
    FOR EACH ROW EXECUTE FUNCTION lrsgate_notify_config();

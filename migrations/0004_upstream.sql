-- lrsgate upstream resilience (Postgres mode): how a tenant's LRS nodes are probed and its own
-- upstream timeouts. NULL: the server file's `[upstream]` values (probe: a TCP connect).
ALTER TABLE tenants
    ADD COLUMN upstream_health_check       text   CHECK (upstream_health_check IN ('tcp', 'http')),
    ADD COLUMN upstream_connect_timeout_ms bigint CHECK (upstream_connect_timeout_ms BETWEEN 1 AND 3600000),
    ADD COLUMN upstream_read_timeout_ms    bigint CHECK (upstream_read_timeout_ms BETWEEN 1 AND 3600000),
    ADD COLUMN upstream_total_timeout_ms   bigint CHECK (upstream_total_timeout_ms BETWEEN 1 AND 3600000);

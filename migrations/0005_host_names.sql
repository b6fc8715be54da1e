-- One rule for host names (src/config/names.rs, HostName), shared by the tenants file, this
-- source and the admin API: an IPv6 literal in brackets is a host like any other. The check
-- here stays the coarse belt under that rule: lower case, not empty, and a ':' only inside
-- brackets (never a port).
ALTER TABLE tenant_hosts DROP CONSTRAINT tenant_hosts_host_check;
ALTER TABLE tenant_hosts ADD CONSTRAINT tenant_hosts_host_check
    CHECK (host = lower(host) AND host <> '' AND (position(':' in host) = 0 OR host ~ '^\[[0-9a-f:.]+\]$'));

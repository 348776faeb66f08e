-- B1 baseline: an approver's inbox, the first 50 pending requests of a random
-- tenant with their decisions and latest job, as one SELECT, in a transaction
-- of that tenant as the API's role runs it under row-level security.
\set t random(1, :tenants)
BEGIN;
SELECT set_config('countersign.tenant_id', bench_id('tenant', :t)::text, true);
SELECT r.*, d.decisions, j.job
FROM (SELECT * FROM event_log_requests
      WHERE tenant_id = bench_id('tenant', :t) AND status = 'pending_approval'
      ORDER BY id LIMIT 51) r
LEFT JOIN LATERAL (SELECT json_agg(x ORDER BY x.decided_at, x.id) AS decisions
                   FROM request_decisions x WHERE x.request_id = r.id) d ON true
LEFT JOIN LATERAL (SELECT to_json(y) AS job FROM readout_jobs y
                   WHERE y.tenant_id = r.tenant_id AND y.request_id = r.id
                   ORDER BY y.id DESC LIMIT 1) j ON true
ORDER BY r.id;
COMMIT;

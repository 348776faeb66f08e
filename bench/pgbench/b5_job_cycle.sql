-- B5 baseline: one job cycle of an agent without the approver function, as
-- the API runs it: key insertion (automatic collection: job created and
-- claimed, SKIP LOCKED), an upload of 10 events, completion. Client n is the
-- agent of tenant :first_auto + n, on a random key of K-1..K-150.
\set t :first_auto + :client_id
\set k random(1, 150)
SELECT nextval('bench_cycle_seq') AS n \gset
\set s :seq + 10 * :n
-- key insertion
BEGIN;
SELECT set_config('countersign.tenant_id', bench_id('tenant', :t)::text, true);
SELECT * FROM remote_devices WHERE tenant_id = bench_id('tenant', :t) AND id = bench_id('device', :t, 1);
SELECT * FROM readout_jobs WHERE status = 'running' AND lease_expires_at <= now() AND tenant_id = bench_id('tenant', :t) FOR UPDATE SKIP LOCKED;
SELECT * FROM keys WHERE tenant_id = bench_id('tenant', :t) AND marking = 'K-' || :k LIMIT 1;
SELECT * FROM agents WHERE id = bench_id('agent', :t);
SELECT * FROM readout_jobs WHERE tenant_id = bench_id('tenant', :t) AND target_type = 'key' AND target_id = bench_id('key', :t, :k) AND device_id = bench_id('device', :t, 1) AND status = 'running' ORDER BY id FOR UPDATE SKIP LOCKED;
SELECT * FROM readout_jobs WHERE tenant_id = bench_id('tenant', :t) AND target_type = 'key' AND target_id = bench_id('key', :t, :k) AND kind IN ('request_readout', 'auto_collection') AND status = 'queued' ORDER BY id FOR UPDATE SKIP LOCKED;
SELECT * FROM tenants WHERE id = bench_id('tenant', :t);
INSERT INTO readout_jobs (id, tenant_id, kind, request_id, target_type, target_id, target_marking, status, device_id, attempts, created_at, updated_at)
  VALUES (md5('cycle:' || :s)::uuid, bench_id('tenant', :t), 'auto_collection', NULL, 'key', bench_id('key', :t, :k), 'K-' || :k, 'queued', bench_id('device', :t, 1), 0, now(), now()) RETURNING *;
INSERT INTO history_heads (tenant_id, seq, hash) VALUES (bench_id('tenant', :t), 0, repeat('0', 64)) ON CONFLICT (tenant_id) DO NOTHING;
SELECT * FROM history_heads WHERE tenant_id = bench_id('tenant', :t) FOR UPDATE;
INSERT INTO history_entries (id, tenant_id, seq, at, actor_kind, actor_id, actor_name, actor_programming_key_id, action, subject_type, subject_id, details, prev_hash, hash)
  SELECT gen_random_uuid(), tenant_id, seq + 1, now(), 'agent', bench_id('agent', :t), 'Site agent', NULL, 'job.created', 'job', md5('cycle:' || :s)::uuid, '{"kind": "auto_collection", "status": "queued"}'::json, hash, encode(sha256(convert_to(hash || 'created', 'UTF8')), 'hex')
  FROM history_heads WHERE tenant_id = bench_id('tenant', :t) RETURNING *;
UPDATE history_heads SET seq = seq + 1, hash = encode(sha256(convert_to(hash || 'created', 'UTF8')), 'hex') WHERE tenant_id = bench_id('tenant', :t) RETURNING *;
UPDATE readout_jobs SET status = 'running', resume_status = 'queued', lease_token = gen_random_uuid(), lease_expires_at = now() + interval '60 seconds', device_id = bench_id('device', :t, 1), attempts = 1, updated_at = now()
  WHERE id = md5('cycle:' || :s)::uuid RETURNING *;
INSERT INTO history_heads (tenant_id, seq, hash) VALUES (bench_id('tenant', :t), 0, repeat('0', 64)) ON CONFLICT (tenant_id) DO NOTHING;
SELECT * FROM history_heads WHERE tenant_id = bench_id('tenant', :t) FOR UPDATE;
INSERT INTO history_entries (id, tenant_id, seq, at, actor_kind, actor_id, actor_name, actor_programming_key_id, action, subject_type, subject_id, details, prev_hash, hash)
  SELECT gen_random_uuid(), tenant_id, seq + 1, now(), 'agent', bench_id('agent', :t), 'Site agent', NULL, 'job.claimed', 'job', md5('cycle:' || :s)::uuid, '{"from": "queued", "to": "running", "attempt": 1}'::json, hash, encode(sha256(convert_to(hash || 'claimed', 'UTF8')), 'hex')
  FROM history_heads WHERE tenant_id = bench_id('tenant', :t) RETURNING *;
UPDATE history_heads SET seq = seq + 1, hash = encode(sha256(convert_to(hash || 'claimed', 'UTF8')), 'hex') WHERE tenant_id = bench_id('tenant', :t) RETURNING *;
COMMIT;
-- upload of 10 events
BEGIN;
SELECT set_config('countersign.tenant_id', bench_id('tenant', :t)::text, true);
SELECT * FROM readout_jobs WHERE tenant_id = bench_id('tenant', :t) AND id = md5('cycle:' || :s)::uuid FOR UPDATE;
SELECT * FROM remote_devices WHERE tenant_id = bench_id('tenant', :t) AND agent_id = bench_id('agent', :t) ORDER BY id;
COMMIT;
BEGIN;
SELECT set_config('countersign.tenant_id', bench_id('tenant', :t)::text, true);
SELECT * FROM keys WHERE tenant_id = bench_id('tenant', :t) AND id = bench_id('key', :t, :k);
INSERT INTO events (id, tenant_id, source_type, source_id, device_seq, occurred_at, kind, key_marking, cylinder_marking, job_id, received_at)
  SELECT gen_random_uuid(), bench_id('tenant', :t), 'key', bench_id('key', :t, :k), :s::bigint + e, now(), 'access_granted', 'K-' || :k, 'C-' || e, md5('cycle:' || :s)::uuid, now()
  FROM generate_series(0, 9) e
  ON CONFLICT (tenant_id, source_type, source_id, device_seq) DO NOTHING;
COMMIT;
-- completion
BEGIN;
SELECT set_config('countersign.tenant_id', bench_id('tenant', :t)::text, true);
SELECT * FROM readout_jobs WHERE tenant_id = bench_id('tenant', :t) AND id = md5('cycle:' || :s)::uuid FOR UPDATE;
SELECT * FROM remote_devices WHERE tenant_id = bench_id('tenant', :t) AND agent_id = bench_id('agent', :t) ORDER BY id;
SELECT * FROM agents WHERE id = bench_id('agent', :t);
UPDATE readout_jobs SET status = 'completed', lease_token = NULL, lease_expires_at = NULL, resume_status = NULL, updated_at = now()
  WHERE id = md5('cycle:' || :s)::uuid RETURNING *;
INSERT INTO history_heads (tenant_id, seq, hash) VALUES (bench_id('tenant', :t), 0, repeat('0', 64)) ON CONFLICT (tenant_id) DO NOTHING;
SELECT * FROM history_heads WHERE tenant_id = bench_id('tenant', :t) FOR UPDATE;
INSERT INTO history_entries (id, tenant_id, seq, at, actor_kind, actor_id, actor_name, actor_programming_key_id, action, subject_type, subject_id, details, prev_hash, hash)
  SELECT gen_random_uuid(), tenant_id, seq + 1, now(), 'agent', bench_id('agent', :t), 'Site agent', NULL, 'job.status_changed', 'job', md5('cycle:' || :s)::uuid, '{"from": "running", "to": "completed"}'::json, hash, encode(sha256(convert_to(hash || 'completed', 'UTF8')), 'hex')
  FROM history_heads WHERE tenant_id = bench_id('tenant', :t) RETURNING *;
UPDATE history_heads SET seq = seq + 1, hash = encode(sha256(convert_to(hash || 'completed', 'UTF8')), 'hex') WHERE tenant_id = bench_id('tenant', :t) RETURNING *;
COMMIT;

-- B2 baseline: the statements of one approval (POST /v1/event-log-requests/{id}/approve)
-- in one transaction: lock, decision, state, job, history entries, outbox mail.
-- bench_pool holds the pending requests; each transaction takes the next one.
SELECT p.tenant_id, p.request_id, p.requester, p.t, (s.k / :pool) % 5 + 1 AS a
  FROM (SELECT nextval('bench_pool_seq') - 1 AS k) s
  JOIN bench_pool p ON p.n = s.k % :pool + 1 \gset
BEGIN;
SELECT set_config('countersign.tenant_id', :tenant_id::text, true);
SELECT * FROM event_log_requests WHERE tenant_id = :tenant_id AND id = :request_id FOR UPDATE;
SELECT * FROM tenants WHERE id = :tenant_id;
SELECT * FROM programming_keys WHERE id = bench_id('programming_key', :t, :a);
SELECT * FROM request_decisions WHERE request_id IN (:request_id) ORDER BY decided_at, id;
SELECT * FROM programming_keys WHERE tenant_id = :tenant_id AND status = 'issued' AND blocked = false;
SELECT * FROM employees WHERE tenant_id = :tenant_id AND id IN (SELECT employee_id FROM programming_keys WHERE tenant_id = :tenant_id AND status = 'issued' AND blocked = false);
SELECT * FROM programming_keys WHERE id = bench_id('programming_key', :t, :a);
SELECT * FROM employees WHERE id = bench_id('employee', :t, :a);
INSERT INTO request_decisions (id, tenant_id, request_id, decision, comment, programming_key_id, employee_id, approver_name, decided_at)
  VALUES (gen_random_uuid(), :tenant_id, :request_id, 'approve', 'approved by the benchmark', bench_id('programming_key', :t, :a), bench_id('employee', :t, :a), 'Approver', now())
  ON CONFLICT DO NOTHING RETURNING *;
-- history: request.decided
INSERT INTO history_heads (tenant_id, seq, hash) VALUES (:tenant_id, 0, repeat('0', 64)) ON CONFLICT (tenant_id) DO NOTHING;
SELECT * FROM history_heads WHERE tenant_id = :tenant_id FOR UPDATE;
INSERT INTO history_entries (id, tenant_id, seq, at, actor_kind, actor_id, actor_name, actor_programming_key_id, action, subject_type, subject_id, details, prev_hash, hash)
  SELECT gen_random_uuid(), tenant_id, seq + 1, now(), 'user', bench_id('programming_key', :t, :a), 'Approver', bench_id('programming_key', :t, :a), 'request.decided', 'request', :request_id, '{"verdict": "approve", "comment": "approved by the benchmark"}'::json, hash, encode(sha256(convert_to(hash || 'decided', 'UTF8')), 'hex')
  FROM history_heads WHERE tenant_id = :tenant_id RETURNING *;
UPDATE history_heads SET seq = seq + 1, hash = encode(sha256(convert_to(hash || 'decided', 'UTF8')), 'hex') WHERE tenant_id = :tenant_id RETURNING *;
-- the request is approved
UPDATE event_log_requests SET approved_at = now(), expires_at = now() + interval '8760 hours' WHERE id = :request_id RETURNING *;
UPDATE event_log_requests SET status = 'approved', updated_at = now() WHERE id = :request_id RETURNING *;
-- history: request.status_changed
INSERT INTO history_heads (tenant_id, seq, hash) VALUES (:tenant_id, 0, repeat('0', 64)) ON CONFLICT (tenant_id) DO NOTHING;
SELECT * FROM history_heads WHERE tenant_id = :tenant_id FOR UPDATE;
INSERT INTO history_entries (id, tenant_id, seq, at, actor_kind, actor_id, actor_name, actor_programming_key_id, action, subject_type, subject_id, details, prev_hash, hash)
  SELECT gen_random_uuid(), tenant_id, seq + 1, now(), 'user', bench_id('programming_key', :t, :a), 'Approver', bench_id('programming_key', :t, :a), 'request.status_changed', 'request', :request_id, '{"from": "pending_approval", "to": "approved", "reason": null}'::json, hash, encode(sha256(convert_to(hash || 'approved', 'UTF8')), 'hex')
  FROM history_heads WHERE tenant_id = :tenant_id RETURNING *;
UPDATE history_heads SET seq = seq + 1, hash = encode(sha256(convert_to(hash || 'approved', 'UTF8')), 'hex') WHERE tenant_id = :tenant_id RETURNING *;
-- its job
INSERT INTO readout_jobs (id, tenant_id, kind, request_id, target_type, target_id, target_marking, status, attempts, created_at, updated_at)
  SELECT gen_random_uuid(), tenant_id, 'request_readout', id, target_type, target_id, target_marking,
         CASE WHEN target_type = 'key' THEN 'queued' ELSE 'awaiting_transfer' END, 0, now(), now()
  FROM event_log_requests WHERE id = :request_id RETURNING *;
-- history: job.created
INSERT INTO history_heads (tenant_id, seq, hash) VALUES (:tenant_id, 0, repeat('0', 64)) ON CONFLICT (tenant_id) DO NOTHING;
SELECT * FROM history_heads WHERE tenant_id = :tenant_id FOR UPDATE;
INSERT INTO history_entries (id, tenant_id, seq, at, actor_kind, actor_id, actor_name, actor_programming_key_id, action, subject_type, subject_id, details, prev_hash, hash)
  SELECT gen_random_uuid(), tenant_id, seq + 1, now(), 'user', bench_id('programming_key', :t, :a), 'Approver', bench_id('programming_key', :t, :a), 'job.created', 'job', gen_random_uuid(), '{"kind": "request_readout", "status": "queued", "target": {"type": "key"}}'::json, hash, encode(sha256(convert_to(hash || 'job', 'UTF8')), 'hex')
  FROM history_heads WHERE tenant_id = :tenant_id RETURNING *;
UPDATE history_heads SET seq = seq + 1, hash = encode(sha256(convert_to(hash || 'job', 'UTF8')), 'hex') WHERE tenant_id = :tenant_id RETURNING *;
-- the requester's mail
SELECT * FROM employees WHERE id = :requester;
INSERT INTO mail_outbox (id, tenant_id, recipient, subject, body, status, attempts, next_attempt_at, created_at)
  VALUES (gen_random_uuid(), :tenant_id, 'admin@bench.example', 'Your event-log request was approved', repeat('The request for the event log was approved by Approver. ', 12), 'pending', 0, now(), now()) RETURNING *;
-- the answer: the request with its decisions and job
SELECT * FROM event_log_requests WHERE tenant_id = :tenant_id AND id = :request_id;
SELECT * FROM request_decisions WHERE request_id IN (:request_id) ORDER BY decided_at, id;
SELECT * FROM readout_jobs WHERE request_id IN (:request_id) ORDER BY id DESC;
COMMIT;

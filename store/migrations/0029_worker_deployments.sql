-- Deployments of Python-worker snapshots (issue 13): a job on a backend serves the snapshot
-- through an OpenAI-compatible server, and /v1 proxies to it. Built-in deployments keep
-- kind 'builtin' and none of the job columns.
--   backend, gpu_type: where the job runs (the snapshot's run's backend and GPU type)
--   job_id:            the backend's id for the job ('' until submitted)
--   token_hash:        sha256 of the job's worker-API token; NULL once the job ended
--   serve_key:         the secret the inference server requires, sealed by the vault; NULL once ended
--   url, healthy, health: what the last heartbeat reported
--   first/last_heartbeat_at: the meter runs from the first heartbeat
--   ended_at, failed, reason: how the job ended (stopped_at is when a stop was asked)
--   log: the job's last 64 KiB of log lines
ALTER TABLE deployments ADD COLUMN kind TEXT NOT NULL DEFAULT 'builtin' CHECK (kind IN ('builtin', 'worker'));
ALTER TABLE deployments ADD COLUMN backend TEXT NOT NULL DEFAULT '';
ALTER TABLE deployments ADD COLUMN gpu_type TEXT NOT NULL DEFAULT '';
ALTER TABLE deployments ADD COLUMN job_id TEXT NOT NULL DEFAULT '';
ALTER TABLE deployments ADD COLUMN token_hash BLOB;
ALTER TABLE deployments ADD COLUMN serve_key BLOB;
ALTER TABLE deployments ADD COLUMN url TEXT NOT NULL DEFAULT '';
ALTER TABLE deployments ADD COLUMN healthy INTEGER NOT NULL DEFAULT 0;
ALTER TABLE deployments ADD COLUMN health TEXT NOT NULL DEFAULT '';
ALTER TABLE deployments ADD COLUMN first_heartbeat_at INTEGER;
ALTER TABLE deployments ADD COLUMN last_heartbeat_at INTEGER;
ALTER TABLE deployments ADD COLUMN ended_at INTEGER;
ALTER TABLE deployments ADD COLUMN failed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE deployments ADD COLUMN reason TEXT NOT NULL DEFAULT '';
ALTER TABLE deployments ADD COLUMN log TEXT NOT NULL DEFAULT '';
CREATE UNIQUE INDEX deployments_token ON deployments(token_hash) WHERE token_hash IS NOT NULL;
CREATE INDEX deployments_unended ON deployments(id) WHERE kind = 'worker' AND ended_at IS NULL;

-- A deployment's GPU seconds join the usage ledger under its snapshot's run (so the
-- monthly totals and the Stripe outbox triggers count them unchanged), marked with the
-- deployment. No foreign key: the ledger outlives a purged deployment.
ALTER TABLE usage ADD COLUMN deployment_id INTEGER;
CREATE INDEX usage_deployment ON usage(deployment_id) WHERE deployment_id IS NOT NULL;

-- A person's own scripts may log metrics to their run (POST /api/v1/runs/{id}/metrics)
-- with a token made on the run page; only its SHA-256 is kept.
ALTER TABLE runs ADD COLUMN ingest_token_hash BLOB;
CREATE UNIQUE INDEX runs_ingest_token ON runs(ingest_token_hash) WHERE ingest_token_hash IS NOT NULL;

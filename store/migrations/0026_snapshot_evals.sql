-- Evaluation of snapshots of the built-in model (issue 13): one row per snapshot, queued by
-- "Evaluate" on the run page and worked through in-process, one job at a time. The scores
-- are over the run's held-out rows (at most rows_cap of them). exact_match and contains are
-- NULL for data without reference answers (completion rows score loss only). A job left
-- 'running' by a restart is queued again at start-up.
CREATE TABLE snapshot_evals (
    snapshot_id INTEGER PRIMARY KEY REFERENCES snapshots(id) ON DELETE CASCADE,
    user_id     INTEGER NOT NULL REFERENCES users(id),
    run_id      INTEGER NOT NULL REFERENCES runs(id),
    status      TEXT    NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed')),
    rows        INTEGER NOT NULL DEFAULT 0,                -- held-out rows scored
    eval_loss   REAL,                                      -- nats per byte
    exact_match REAL,                                      -- share 0..1 of greedy answers equal to the reference
    contains    REAL,                                      -- share 0..1 of greedy answers containing the reference
    error       TEXT    NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL,                          -- Unix ms
    updated_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX snapshot_evals_run ON snapshot_evals(run_id);
CREATE INDEX snapshot_evals_status ON snapshot_evals(status, created_at);

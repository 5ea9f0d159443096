-- Evaluation on an uploaded dataset (issue 13): scores are kept per (snapshot, eval set),
-- where the eval set is the run's held-out rows (dataset_id NULL) or one of the person's
-- datasets. The rows of 0026 are kept as scores on the run's held-out set. turn is the
-- queue's claim counter, set when a job starts: the next job goes to the person whose last
-- start is oldest (or who never had one), so one person's "Evaluate all" on many snapshots
-- takes turns with everyone else's jobs instead of going before them.
--
-- A dataset deleted by its owner keeps its finished scores (listed as deleted on the run
-- page, like a run's metrics outlive its training dataset); a job still queued on it fails
-- when its turn comes. Rows go with the dataset's row when that is removed (account purge).
CREATE TABLE snapshot_evals_new (
    id          INTEGER PRIMARY KEY,
    snapshot_id INTEGER NOT NULL REFERENCES snapshots(id) ON DELETE CASCADE,
    dataset_id  INTEGER REFERENCES datasets(id) ON DELETE CASCADE, -- NULL: the run's held-out rows
    set_key     INTEGER NOT NULL GENERATED ALWAYS AS (coalesce(dataset_id, 0)) VIRTUAL,
    user_id     INTEGER NOT NULL REFERENCES users(id),
    run_id      INTEGER NOT NULL REFERENCES runs(id),
    status      TEXT    NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed')),
    rows        INTEGER NOT NULL DEFAULT 0,                -- rows scored
    eval_loss   REAL,                                      -- nats per byte
    exact_match REAL,                                      -- share 0..1 of greedy answers equal to the reference
    contains    REAL,                                      -- share 0..1 of greedy answers containing the reference
    error       TEXT    NOT NULL DEFAULT '',
    turn        INTEGER,                                   -- claim counter of the job's last start; NULL before
    created_at  INTEGER NOT NULL,                          -- Unix ms
    updated_at  INTEGER NOT NULL,
    UNIQUE (snapshot_id, set_key)
) STRICT;
INSERT INTO snapshot_evals_new (snapshot_id, dataset_id, user_id, run_id, status, rows, eval_loss, exact_match, contains, error, created_at, updated_at)
    SELECT snapshot_id, NULL, user_id, run_id, status, rows, eval_loss, exact_match, contains, error, created_at, updated_at
    FROM snapshot_evals ORDER BY created_at, snapshot_id;
DROP TABLE snapshot_evals;
ALTER TABLE snapshot_evals_new RENAME TO snapshot_evals;
CREATE INDEX snapshot_evals_run ON snapshot_evals(run_id, set_key);
CREATE INDEX snapshot_evals_status ON snapshot_evals(status, created_at);
CREATE INDEX snapshot_evals_queue ON snapshot_evals(status, user_id, created_at); -- who waits, and their oldest job
CREATE INDEX snapshot_evals_turns ON snapshot_evals(user_id, turn);                 -- each person's last turn
CREATE INDEX snapshot_evals_turn ON snapshot_evals(turn);                           -- the next turn number
CREATE INDEX snapshot_evals_dataset ON snapshot_evals(dataset_id) WHERE dataset_id IS NOT NULL;

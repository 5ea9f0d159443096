-- Metric rules: conditions on a run's metrics that act without code. A rule with run_id
-- NULL is an account default; a run with rules of its own uses only those.
-- threshold: grad_norm_above's bound; eval_loss_rising's and stale_metrics' count (rises,
-- minutes). notify mails the owner and shows a banner; stop asks the run to stop cleanly.
CREATE TABLE metric_rules (
    id        INTEGER PRIMARY KEY,
    user_id   INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    run_id    INTEGER REFERENCES runs(id) ON DELETE CASCADE,
    kind      TEXT    NOT NULL CHECK (kind IN ('nan_loss', 'eval_loss_rising', 'grad_norm_above', 'stale_metrics')),
    threshold REAL    NOT NULL DEFAULT 0,
    notify    INTEGER NOT NULL DEFAULT 0 CHECK (notify IN (0, 1)),
    stop      INTEGER NOT NULL DEFAULT 0 CHECK (stop IN (0, 1))
) STRICT;
CREATE UNIQUE INDEX metric_rules_one ON metric_rules(user_id, COALESCE(run_id, 0), kind);
CREATE INDEX metric_rules_run ON metric_rules(run_id);

-- Each rule fires at most once per run (UNIQUE): no repeated mails. step is where it fired
-- (NULL for stale metrics: no new point has a step).
CREATE TABLE metric_rule_firings (
    id      INTEGER PRIMARY KEY,
    run_id  INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    kind    TEXT    NOT NULL,
    step    INTEGER,
    message TEXT    NOT NULL,
    notify  INTEGER NOT NULL DEFAULT 0,
    stop    INTEGER NOT NULL DEFAULT 0,
    at      INTEGER NOT NULL,
    UNIQUE (run_id, kind)
) STRICT;

-- Metrics at scale: a series per (run, metric name), points keyed by (series, step) with a
-- per-run sequence for live streams, and min/max/last rollups so a chart of a million
-- points reads a few thousand rows.

CREATE TABLE metric_series (
    id         INTEGER PRIMARY KEY,
    run_id     INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    name       TEXT    NOT NULL,
    points     INTEGER NOT NULL DEFAULT 0,  -- every stored point, finite or not
    first_step INTEGER,
    last_step  INTEGER,
    last_value REAL,                         -- of the highest step; NULL when it was not finite
    UNIQUE (run_id, name)
) STRICT;

-- value is NULL for a non-finite report; kind says which (0 finite, 1 NaN, 2 +Inf, 3 -Inf).
-- seq is the run's sequence number of the point (runs.metric_seq), the SSE event id.
CREATE TABLE metric_points (
    series_id INTEGER NOT NULL REFERENCES metric_series(id) ON DELETE CASCADE,
    step      INTEGER NOT NULL,
    value     REAL,
    kind      INTEGER NOT NULL DEFAULT 0,
    at        INTEGER NOT NULL,
    seq       INTEGER NOT NULL,
    PRIMARY KEY (series_id, step)
) STRICT, WITHOUT ROWID;
CREATE INDEX metric_points_seq ON metric_points(series_id, seq);
CREATE INDEX metric_points_nonfinite ON metric_points(series_id, step) WHERE kind != 0;

-- Level L buckets hold steps [bucket << 4L, (bucket+1) << 4L): 16, 256, 4096, 65536 and
-- 1048576 steps. Finite values only.
CREATE TABLE metric_rollups (
    series_id  INTEGER NOT NULL REFERENCES metric_series(id) ON DELETE CASCADE,
    level      INTEGER NOT NULL,
    bucket     INTEGER NOT NULL,
    n          INTEGER NOT NULL,
    min        REAL    NOT NULL,
    min_step   INTEGER NOT NULL,
    max        REAL    NOT NULL,
    max_step   INTEGER NOT NULL,
    last_step  INTEGER NOT NULL,
    last_value REAL    NOT NULL,
    last_at    INTEGER NOT NULL,
    PRIMARY KEY (series_id, level, bucket)
) STRICT, WITHOUT ROWID;

ALTER TABLE runs ADD COLUMN metric_seq INTEGER NOT NULL DEFAULT 0;

-- Move the points stored so far (finite only, as the old table held).
INSERT INTO metric_series (run_id, name) SELECT DISTINCT run_id, name FROM metrics;
INSERT INTO metric_points (series_id, step, value, kind, at, seq)
    SELECT s.id, m.step, m.value, 0, m.at,
           ROW_NUMBER() OVER (PARTITION BY m.run_id ORDER BY m.id)
    FROM metrics m JOIN metric_series s ON s.run_id = m.run_id AND s.name = m.name;
UPDATE runs SET metric_seq = (SELECT COUNT(*) FROM metrics WHERE metrics.run_id = runs.id);
UPDATE metric_series SET
    points     = (SELECT COUNT(*) FROM metric_points p WHERE p.series_id = metric_series.id),
    first_step = (SELECT MIN(step) FROM metric_points p WHERE p.series_id = metric_series.id),
    last_step  = (SELECT MAX(step) FROM metric_points p WHERE p.series_id = metric_series.id),
    last_value = (SELECT value FROM metric_points p WHERE p.series_id = metric_series.id ORDER BY step DESC LIMIT 1);
DROP TABLE metrics;
-- Rollups of moved points are rebuilt by the store at start-up (RebuildMissingRollups).

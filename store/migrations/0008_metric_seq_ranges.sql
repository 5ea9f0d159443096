-- Ingest at scale: the run's sequence number no longer has an index entry for every point.
-- Each stored batch records, per series, the contiguous range of sequence numbers its new
-- points took and the steps they cover; a live stream resuming after a sequence number reads
-- those ranges, then the points by their (series, step) key. One row per series per batch
-- instead of one index entry per point.
CREATE TABLE metric_seq_ranges (
    run_id    INTEGER NOT NULL,
    seq_hi    INTEGER NOT NULL,
    seq_lo    INTEGER NOT NULL,
    series_id INTEGER NOT NULL REFERENCES metric_series(id) ON DELETE CASCADE,
    step_lo   INTEGER NOT NULL,
    step_hi   INTEGER NOT NULL,
    PRIMARY KEY (run_id, seq_hi)
) STRICT, WITHOUT ROWID;
CREATE INDEX metric_seq_ranges_series ON metric_seq_ranges(series_id);

-- Points stored so far: a batch gave each series consecutive sequence numbers, so the
-- islands of consecutive numbers within a series are exactly the batches' ranges.
INSERT INTO metric_seq_ranges (run_id, seq_hi, seq_lo, series_id, step_lo, step_hi)
    SELECT s.run_id, MAX(p.seq), MIN(p.seq), p.series_id, MIN(p.step), MAX(p.step)
    FROM (SELECT series_id, seq, step,
                 seq - ROW_NUMBER() OVER (PARTITION BY series_id ORDER BY seq) AS island
          FROM metric_points) p
    JOIN metric_series s ON s.id = p.series_id
    GROUP BY p.series_id, p.island;

DROP INDEX metric_points_seq;

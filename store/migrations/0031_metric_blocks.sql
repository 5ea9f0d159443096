-- Metric points in blocks: the finite points a batch appends past the end of a series are
-- stored as one row per series and batch (at most blockMaxPoints points), their values
-- packed in a BLOB, instead of one row a point. Points that arrive out of order (at or
-- before a series' last step) and non-finite reports stay one row a point in
-- metric_points, as before; readers merge both. Rows already in metric_points stay where
-- they are (nothing is moved, so the migration is instant on any size of database).
--
-- A block's points have the same arrival time (at) and consecutive sequence numbers from
-- seq, in step order. data holds n float64 values (8 bytes each, little-endian), then,
-- unless the steps are first_step .. last_step without a gap, the n-1 gaps between
-- consecutive steps as unsigned varints. Blocks of a series never overlap in steps.
CREATE TABLE metric_blocks (
    series_id  INTEGER NOT NULL REFERENCES metric_series(id) ON DELETE CASCADE,
    first_step INTEGER NOT NULL,
    last_step  INTEGER NOT NULL,
    n          INTEGER NOT NULL,
    at         INTEGER NOT NULL,
    seq        INTEGER NOT NULL,
    data       BLOB    NOT NULL,
    PRIMARY KEY (series_id, first_step)
) STRICT;

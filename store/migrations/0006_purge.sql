-- Purging keeps a tombstone of a deleted run (id, owner, times, status) because the usage
-- ledger, a billing record, points at it; everything else about it goes. A purged
-- dataset keeps its row for the runs that name it, without its name or file.
ALTER TABLE runs ADD COLUMN purged_at INTEGER;
ALTER TABLE datasets ADD COLUMN purged_at INTEGER;

-- Runs people can tell apart, and a run list and dashboard that stay fast with thousands
-- of runs: a name, tags and notes per run; the method as an indexed column; keyset indexes
-- for the list and its filters; per-person totals kept by triggers, so the dashboard reads
-- a few rows instead of every run.

ALTER TABLE runs ADD COLUMN name  TEXT NOT NULL DEFAULT '' COLLATE NOCASE;
ALTER TABLE runs ADD COLUMN tags  TEXT NOT NULL DEFAULT '';  -- space-separated, each [a-z0-9-_.]{1,32}
ALTER TABLE runs ADD COLUMN notes TEXT NOT NULL DEFAULT '';
-- Copies of the settings the list shows and filters by, taken from the config (which never
-- changes after insert) so a page of the list decodes no JSON.
ALTER TABLE runs ADD COLUMN method        TEXT    NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN base_model    TEXT    NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN learning_rate REAL    NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN epochs        INTEGER NOT NULL DEFAULT 0;
UPDATE runs SET method = COALESCE(json_extract(config, '$.method'), ''),
    base_model = COALESCE(json_extract(config, '$.base_model'), ''),
    learning_rate = COALESCE(json_extract(config, '$.learning_rate'), 0),
    epochs = COALESCE(json_extract(config, '$.epochs'), 0);
CREATE TRIGGER runs_list_settings AFTER INSERT ON runs BEGIN
    UPDATE runs SET method = COALESCE(json_extract(NEW.config, '$.method'), ''),
        base_model = COALESCE(json_extract(NEW.config, '$.base_model'), ''),
        learning_rate = COALESCE(json_extract(NEW.config, '$.learning_rate'), 0),
        epochs = COALESCE(json_extract(NEW.config, '$.epochs'), 0)
    WHERE id = NEW.id;
END;

-- Existing runs get the name new ones get: model (after its last '/'), method, short id.
UPDATE runs SET name =
    replace(json_extract(config, '$.base_model'), rtrim(json_extract(config, '$.base_model'), replace(json_extract(config, '$.base_model'), '/', '')), '')
    || ' · ' || json_extract(config, '$.method') || ' · ' || lower(hex(randomblob(2)));

-- The list: newest first by (created_at, id), one index per filter so each filter walks
-- its own range. Deleted runs are never listed, so the indexes leave them out.
CREATE INDEX runs_list ON runs(user_id, created_at, id) WHERE deleted_at IS NULL;
CREATE INDEX runs_list_status ON runs(user_id, status, created_at, id) WHERE deleted_at IS NULL;
CREATE INDEX runs_list_method ON runs(user_id, method, created_at, id) WHERE deleted_at IS NULL;
CREATE INDEX runs_list_dataset ON runs(dataset_id, created_at, id) WHERE deleted_at IS NULL;
-- Search by name prefix (LIKE 'abc%' is case-insensitive, so the index is NOCASE).
CREATE INDEX runs_list_name ON runs(user_id, name COLLATE NOCASE) WHERE deleted_at IS NULL;

-- Runs per person and status (deleted runs not counted), kept by the triggers below.
CREATE TABLE run_counts (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    status  TEXT    NOT NULL,
    n       INTEGER NOT NULL,
    PRIMARY KEY (user_id, status)
) STRICT, WITHOUT ROWID;
INSERT INTO run_counts (user_id, status, n)
    SELECT user_id, status, COUNT(*) FROM runs WHERE deleted_at IS NULL GROUP BY user_id, status;

CREATE TRIGGER run_counts_insert AFTER INSERT ON runs WHEN NEW.deleted_at IS NULL BEGIN
    INSERT INTO run_counts (user_id, status, n) VALUES (NEW.user_id, NEW.status, 1)
        ON CONFLICT (user_id, status) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER run_counts_update AFTER UPDATE OF status, deleted_at ON runs
    WHEN OLD.status IS NOT NEW.status OR (OLD.deleted_at IS NULL) IS NOT (NEW.deleted_at IS NULL) BEGIN
    UPDATE run_counts SET n = n - 1 WHERE OLD.deleted_at IS NULL AND user_id = OLD.user_id AND status = OLD.status;
    INSERT INTO run_counts (user_id, status, n) SELECT NEW.user_id, NEW.status, 1 WHERE NEW.deleted_at IS NULL
        ON CONFLICT (user_id, status) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER run_counts_delete AFTER DELETE ON runs WHEN OLD.deleted_at IS NULL BEGIN
    UPDATE run_counts SET n = n - 1 WHERE user_id = OLD.user_id AND status = OLD.status;
END;

-- GPU seconds per person and calendar month (UTC, 'YYYY-MM' of the usage's end), kept as
-- the usage ledger grows. The ledger is never lowered, so neither is this: deleting or
-- purging a run leaves the month's figure as billed.
CREATE TABLE usage_monthly (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    period  TEXT    NOT NULL,
    seconds INTEGER NOT NULL,
    PRIMARY KEY (user_id, period)
) STRICT, WITHOUT ROWID;
INSERT INTO usage_monthly (user_id, period, seconds)
    SELECT r.user_id, strftime('%Y-%m', u.ts / 1000, 'unixepoch'), SUM(u.seconds)
    FROM usage u JOIN runs r ON r.id = u.run_id GROUP BY 1, 2;

CREATE TRIGGER usage_monthly_insert AFTER INSERT ON usage BEGIN
    INSERT INTO usage_monthly (user_id, period, seconds)
        SELECT user_id, strftime('%Y-%m', NEW.ts / 1000, 'unixepoch'), NEW.seconds FROM runs WHERE id = NEW.run_id
        ON CONFLICT (user_id, period) DO UPDATE SET seconds = seconds + excluded.seconds;
END;

-- A purged run's tombstone keeps no words the person wrote.
CREATE TRIGGER runs_purge_labels AFTER UPDATE OF purged_at ON runs WHEN NEW.purged_at IS NOT NULL BEGIN
    UPDATE runs SET name = '', tags = '', notes = '' WHERE id = NEW.id;
END;

-- Privacy rights (issue 12): the audit log, closing an account.

-- The audit log: deletes, exports, account closing, admin actions, key rotation. Append
-- only: the triggers refuse every UPDATE and DELETE, with no exception for the purge,
-- because a row holds no content, only ids and the action's name (never an email, a run
-- name or a file name). Once an account is purged its rows point at its tombstone (the
-- scrubbed users row), so they say "account 12 deleted run 40", nothing about the person.
-- No foreign keys for the same reason: the log outlives what it names.
CREATE TABLE audit_log (
    id         INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL,              -- Unix ms
    actor_id   INTEGER,                       -- the account that did it; NULL: the server itself
    subject_id INTEGER,                       -- the account whose data it was
    action     TEXT    NOT NULL,
    target     TEXT    NOT NULL DEFAULT ''    -- ids only, e.g. "run 40"
) STRICT;
CREATE INDEX audit_log_subject ON audit_log(subject_id, id);
CREATE INDEX audit_log_actor ON audit_log(actor_id, id);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;

-- Closing an account: closed_at hides it at once; signing in within the reopen window
-- offers to reopen it; after the window the purge scrubs the row into a tombstone
-- (purged_at set, no email, no password) that the kept billing records point at.
ALTER TABLE users ADD COLUMN closed_at INTEGER;
ALTER TABLE users ADD COLUMN purged_at INTEGER;
CREATE INDEX users_closed ON users(closed_at) WHERE closed_at IS NOT NULL AND purged_at IS NULL;

INSERT INTO security_event_kinds (kind) VALUES ('account_closed'), ('account_reopened');

-- Data exports: one ZIP per request, built in the background into the vault (encrypted),
-- downloadable once through a mailed link for ExportLinkTTL, then deleted.
CREATE TABLE exports (
    id            INTEGER PRIMARY KEY,
    user_id       INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    state         TEXT    NOT NULL CHECK (state IN ('queued', 'building', 'ready', 'failed', 'expired')),
    progress      INTEGER NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
    file_id       TEXT,                 -- the ZIP in the vault; NULL once deleted
    size_bytes    INTEGER NOT NULL DEFAULT 0,
    token_hash    BLOB    UNIQUE,       -- SHA-256 of the mailed link's token
    error         TEXT    NOT NULL DEFAULT '',
    created_at    INTEGER NOT NULL,
    ready_at      INTEGER,
    expires_at    INTEGER,
    downloaded_at INTEGER
) STRICT;
CREATE INDEX exports_user ON exports(user_id, created_at);
CREATE INDEX exports_due ON exports(expires_at) WHERE file_id IS NOT NULL;
INSERT INTO security_event_kinds (kind) VALUES ('data_export_requested'), ('data_export_downloaded');

-- Uploaded datasets. The content lives encrypted in the vault under file_id; the database
-- keeps only what the pages show without decrypting: counts and the length histogram.
CREATE TABLE datasets (
    id           INTEGER PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name         TEXT    NOT NULL,
    format       TEXT    NOT NULL CHECK (format IN ('chat', 'completion', 'preference')),
    file_id      TEXT    NOT NULL UNIQUE,
    size_bytes   INTEGER NOT NULL,
    row_count    INTEGER NOT NULL,
    est_tokens   INTEGER NOT NULL,
    histogram    TEXT    NOT NULL,  -- JSON: rows per token-length bucket, see store.LengthBuckets
    created_at   INTEGER NOT NULL,
    deleted_at   INTEGER
) STRICT;
CREATE INDEX datasets_owner ON datasets(user_id, deleted_at, id);

-- Account API keys: a person's scripts call /api/v1 with "Authorization: Bearer tl_...".
-- Only the key's SHA-256 is kept (a key has about 190 bits of entropy), with its first
-- characters so the person can tell keys apart.
CREATE TABLE api_keys (
    id           INTEGER PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name         TEXT    NOT NULL,
    prefix       TEXT    NOT NULL,
    hash         BLOB    NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    last_used_at INTEGER,
    revoked_at   INTEGER
) STRICT;
CREATE INDEX api_keys_user ON api_keys(user_id, id);

-- Accounts, signed-in sessions and the security events the admin review reads.
-- Timestamps are Unix milliseconds (UTC).

CREATE TABLE users (
    id                INTEGER PRIMARY KEY,
    email             TEXT    NOT NULL UNIQUE,          -- stored lower-cased and trimmed
    password_hash     TEXT    NOT NULL,                 -- argon2id PHC string, parameters included
    is_admin          INTEGER NOT NULL DEFAULT 0 CHECK (is_admin IN (0, 1)),
    terms_version     TEXT    NOT NULL,
    terms_accepted_at INTEGER NOT NULL,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
) STRICT;

-- scs sessions. The token is kept only as its SHA-256, so a copy of the database
-- cannot be replayed as cookies. user_id lets us list and revoke a person's sessions.
CREATE TABLE sessions (
    token_hash BLOB    PRIMARY KEY,
    data       BLOB    NOT NULL,
    expiry     INTEGER NOT NULL,
    user_id    INTEGER REFERENCES users(id) ON DELETE CASCADE
) STRICT;
CREATE INDEX sessions_expiry ON sessions(expiry);
CREATE INDEX sessions_user ON sessions(user_id);

CREATE TABLE security_events (
    id         INTEGER PRIMARY KEY,
    kind       TEXT    NOT NULL CHECK (kind IN ('signup', 'signin', 'signin_failed', 'signout', 'password_changed', 'rate_limited')),
    user_id    INTEGER REFERENCES users(id) ON DELETE SET NULL,
    email      TEXT    NOT NULL,  -- the account's email, or what was typed for an unknown one
    ip         TEXT    NOT NULL,
    user_agent TEXT    NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX security_events_created ON security_events(created_at);
CREATE INDEX security_events_user ON security_events(user_id, created_at);

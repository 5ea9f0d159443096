-- Two-factor sign-in (TOTP) with recovery codes, and the devices of signed-in sessions.

-- One TOTP seed per person. The seed is sealed with the vault key (AES-256-GCM, key id
-- inside); enabled_at is NULL while enrolment waits for its first correct code.
-- last_used_step is the newest 30-second step whose code was accepted: a code of that
-- step or an older one is refused, so each code works at most once.
CREATE TABLE user_totp (
    user_id        INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    secret_sealed  BLOB    NOT NULL,
    enabled_at     INTEGER,
    last_used_step INTEGER NOT NULL DEFAULT 0,
    created_at     INTEGER NOT NULL
) STRICT;

-- Recovery codes: 120 random bits each, stored as SHA-256; used_at set when spent.
CREATE TABLE recovery_codes (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash  BLOB    NOT NULL,
    used_at    INTEGER,
    created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX recovery_codes_user ON recovery_codes(user_id);

-- Beside scs's sessions table: what a person sees of each signed-in session. Keyed by the
-- same SHA-256 token hash (never the token); rows whose session is gone are not listed
-- and are swept with expired sessions.
CREATE TABLE session_devices (
    id         INTEGER PRIMARY KEY,
    token_hash BLOB    NOT NULL UNIQUE,
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    user_agent TEXT    NOT NULL,
    ip         TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL
) STRICT;
CREATE INDEX session_devices_user ON session_devices(user_id);

-- Tokens of sessions that ended (signed out, revoked, renewed, expired), kept a while so a
-- request that was already running with such a token cannot store its session again when
-- it finishes. Each row goes an hour after the session's own expiry.
CREATE TABLE ended_sessions (
    token_hash BLOB    PRIMARY KEY,
    expiry     INTEGER NOT NULL
) STRICT;
CREATE TRIGGER sessions_ended AFTER DELETE ON sessions BEGIN
    INSERT OR REPLACE INTO ended_sessions (token_hash, expiry) VALUES (old.token_hash, old.expiry + 3600000);
END;

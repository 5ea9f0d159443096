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

-- Outgoing mail: a queue, so a mail survives a restart and a failed send is retried with
-- backoff. Once delivered, the bodies are wiped (a reset link must not linger); the rest
-- stays for the admin's outbox list.
CREATE TABLE mail_queue (
    id              INTEGER PRIMARY KEY,
    kind            TEXT    NOT NULL,
    to_addr         TEXT    NOT NULL,
    subject         TEXT    NOT NULL,
    text_body       TEXT    NOT NULL,
    html_body       TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT    NOT NULL DEFAULT '',
    sent_at         INTEGER,
    failed_at       INTEGER,
    delivered_to    TEXT    NOT NULL DEFAULT ''
) STRICT;
CREATE INDEX mail_queue_due ON mail_queue(next_attempt_at) WHERE sent_at IS NULL AND failed_at IS NULL;

-- Password reset links: only the token's SHA-256, single use, short-lived.
CREATE TABLE password_resets (
    token_hash BLOB    PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
) STRICT;
CREATE INDEX password_resets_user ON password_resets(user_id);

-- Email verification: a link mailed at sign-up; until it is followed a banner asks for it.
ALTER TABLE users ADD COLUMN email_verified_at INTEGER;
CREATE TABLE email_verifications (
    token_hash BLOB    PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    email      TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
) STRICT;
CREATE INDEX email_verifications_user ON email_verifications(user_id);

-- Mail preferences: a mail when a run succeeds or fails, on unless turned off.
ALTER TABLE users ADD COLUMN run_mails INTEGER NOT NULL DEFAULT 1;

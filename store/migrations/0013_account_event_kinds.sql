-- Kinds for account security (two-factor codes, sessions, API keys, password reset and
-- email verification). SQLite cannot change a CHECK, so the table is rebuilt; the list
-- keeps every kind earlier migrations allow.
CREATE TABLE security_events_new (
    id         INTEGER PRIMARY KEY,
    kind       TEXT    NOT NULL CHECK (kind IN ('signup', 'signin', 'signin_failed', 'signout', 'password_changed',
                                                'rate_limited', 'authz_denied', 'worker_token_misuse',
                                                'signup_existing', 'run_deleted', 'dataset_deleted', 'metrics_exported',
                                                'snapshot_deleted',
                                                'totp_enabled', 'totp_disabled', 'totp_failed', 'recovery_code_used',
                                                'recovery_codes_regenerated', 'session_revoked', 'sessions_revoked_others',
                                                'api_key_created', 'api_key_revoked', 'api_key_failed',
                                                'password_reset_requested', 'password_reset', 'email_verified')),
    user_id    INTEGER REFERENCES users(id) ON DELETE SET NULL,
    email      TEXT    NOT NULL,
    ip         TEXT    NOT NULL,
    user_agent TEXT    NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;
INSERT INTO security_events_new (id, kind, user_id, email, ip, user_agent, created_at)
    SELECT id, kind, user_id, email, ip, user_agent, created_at FROM security_events;
DROP TABLE security_events;
ALTER TABLE security_events_new RENAME TO security_events;
CREATE INDEX security_events_created ON security_events(created_at);
CREATE INDEX security_events_user ON security_events(user_id, created_at);

-- Security event kinds move from a CHECK list into a table that security_events references.
-- A CHECK cannot be changed in SQLite, so every new kind used to rebuild the whole table;
-- now a migration that brings new kinds only inserts them here:
--     INSERT INTO security_event_kinds (kind) VALUES ('new_kind');
-- The foreign key still refuses a kind nobody declared.
CREATE TABLE security_event_kinds (
    kind TEXT PRIMARY KEY
) STRICT, WITHOUT ROWID;
INSERT INTO security_event_kinds (kind) VALUES
    ('signup'), ('signin'), ('signin_failed'), ('signout'), ('password_changed'),
    ('rate_limited'), ('authz_denied'), ('worker_token_misuse'),
    ('signup_existing'), ('run_deleted'), ('dataset_deleted'), ('metrics_exported'),
    ('snapshot_deleted'),
    ('totp_enabled'), ('totp_disabled'), ('totp_failed'), ('recovery_code_used'),
    ('recovery_codes_regenerated'), ('session_revoked'), ('sessions_revoked_others'),
    ('api_key_created'), ('api_key_revoked'), ('api_key_failed'),
    ('password_reset_requested'), ('password_reset'), ('email_verified');

CREATE TABLE security_events_new (
    id         INTEGER PRIMARY KEY,
    kind       TEXT    NOT NULL REFERENCES security_event_kinds(kind),
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
CREATE INDEX security_events_kind ON security_events(kind);

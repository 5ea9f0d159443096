-- A run can start from another run's snapshot ("continue from this snapshot"): the run it
-- continues and that snapshot's step are kept beside the config's init_snapshot_id, so the
-- timelines can link both runs even after the snapshot itself is purged.
ALTER TABLE runs ADD COLUMN continued_from_run INTEGER REFERENCES runs(id) ON DELETE SET NULL;
ALTER TABLE runs ADD COLUMN continued_from_step INTEGER;
CREATE INDEX runs_continued ON runs(continued_from_run) WHERE continued_from_run IS NOT NULL;

-- Deleting a snapshot is a security event. SQLite cannot change a CHECK, so the table is
-- rebuilt; the list keeps every kind earlier migrations allow.
CREATE TABLE security_events_new (
    id         INTEGER PRIMARY KEY,
    kind       TEXT    NOT NULL CHECK (kind IN ('signup', 'signin', 'signin_failed', 'signout', 'password_changed',
                                                'rate_limited', 'authz_denied', 'worker_token_misuse',
                                                'signup_existing', 'run_deleted', 'dataset_deleted', 'metrics_exported',
                                                'snapshot_deleted')),
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

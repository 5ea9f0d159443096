-- Fine-tuning runs and everything a run produces: its status timeline, metric points,
-- log lines, snapshots (encrypted in the vault) and the GPU seconds it used.

CREATE TABLE runs (
    id                 INTEGER PRIMARY KEY,
    user_id            INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    dataset_id         INTEGER NOT NULL REFERENCES datasets(id),
    eval_dataset_id    INTEGER REFERENCES datasets(id),
    config             TEXT    NOT NULL,  -- JSON store.RunConfig, validated before insert
    backend            TEXT    NOT NULL,
    job_id             TEXT    NOT NULL DEFAULT '',  -- the backend's name for the job
    status             TEXT    NOT NULL CHECK (status IN ('queued', 'starting', 'running', 'succeeded', 'failed', 'cancelled')),
    reason             TEXT    NOT NULL DEFAULT '',  -- why it failed or was cancelled
    token_hash         BLOB    UNIQUE,               -- SHA-256 of the worker token; NULL once the run ends
    cancel_requested   INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1)),
    step               INTEGER NOT NULL DEFAULT 0,
    total_steps        INTEGER NOT NULL DEFAULT 0,
    retry_of           INTEGER REFERENCES runs(id) ON DELETE SET NULL,
    created_at         INTEGER NOT NULL,
    first_heartbeat_at INTEGER,
    last_heartbeat_at  INTEGER,
    finished_at        INTEGER,
    deleted_at         INTEGER
) STRICT;
CREATE INDEX runs_owner ON runs(user_id, deleted_at, id);
CREATE INDEX runs_active ON runs(status) WHERE status IN ('queued', 'starting', 'running');

-- Every status change (and a cancel request), shown as the run's timeline.
CREATE TABLE run_events (
    id      INTEGER PRIMARY KEY,
    run_id  INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    status  TEXT    NOT NULL,
    note    TEXT    NOT NULL DEFAULT '',
    at      INTEGER NOT NULL
) STRICT;
CREATE INDEX run_events_run ON run_events(run_id, id);

-- One value per metric per step; a worker re-sending a batch cannot duplicate a point.
-- id orders points for live streams (SSE event ids).
CREATE TABLE metrics (
    id      INTEGER PRIMARY KEY,
    run_id  INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    name    TEXT    NOT NULL,
    step    INTEGER NOT NULL,
    value   REAL    NOT NULL,
    at      INTEGER NOT NULL,
    UNIQUE (run_id, name, step)
) STRICT;

CREATE TABLE run_logs (
    id      INTEGER PRIMARY KEY,
    run_id  INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    line    TEXT    NOT NULL,
    at      INTEGER NOT NULL
) STRICT;
CREATE INDEX run_logs_run ON run_logs(run_id, id);

-- Checkpoints; the bytes live encrypted in the vault under file_id.
CREATE TABLE snapshots (
    id          INTEGER PRIMARY KEY,
    run_id      INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step        INTEGER NOT NULL,
    final       INTEGER NOT NULL CHECK (final IN (0, 1)),
    file_id     TEXT    NOT NULL UNIQUE,
    size_bytes  INTEGER NOT NULL,
    sha256      TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    deleted_at  INTEGER,
    UNIQUE (run_id, step)
) STRICT;

-- GPU seconds per run: the source of truth billing reads. seq numbers a run's rows so a
-- meter event can carry a stable identifier (run_<id>_<seq>).
CREATE TABLE usage (
    run_id   INTEGER NOT NULL REFERENCES runs(id),
    seq      INTEGER NOT NULL,
    seconds  INTEGER NOT NULL CHECK (seconds >= 0),
    ts       INTEGER NOT NULL,  -- when the usage ended
    sent_at  INTEGER,
    PRIMARY KEY (run_id, seq)
) STRICT;

-- Worker-token misuse and authorization denials join the security events.
CREATE TABLE security_events_new (
    id         INTEGER PRIMARY KEY,
    kind       TEXT    NOT NULL CHECK (kind IN ('signup', 'signin', 'signin_failed', 'signout', 'password_changed',
                                                'rate_limited', 'authz_denied', 'worker_token_misuse')),
    user_id    INTEGER REFERENCES users(id) ON DELETE SET NULL,
    email      TEXT    NOT NULL,
    ip         TEXT    NOT NULL,
    user_agent TEXT    NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;
INSERT INTO security_events_new SELECT * FROM security_events;
DROP TABLE security_events;
ALTER TABLE security_events_new RENAME TO security_events;
CREATE INDEX security_events_created ON security_events(created_at);
CREATE INDEX security_events_user ON security_events(user_id, created_at);

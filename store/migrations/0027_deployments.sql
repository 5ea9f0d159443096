-- Deployments (issue 13): a snapshot of the built-in model served through the
-- OpenAI-compatible API under /v1. name is the model id clients send ("tl-<run>-<step>"),
-- unique per person; stopped_at is set when the person stops it (a stopped deployment
-- answers model_not_found and cannot be restarted; deploy the snapshot again instead).
CREATE TABLE deployments (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users(id),
    snapshot_id INTEGER NOT NULL REFERENCES snapshots(id) ON DELETE CASCADE, -- purging a snapshot ends its deployments
    name        TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,                         -- Unix ms
    stopped_at  INTEGER                                   -- Unix ms, NULL while live
) STRICT;
CREATE UNIQUE INDEX deployments_live_name ON deployments(user_id, name) WHERE stopped_at IS NULL;
CREATE INDEX deployments_user ON deployments(user_id, id);

-- Fine-tuning jobs made through the OpenAI-compatible API (issue 13, docs/openai.md). Every
-- run is a job under /v1/fine_tuning/jobs ("ftjob-<run id>"); a run made through the API
-- also has this row: what the request carried that a run does not (suffix, metadata) and
-- the deploy-on-success record. fine_tuned_model is the deployment's model id once the
-- succeeded job was deployed; deployed_at is set once the server looked (NULL model: there
-- was nothing it could deploy, a GPU run or a run without a final snapshot).
CREATE TABLE fine_tuning_jobs (
    run_id           INTEGER PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
    user_id          INTEGER NOT NULL REFERENCES users(id),
    model            TEXT    NOT NULL DEFAULT '', -- as the request named it: a base model or a fine-tuned model continued from
    suffix           TEXT    NOT NULL DEFAULT '',
    metadata         TEXT,                -- JSON object of strings, NULL when none was sent
    fine_tuned_model TEXT,
    deployed_at      INTEGER              -- Unix ms
) STRICT;
CREATE INDEX fine_tuning_jobs_pending ON fine_tuning_jobs(run_id) WHERE deployed_at IS NULL;

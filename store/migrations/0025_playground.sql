-- The playground (issue 13): the last prompts each person ran, to look back at and run
-- again. Only the newest 50 per person are kept (SavePlaygroundPrompt trims the rest).
-- model_a and model_b name what generated: "base:<model id>" or "snapshot:<id>";
-- model_b is '' unless two models were compared. stop holds the stop sequences as a
-- JSON list of strings.
CREATE TABLE playground_prompts (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users(id),
    created_at  INTEGER NOT NULL,                         -- Unix ms
    mode        TEXT    NOT NULL CHECK (mode IN ('completion', 'chat')),
    system      TEXT    NOT NULL DEFAULT '',              -- chat: the system message
    prompt      TEXT    NOT NULL,                         -- completion text, or chat: the user message
    model_a     TEXT    NOT NULL,
    model_b     TEXT    NOT NULL DEFAULT '',
    temperature REAL    NOT NULL,
    top_p       REAL    NOT NULL,
    max_tokens  INTEGER NOT NULL,
    stop        TEXT    NOT NULL DEFAULT '[]',
    seed        INTEGER NOT NULL
) STRICT;
CREATE INDEX playground_prompts_user ON playground_prompts(user_id, id);

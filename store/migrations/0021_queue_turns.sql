-- The fair queue takes turns between people: when each person last had a run started.
-- The dispatcher starts the next run of whoever has the fewest runs going and, among
-- those, waited longest since their last start; kept here so a restart keeps the turns.
CREATE TABLE queue_turns (
    user_id       INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    last_start_at INTEGER NOT NULL
) STRICT;

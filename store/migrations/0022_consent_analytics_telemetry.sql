-- Cookie consent proof, consent-gated first-party analytics, the country of security events,
-- their daily aggregates (kept after the 90-day purge of the raw rows), and account suspension.

-- One row per decision, refusals and withdrawals included (GDPR 7(1) proof). No IP, no user agent.
CREATE TABLE consent_records (
    id             TEXT    PRIMARY KEY,             -- random UUID, also kept in the consent cookie
    created_at     INTEGER NOT NULL,
    banner_version TEXT    NOT NULL,
    text_version   TEXT    NOT NULL,
    granted        TEXT    NOT NULL,                -- comma-separated purposes, "necessary" always
    denied         TEXT    NOT NULL,
    source         TEXT    NOT NULL CHECK (source IN ('banner', 'settings', 'withdrawal', 'gpc')),
    previous_id    TEXT,                            -- the decision this one replaced, if known
    user_id        INTEGER REFERENCES users(id) ON DELETE SET NULL
) STRICT;
CREATE INDEX consent_records_user ON consent_records(user_id, created_at);

-- Raw analytics: a daily-salted visitor hash and the country, never the IP.
CREATE TABLE analytics_events (
    id         INTEGER PRIMARY KEY,
    created_at INTEGER NOT NULL,
    visitor    TEXT    NOT NULL,
    kind       TEXT    NOT NULL CHECK (kind IN ('view', 'click', 'scroll')),
    path       TEXT    NOT NULL,
    target     TEXT    NOT NULL DEFAULT '',         -- data-track name of a clicked element
    depth      INTEGER NOT NULL DEFAULT 0 CHECK (depth BETWEEN 0 AND 100),
    referrer   TEXT    NOT NULL DEFAULT '',         -- host of an outside referrer only
    device     TEXT    NOT NULL,
    country    TEXT    NOT NULL
) STRICT;
CREATE INDEX analytics_events_created ON analytics_events(created_at);

-- What the purge keeps of raw analytics: counts per UTC day.
CREATE TABLE analytics_daily (
    day    TEXT    NOT NULL,                        -- YYYY-MM-DD
    metric TEXT    NOT NULL,                        -- views, visitors, page, referrer, device, country, click, scroll
    key    TEXT    NOT NULL,
    count  INTEGER NOT NULL,
    PRIMARY KEY (day, metric, key)
) STRICT, WITHOUT ROWID;

ALTER TABLE security_events ADD COLUMN country TEXT NOT NULL DEFAULT '';

-- What the purge keeps of raw security telemetry: counts per UTC day, kind and country.
CREATE TABLE security_event_daily (
    day     TEXT    NOT NULL,
    kind    TEXT    NOT NULL,
    country TEXT    NOT NULL,
    count   INTEGER NOT NULL,
    PRIMARY KEY (day, kind, country)
) STRICT, WITHOUT ROWID;

CREATE TABLE account_suspensions (
    user_id      INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    suspended_at INTEGER NOT NULL,
    suspended_by INTEGER REFERENCES users(id) ON DELETE SET NULL
) STRICT;

INSERT INTO security_event_kinds (kind) VALUES ('account_suspended'), ('account_unsuspended'), ('signin_suspended');

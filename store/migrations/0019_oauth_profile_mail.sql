-- Sign-in with Google or GitHub, the profile (name, email change), known sign-in devices,
-- and the product-updates preference with one-click unsubscribe.

-- An account's link to a provider's account, by the provider's stable subject (Google's
-- "sub", GitHub's numeric user id), never by email. One link per provider and account.
CREATE TABLE oauth_identities (
    id           INTEGER PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    provider     TEXT    NOT NULL CHECK (provider IN ('google', 'github')),
    subject      TEXT    NOT NULL,
    email        TEXT    NOT NULL,  -- the provider's address when linked, shown in Settings
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    UNIQUE (provider, subject),
    UNIQUE (user_id, provider)
) STRICT;

-- An account made through a provider has no password until it sets one: password_hash is
-- '' then, and no password matches it.
ALTER TABLE users ADD COLUMN display_name TEXT NOT NULL DEFAULT '';
-- Product update mails: off unless the person turns them on.
ALTER TABLE users ADD COLUMN product_mails INTEGER NOT NULL DEFAULT 0;

-- A change of email waits for a link mailed to the new address: only the token's SHA-256,
-- single use, short-lived. The account's email changes when the link is followed.
CREATE TABLE email_changes (
    token_hash BLOB    PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    new_email  TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
) STRICT;
CREATE INDEX email_changes_user ON email_changes(user_id);

-- Devices an account has signed in from: browser family and the client address's prefix
-- (IPv4 /24, IPv6 /48), never the full address. A sign-in from one not listed is mailed.
CREATE TABLE sign_in_devices (
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    device     TEXT    NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL,
    PRIMARY KEY (user_id, device)
) STRICT, WITHOUT ROWID;

-- A non-essential mail carries its one-click unsubscribe link (List-Unsubscribe, RFC 8058).
ALTER TABLE mail_queue ADD COLUMN unsubscribe_url TEXT NOT NULL DEFAULT '';

INSERT INTO security_event_kinds (kind) VALUES
    ('oauth_signin'), ('oauth_linked'), ('oauth_unlinked'), ('oauth_failed'), ('password_set'),
    ('profile_changed'), ('email_change_requested'), ('email_changed'), ('unsubscribed');

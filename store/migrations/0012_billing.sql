-- Billing. A person's Stripe customer and subscription as Stripe's webhooks last told us;
-- only Stripe ids and states, never card data (Checkout and the portal collect cards).
CREATE TABLE billing_accounts (
    user_id             INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    customer_id         TEXT UNIQUE,                 -- cus_…, created once
    subscription_id     TEXT    NOT NULL DEFAULT '', -- sub_…
    subscription_status TEXT    NOT NULL DEFAULT '', -- Stripe's status: active, past_due, canceled…
    price_id            TEXT    NOT NULL DEFAULT '', -- the plan's licensed price
    period_start        INTEGER,                     -- current period, Unix ms
    period_end          INTEGER,
    cancel_at_period_end INTEGER NOT NULL DEFAULT 0 CHECK (cancel_at_period_end IN (0, 1)),
    -- Out-of-order events: `created` (Unix s) and rank of the newest subscription event
    -- applied, and `created` of the newest invoice event applied.
    sub_event_created   INTEGER NOT NULL DEFAULT 0,
    sub_event_rank      INTEGER NOT NULL DEFAULT 0,
    payment_failed_at   INTEGER,                     -- Unix ms of the failure; NULL once paid
    invoice_event_created INTEGER NOT NULL DEFAULT 0,
    monthly_cap_cents   INTEGER NOT NULL DEFAULT 0 CHECK (monthly_cap_cents >= 0), -- 0: no cap
    updated_at          INTEGER NOT NULL
) STRICT;

-- Every Stripe event applied, recorded in the same transaction as its effect, so a
-- redelivered event changes nothing.
CREATE TABLE stripe_events (
    id           TEXT    PRIMARY KEY,
    type         TEXT    NOT NULL,
    created      INTEGER NOT NULL,
    processed_at INTEGER NOT NULL
) STRICT;

-- The meter-event outbox: one row per usage row, written by the same transaction (the
-- trigger below), sent to Stripe as a meter event with identifier run_<id>_<seq>.
-- state: pending (to send), sent (Stripe acknowledged), free (no subscription when the
-- usage was recorded, nothing to bill), empty (0 seconds), too_old (outside Stripe's
-- 35-day window: the operator bills it by hand; never dropped silently).
CREATE TABLE meter_outbox (
    run_id     INTEGER NOT NULL,
    seq        INTEGER NOT NULL,
    user_id    INTEGER NOT NULL,
    gpu_type   TEXT    NOT NULL,
    seconds    INTEGER NOT NULL,
    ts         INTEGER NOT NULL,
    state      TEXT    NOT NULL CHECK (state IN ('pending', 'sent', 'free', 'empty', 'too_old')),
    attempts   INTEGER NOT NULL DEFAULT 0,
    next_try_at INTEGER NOT NULL DEFAULT 0,
    last_error TEXT    NOT NULL DEFAULT '',
    sent_at    INTEGER,
    PRIMARY KEY (run_id, seq),
    FOREIGN KEY (run_id, seq) REFERENCES usage(run_id, seq)
) STRICT;
CREATE INDEX meter_outbox_pending ON meter_outbox(next_try_at) WHERE state = 'pending';

-- Usage recorded before billing existed was never billable.
INSERT INTO meter_outbox (run_id, seq, user_id, gpu_type, seconds, ts, state)
    SELECT u.run_id, u.seq, r.user_id, COALESCE(json_extract(r.config, '$.gpu_type'), ''), u.seconds, u.ts, 'free'
    FROM usage u JOIN runs r ON r.id = u.run_id;

CREATE TRIGGER usage_meter_outbox AFTER INSERT ON usage BEGIN
    INSERT INTO meter_outbox (run_id, seq, user_id, gpu_type, seconds, ts, state)
        SELECT NEW.run_id, NEW.seq, r.user_id, COALESCE(json_extract(r.config, '$.gpu_type'), ''), NEW.seconds, NEW.ts,
            CASE
                WHEN NEW.seconds = 0 THEN 'empty'
                WHEN EXISTS (SELECT 1 FROM billing_accounts b WHERE b.user_id = r.user_id
                             AND b.subscription_status IN ('active', 'trialing', 'past_due', 'unpaid')) THEN 'pending'
                ELSE 'free'
            END
        FROM runs r WHERE r.id = NEW.run_id;
END;

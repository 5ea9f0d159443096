-- A clean stop the server asks of a run's worker (a budget cap, a monthly cap, a payment
-- failed past its grace, a free plan's included time used up): the worker stops at the
-- current step, uploads a final snapshot and finishes the run as cancelled with this reason.
-- stop_requested_at (Unix ms) starts the time the worker has before the stop becomes a
-- plain cancel.
ALTER TABLE runs ADD COLUMN stop_reason TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN stop_requested_at INTEGER;

-- Billing mails sent once each: the payment_failed_at (Unix ms) whose "payment failed"
-- and "suspended" mails were queued. A suspension mailed and then paid gets the "lifted"
-- mail, which clears suspended_mailed_for.
ALTER TABLE billing_accounts ADD COLUMN failed_mailed_for INTEGER;
ALTER TABLE billing_accounts ADD COLUMN suspended_mailed_for INTEGER;

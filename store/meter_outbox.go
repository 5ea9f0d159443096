package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// MeterEvent is one outbox row waiting to reach Stripe: a usage row of a person who was
// subscribed when it was recorded.
type MeterEvent struct {
	RunID      int64
	Seq        int64
	UserID     int64
	GPUType    string
	Seconds    int64
	At         time.Time // when the usage ended
	Attempts   int
	CustomerID string // "" if the person has no Stripe customer (cannot be sent yet)
}

// Identifier is the meter event's stable identifier: a re-send of the same usage row
// carries the same one, so Stripe counts it once.
func (e MeterEvent) Identifier() string { return fmt.Sprintf("run_%d_%d", e.RunID, e.Seq) }

// DueMeterEvents lists pending outbox rows whose next try is due, oldest first.
func (s *Store) DueMeterEvents(ctx context.Context, now time.Time, limit int) ([]MeterEvent, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT o.run_id, o.seq, o.user_id, o.gpu_type, o.seconds, o.ts, o.attempts, COALESCE(b.customer_id, '')
		FROM meter_outbox o LEFT JOIN billing_accounts b ON b.user_id = o.user_id
		WHERE o.state = 'pending' AND o.next_try_at <= ? ORDER BY o.next_try_at, o.ts LIMIT ?`, ms(now), limit)
	if err != nil {
		return nil, fmt.Errorf("store: due meter events: %w", err)
	}
	defer rows.Close()
	var out []MeterEvent
	for rows.Next() {
		var e MeterEvent
		var at int64
		if err := rows.Scan(&e.RunID, &e.Seq, &e.UserID, &e.GPUType, &e.Seconds, &at, &e.Attempts, &e.CustomerID); err != nil {
			return nil, fmt.Errorf("store: due meter events: %w", err)
		}
		e.At = fromMS(at)
		out = append(out, e)
	}
	return out, rows.Err()
}

// NextMeterTry is when the earliest pending outbox row is due (zero when none is pending).
func (s *Store) NextMeterTry(ctx context.Context) (time.Time, error) {
	var next sql.NullInt64
	if err := s.r.QueryRowContext(ctx, "SELECT MIN(next_try_at) FROM meter_outbox WHERE state = 'pending'").Scan(&next); err != nil {
		return time.Time{}, fmt.Errorf("store: next meter try: %w", err)
	}
	if !next.Valid {
		return time.Time{}, nil
	}
	return fromMS(next.Int64), nil
}

// MeterSent records Stripe's acknowledgement of a meter event, on the outbox row and on
// the usage row it reports.
func (s *Store) MeterSent(ctx context.Context, runID, seq int64, at time.Time) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE meter_outbox SET state = 'sent', sent_at = ?, attempts = attempts + 1, last_error = ''
			WHERE run_id = ? AND seq = ? AND state = 'pending'`, ms(at), runID, seq); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, "UPDATE usage SET sent_at = ? WHERE run_id = ? AND seq = ? AND sent_at IS NULL", ms(at), runID, seq)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: meter sent: %w", err)
	}
	return nil
}

// MeterRetry keeps a row pending after a failed send, to be tried again at next.
func (s *Store) MeterRetry(ctx context.Context, runID, seq int64, next time.Time, reason string) error {
	if _, err := s.w.ExecContext(ctx, `UPDATE meter_outbox SET attempts = attempts + 1, next_try_at = ?, last_error = ?
		WHERE run_id = ? AND seq = ? AND state = 'pending'`, ms(next), reason, runID, seq); err != nil {
		return fmt.Errorf("store: meter retry: %w", err)
	}
	return nil
}

// MeterTooOld flags a row Stripe will no longer accept (older than its window): the
// operator bills it by hand; it is kept, never dropped.
func (s *Store) MeterTooOld(ctx context.Context, runID, seq int64, reason string) error {
	if _, err := s.w.ExecContext(ctx, `UPDATE meter_outbox SET state = 'too_old', last_error = ?
		WHERE run_id = ? AND seq = ? AND state = 'pending'`, reason, runID, seq); err != nil {
		return fmt.Errorf("store: meter too old: %w", err)
	}
	return nil
}

// MeterOutboxState is the outbox at a glance, for operators.
type MeterOutboxState struct {
	Pending, Sent, Free, Empty, TooOld int64 // rows
	PendingSeconds, SentSeconds        int64
	OldestPending                      time.Time
	LastError                          string
}

// MeterOutbox summarizes the outbox.
func (s *Store) MeterOutbox(ctx context.Context) (MeterOutboxState, error) {
	var o MeterOutboxState
	var oldest sql.NullInt64
	err := s.r.QueryRowContext(ctx, `SELECT
		COUNT(*) FILTER (WHERE state = 'pending'), COUNT(*) FILTER (WHERE state = 'sent'), COUNT(*) FILTER (WHERE state = 'free'),
		COUNT(*) FILTER (WHERE state = 'empty'), COUNT(*) FILTER (WHERE state = 'too_old'),
		COALESCE(SUM(seconds) FILTER (WHERE state = 'pending'), 0), COALESCE(SUM(seconds) FILTER (WHERE state = 'sent'), 0),
		MIN(ts) FILTER (WHERE state = 'pending'),
		COALESCE((SELECT last_error FROM meter_outbox WHERE state = 'pending' AND last_error != '' ORDER BY next_try_at DESC LIMIT 1), '')
		FROM meter_outbox`).Scan(&o.Pending, &o.Sent, &o.Free, &o.Empty, &o.TooOld, &o.PendingSeconds, &o.SentSeconds, &oldest, &o.LastError)
	if err != nil {
		return o, fmt.Errorf("store: meter outbox: %w", err)
	}
	if oldest.Valid {
		o.OldestPending = fromMS(oldest.Int64)
	}
	return o, nil
}

// MeterReconRow compares, for one person and one calendar month (UTC), the GPU seconds
// in the usage ledger with what Stripe acknowledged through the outbox.
type MeterReconRow struct {
	UserID     int64
	Email      string // "" once the account is gone
	CustomerID string
	Month      string // "2026-11"
	Ledger     int64  // every usage second of the month
	Billable   int64  // the seconds of rows to bill (pending, sent or too old)
	Sent       int64  // acknowledged by Stripe
	Pending    int64  // waiting to be sent
	TooOld     int64  // past Stripe's window: to bill by hand
	Missing    int64  // usage seconds without an outbox row (never expected)
	Mismatched int64  // outbox rows whose seconds differ from their usage row (never expected)
}

// Difference is the billable seconds Stripe has not acknowledged (0 when reconciled).
func (r MeterReconRow) Difference() int64 { return r.Billable + r.Missing - r.Sent }

// Flagged says whether the month needs the operator's eye.
func (r MeterReconRow) Flagged() bool { return r.Difference() != 0 || r.Mismatched != 0 }

// MeterReconciliation lists the latest months with billable usage (or ledger rows missing
// from the outbox), newest first, at most limit rows.
func (s *Store) MeterReconciliation(ctx context.Context, limit int) ([]MeterReconRow, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT r.user_id, COALESCE(us.email, ''), COALESCE(b.customer_id, ''),
			strftime('%Y-%m', u.ts / 1000, 'unixepoch') AS month,
			SUM(u.seconds),
			COALESCE(SUM(o.seconds) FILTER (WHERE o.state IN ('pending', 'sent', 'too_old')), 0),
			COALESCE(SUM(o.seconds) FILTER (WHERE o.state = 'sent'), 0),
			COALESCE(SUM(o.seconds) FILTER (WHERE o.state = 'pending'), 0),
			COALESCE(SUM(o.seconds) FILTER (WHERE o.state = 'too_old'), 0),
			COALESCE(SUM(u.seconds) FILTER (WHERE o.run_id IS NULL), 0),
			COUNT(*) FILTER (WHERE o.run_id IS NOT NULL AND o.seconds != u.seconds)
		FROM usage u JOIN runs r ON r.id = u.run_id
		LEFT JOIN meter_outbox o ON o.run_id = u.run_id AND o.seq = u.seq
		LEFT JOIN users us ON us.id = r.user_id
		LEFT JOIN billing_accounts b ON b.user_id = r.user_id
		GROUP BY r.user_id, month
		HAVING COALESCE(SUM(o.seconds) FILTER (WHERE o.state IN ('pending', 'sent', 'too_old')), 0) > 0
			OR COUNT(*) FILTER (WHERE o.run_id IS NULL) > 0
		ORDER BY month DESC, r.user_id LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("store: meter reconciliation: %w", err)
	}
	defer rows.Close()
	var out []MeterReconRow
	for rows.Next() {
		var m MeterReconRow
		if err := rows.Scan(&m.UserID, &m.Email, &m.CustomerID, &m.Month, &m.Ledger, &m.Billable, &m.Sent, &m.Pending, &m.TooOld,
			&m.Missing, &m.Mismatched); err != nil {
			return nil, fmt.Errorf("store: meter reconciliation: %w", err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

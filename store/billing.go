package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// ErrDuplicateEvent is returned when a Stripe event was applied before; nothing changed.
var ErrDuplicateEvent = errors.New("store: stripe event already applied")

// BillingAccount is a person's Stripe customer and subscription.
type BillingAccount struct {
	UserID             int64
	CustomerID         string
	SubscriptionID     string
	SubscriptionStatus string // Stripe's: active, trialing, past_due, unpaid, canceled, incomplete…
	PriceID            string
	PeriodStart        time.Time // zero without a subscription
	PeriodEnd          time.Time
	CancelAtPeriodEnd  bool
	PaymentFailedAt    time.Time // zero unless the latest invoice failed
	MonthlyCapCents    int64     // the person's cap on a period's usage cost; 0: none
}

// BillingAccount returns the person's billing row; a person who never chose a plan has
// the zero account (with UserID set).
func (s *Store) BillingAccount(ctx context.Context, userID int64) (BillingAccount, error) {
	a := BillingAccount{UserID: userID}
	var cus sql.NullString
	var ps, pe, pf sql.NullInt64
	var cancel int
	err := s.r.QueryRowContext(ctx, `SELECT customer_id, subscription_id, subscription_status, price_id,
		period_start, period_end, cancel_at_period_end, payment_failed_at, monthly_cap_cents FROM billing_accounts WHERE user_id = ?`, userID).
		Scan(&cus, &a.SubscriptionID, &a.SubscriptionStatus, &a.PriceID, &ps, &pe, &cancel, &pf, &a.MonthlyCapCents)
	if errors.Is(err, sql.ErrNoRows) {
		return a, nil
	}
	if err != nil {
		return a, fmt.Errorf("store: billing account: %w", err)
	}
	a.CustomerID, a.CancelAtPeriodEnd = cus.String, cancel == 1
	if ps.Valid {
		a.PeriodStart = fromMS(ps.Int64)
	}
	if pe.Valid {
		a.PeriodEnd = fromMS(pe.Int64)
	}
	if pf.Valid {
		a.PaymentFailedAt = fromMS(pf.Int64)
	}
	return a, nil
}

// SetStripeCustomer stores the person's Stripe customer unless one is stored already, and
// returns the one stored: a person has one customer for good.
func (s *Store) SetStripeCustomer(ctx context.Context, userID int64, customerID string) (string, error) {
	var got string
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO billing_accounts (user_id, customer_id, updated_at) VALUES (?, ?, ?)
			ON CONFLICT (user_id) DO UPDATE SET customer_id = COALESCE(customer_id, excluded.customer_id),
			updated_at = excluded.updated_at`, userID, customerID, ms(s.now())); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, "SELECT customer_id FROM billing_accounts WHERE user_id = ?", userID).Scan(&got)
	})
	if err != nil {
		return "", fmt.Errorf("store: set stripe customer: %w", err)
	}
	return got, nil
}

// StripeEvent identifies one Stripe event: its id, type and `created` (Unix seconds).
type StripeEvent struct {
	ID      string
	Type    string
	Created int64
}

// Subscription is a subscription's state as one event carries it.
type Subscription struct {
	ID                string
	Status            string
	PriceID           string
	PeriodStart       time.Time
	PeriodEnd         time.Time
	CancelAtPeriodEnd bool
	// Rank orders events of the same second: created < checkout < updated < deleted.
	Rank int
}

// BillingChange is what one Stripe event changes for one customer.
type BillingChange struct {
	CustomerID   string
	UserID       int64         // set by checkout.session.completed (client_reference_id); else found by CustomerID
	Subscription *Subscription // nil: unchanged
	// PaymentFailed is set by invoice.payment_failed (true) and invoice.paid (false).
	PaymentFailed *bool
}

// ApplyStripeEvent records the event and applies its change in one transaction. An event
// seen before returns ErrDuplicateEvent and changes nothing. A change older than what
// the account already holds (by the event's `created`, then Rank) is recorded but not
// applied, so events delivered out of order end in the newest state. An event for a
// customer tunelab does not know is recorded and changes nothing (applied is false).
func (s *Store) ApplyStripeEvent(ctx context.Context, ev StripeEvent, ch BillingChange) (applied bool, err error) {
	now := ms(s.now())
	err = s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO stripe_events (id, type, created, processed_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (id) DO NOTHING`, ev.ID, ev.Type, ev.Created, now)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrDuplicateEvent
		}
		userID := ch.UserID
		if userID != 0 && ch.CustomerID != "" {
			// Checkout names the person; the customer is the one made for them.
			if _, err := tx.ExecContext(ctx, `INSERT INTO billing_accounts (user_id, customer_id, updated_at)
				SELECT id, ?, ? FROM users WHERE id = ?
				ON CONFLICT (user_id) DO UPDATE SET customer_id = COALESCE(customer_id, excluded.customer_id)`,
				ch.CustomerID, now, userID); err != nil {
				return err
			}
		}
		if err := tx.QueryRowContext(ctx, "SELECT user_id FROM billing_accounts WHERE customer_id = ?", ch.CustomerID).Scan(&userID); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return nil
			}
			return err
		}
		if sub := ch.Subscription; sub != nil {
			var curID string
			var curCreated, curRank int64
			if err := tx.QueryRowContext(ctx, "SELECT subscription_id, sub_event_created, sub_event_rank FROM billing_accounts WHERE user_id = ?",
				userID).Scan(&curID, &curCreated, &curRank); err != nil {
				return err
			}
			newer := ev.Created > curCreated || (ev.Created == curCreated && int64(sub.Rank) >= curRank)
			// A subscription that ended while another replaced it does not end the new one.
			other := curID != "" && curID != sub.ID && sub.Status == "canceled"
			if newer && !other {
				var ps, pe any
				if !sub.PeriodStart.IsZero() {
					ps, pe = ms(sub.PeriodStart), ms(sub.PeriodEnd)
				}
				if _, err := tx.ExecContext(ctx, `UPDATE billing_accounts SET subscription_id = ?, subscription_status = ?,
					price_id = CASE WHEN ? = '' THEN price_id ELSE ? END,
					period_start = COALESCE(?, period_start), period_end = COALESCE(?, period_end), cancel_at_period_end = ?,
					sub_event_created = ?, sub_event_rank = ?, updated_at = ? WHERE user_id = ?`,
					sub.ID, sub.Status, sub.PriceID, sub.PriceID, ps, pe, sub.CancelAtPeriodEnd,
					ev.Created, sub.Rank, now, userID); err != nil {
					return err
				}
				applied = true
			}
		}
		if ch.PaymentFailed != nil {
			var failed any
			if *ch.PaymentFailed {
				failed = ev.Created * 1000
			}
			res, err := tx.ExecContext(ctx, `UPDATE billing_accounts SET payment_failed_at = ?, invoice_event_created = ?, updated_at = ?
				WHERE user_id = ? AND invoice_event_created <= ?`, failed, ev.Created, now, userID, ev.Created)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n > 0 {
				applied = true
			}
		}
		return nil
	})
	if errors.Is(err, ErrDuplicateEvent) {
		return false, err
	}
	if err != nil {
		return false, fmt.Errorf("store: apply stripe event %s: %w", ev.ID, err)
	}
	return applied, nil
}

// StripeEventSeen says whether an event id was applied.
func (s *Store) StripeEventSeen(ctx context.Context, id string) (bool, error) {
	var n int
	if err := s.r.QueryRowContext(ctx, "SELECT COUNT(*) FROM stripe_events WHERE id = ?", id).Scan(&n); err != nil {
		return false, fmt.Errorf("store: stripe event: %w", err)
	}
	return n > 0, nil
}

// RunUsage is one run's GPU time within a period.
type RunUsage struct {
	RunID   int64
	Name    string // "" once the run was purged
	Deleted bool
	GPUType string
	Seconds int64
	EndedAt time.Time // the latest usage of the run in the period
	// Serving marks the GPU time of the run's snapshots' deployments (their inference
	// servers), kept apart from the run's own training time.
	Serving bool
}

// UsageBetween lists the person's GPU time per run from the usage ledger for usage that
// ended in [from, to), oldest first. Deleted and purged runs stay: the ledger is a
// billing record.
func (s *Store) UsageBetween(ctx context.Context, userID int64, from, to time.Time) ([]RunUsage, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT r.id, r.name, r.deleted_at IS NOT NULL, COALESCE(json_extract(r.config, '$.gpu_type'), ''),
		SUM(u.seconds), MAX(u.ts), u.deployment_id IS NOT NULL
		FROM usage u JOIN runs r ON r.id = u.run_id
		WHERE r.user_id = ? AND u.ts >= ? AND u.ts < ?
		GROUP BY r.id, u.deployment_id IS NOT NULL ORDER BY MAX(u.ts), r.id`, userID, ms(from), ms(to))
	if err != nil {
		return nil, fmt.Errorf("store: usage between: %w", err)
	}
	defer rows.Close()
	var out []RunUsage
	for rows.Next() {
		var u RunUsage
		var end int64
		if err := rows.Scan(&u.RunID, &u.Name, &u.Deleted, &u.GPUType, &u.Seconds, &end, &u.Serving); err != nil {
			return nil, fmt.Errorf("store: usage between: %w", err)
		}
		u.EndedAt = fromMS(end)
		out = append(out, u)
	}
	return out, rows.Err()
}

// Throughput is what finished runs of a base model on a GPU type trained: dataset tokens
// times epochs, the GPU seconds they took, and how many runs that is (succeeded runs with
// usage only, everyone's: it measures the hardware, not the person).
func (s *Store) Throughput(ctx context.Context, model, gpuType string) (tokens, seconds int64, runs int, err error) {
	err = s.r.QueryRowContext(ctx, `SELECT COALESCE(SUM(d.est_tokens * json_extract(r.config, '$.epochs')), 0), COALESCE(SUM(u.s), 0), COUNT(*)
		FROM runs r JOIN datasets d ON d.id = r.dataset_id
		JOIN (SELECT run_id, SUM(seconds) AS s FROM usage WHERE deployment_id IS NULL GROUP BY run_id) u ON u.run_id = r.id
		WHERE r.status = 'succeeded' AND u.s > 0 AND d.est_tokens > 0
		AND json_extract(r.config, '$.base_model') = ? AND json_extract(r.config, '$.gpu_type') = ?`, model, gpuType).
		Scan(&tokens, &seconds, &runs)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("store: throughput: %w", err)
	}
	return tokens, seconds, runs, nil
}

// SetMonthlyCap sets the person's cap on a period's usage cost, in US cents (0: none).
func (s *Store) SetMonthlyCap(ctx context.Context, userID, cents int64) error {
	if _, err := s.w.ExecContext(ctx, `INSERT INTO billing_accounts (user_id, monthly_cap_cents, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (user_id) DO UPDATE SET monthly_cap_cents = excluded.monthly_cap_cents, updated_at = excluded.updated_at`,
		userID, cents, ms(s.now())); err != nil {
		return fmt.Errorf("store: set monthly cap: %w", err)
	}
	return nil
}

// RunGPUTypes is the GPU type of each of a person's runs among ids (the run list's rows
// leave the config out; only live rows need it, for their cost).
func (s *Store) RunGPUTypes(ctx context.Context, userID int64, ids []int64) (map[int64]string, error) {
	out := make(map[int64]string, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	args := []any{userID}
	for _, id := range ids {
		args = append(args, id)
	}
	rows, err := s.r.QueryContext(ctx, "SELECT id, COALESCE(json_extract(config, '$.gpu_type'), '') FROM runs WHERE user_id = ? AND id IN ("+
		placeholders(len(ids))+")", args...)
	if err != nil {
		return nil, fmt.Errorf("store: run gpu types: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var gt string
		if err := rows.Scan(&id, &gt); err != nil {
			return nil, fmt.Errorf("store: run gpu types: %w", err)
		}
		out[id] = gt
	}
	return out, rows.Err()
}

package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Billing notice kinds: mails about a person's billing state, each queued once.
const (
	NoticePaymentFailed = "billing_payment_failed"
	NoticeSuspended     = "billing_suspended"
	NoticeLifted        = "billing_lifted"
	// MailRunStopped is the mail of a run billing stopped cleanly (a cap, a suspension).
	MailRunStopped = "run_stopped"
)

// BillingNotice is a billing mail due to one person.
type BillingNotice struct {
	Kind            string // NoticePaymentFailed, NoticeSuspended or NoticeLifted
	UserID          int64
	Email           string
	PaymentFailedAt time.Time // of the failure it is about (zero for NoticeLifted)
}

// DueBillingNotices lists the billing mails not yet queued: a payment failure not mailed,
// a failure older than grace whose suspension was not mailed, a mailed suspension now paid.
func (s *Store) DueBillingNotices(ctx context.Context, grace time.Duration) ([]BillingNotice, error) {
	suspendedBy := ms(s.now().Add(-grace))
	rows, err := s.r.QueryContext(ctx, `SELECT b.user_id, u.email, b.payment_failed_at,
			CASE
				WHEN b.payment_failed_at IS NULL THEN ?
				WHEN b.payment_failed_at <= ? AND b.suspended_mailed_for IS NOT b.payment_failed_at THEN ?
				ELSE ?
			END
		FROM billing_accounts b JOIN users u ON u.id = b.user_id
		WHERE (b.payment_failed_at IS NULL AND b.suspended_mailed_for IS NOT NULL)
			OR (b.payment_failed_at IS NOT NULL AND b.failed_mailed_for IS NOT b.payment_failed_at)
			OR (b.payment_failed_at IS NOT NULL AND b.payment_failed_at <= ? AND b.suspended_mailed_for IS NOT b.payment_failed_at)
		ORDER BY b.user_id`, NoticeLifted, suspendedBy, NoticeSuspended, NoticePaymentFailed, suspendedBy)
	if err != nil {
		return nil, fmt.Errorf("store: due billing notices: %w", err)
	}
	defer rows.Close()
	var out []BillingNotice
	for rows.Next() {
		var n BillingNotice
		var failed sql.NullInt64
		if err := rows.Scan(&n.UserID, &n.Email, &failed, &n.Kind); err != nil {
			return nil, fmt.Errorf("store: due billing notices: %w", err)
		}
		if failed.Valid {
			n.PaymentFailedAt = fromMS(failed.Int64)
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

// QueueBillingNotice queues a billing notice's mail and marks it sent in one transaction,
// so it is queued once however many sweeps race; queued is false when the notice is no
// longer due (already queued, or the state moved on: paid meanwhile, say).
func (s *Store) QueueBillingNotice(ctx context.Context, n BillingNotice, m NewMail) (queued bool, err error) {
	now := ms(s.now())
	var failed any
	if !n.PaymentFailedAt.IsZero() {
		failed = ms(n.PaymentFailedAt)
	}
	var mark string
	switch n.Kind {
	case NoticePaymentFailed:
		mark = `UPDATE billing_accounts SET failed_mailed_for = payment_failed_at
			WHERE user_id = ? AND payment_failed_at IS ? AND failed_mailed_for IS NOT payment_failed_at`
	case NoticeSuspended:
		mark = `UPDATE billing_accounts SET suspended_mailed_for = payment_failed_at, failed_mailed_for = payment_failed_at
			WHERE user_id = ? AND payment_failed_at IS ? AND suspended_mailed_for IS NOT payment_failed_at`
	case NoticeLifted:
		mark = `UPDATE billing_accounts SET suspended_mailed_for = NULL
			WHERE user_id = ? AND payment_failed_at IS ? AND suspended_mailed_for IS NOT NULL`
	default:
		return false, fmt.Errorf("store: unknown billing notice %q", n.Kind)
	}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, mark, n.UserID, failed)
		if err != nil {
			return err
		}
		if k, _ := res.RowsAffected(); k == 0 {
			return nil
		}
		queued = true
		_, err = tx.ExecContext(ctx, `INSERT INTO mail_queue (kind, to_addr, subject, text_body, html_body, created_at, next_attempt_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, m.Kind, m.To, m.Subject, m.Text, m.HTML, now, now)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("store: queue billing notice: %w", err)
	}
	return queued, nil
}

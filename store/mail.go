package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// The mail queue: a mail is a row until it is delivered (over SMTP, or as a file in the
// outbox); a failed attempt is retried later, so nothing is lost on a restart or while
// the mail server is down.

// Mail kinds.
const (
	MailPasswordReset   = "password_reset"
	MailPasswordChanged = "password_changed"
)

// MailMaxAttempts is how many deliveries are tried before a mail is given up.
const MailMaxAttempts = 10

// NewMail is a mail to send.
type NewMail struct {
	Kind    string
	To      string
	Subject string
	Text    string
	HTML    string
	// Unsubscribe is the one-click unsubscribe link of a non-essential mail (sent as
	// List-Unsubscribe with List-Unsubscribe-Post); "" for essential mail.
	Unsubscribe string
}

// Mail is a queued or delivered mail. Text and HTML are empty once it is delivered.
type Mail struct {
	ID            int64
	Kind          string
	To            string
	Subject       string
	Text          string
	HTML          string
	CreatedAt     time.Time
	NextAttemptAt time.Time
	Attempts      int
	LastError     string
	SentAt        time.Time // zero until delivered
	FailedAt      time.Time // zero unless given up
	DeliveredTo   string    // "smtp" or the outbox file's name
	Unsubscribe   string    // one-click unsubscribe link; wiped with the bodies
}

const mailColumns = `id, kind, to_addr, subject, text_body, html_body, created_at, next_attempt_at, attempts,
	last_error, sent_at, failed_at, delivered_to, unsubscribe_url`

func scanMail(row interface{ Scan(...any) error }) (Mail, error) {
	var m Mail
	var created, next int64
	var sent, failed sql.NullInt64
	if err := row.Scan(&m.ID, &m.Kind, &m.To, &m.Subject, &m.Text, &m.HTML, &created, &next, &m.Attempts,
		&m.LastError, &sent, &failed, &m.DeliveredTo, &m.Unsubscribe); err != nil {
		return Mail{}, err
	}
	m.CreatedAt, m.NextAttemptAt = fromMS(created), fromMS(next)
	if sent.Valid {
		m.SentAt = fromMS(sent.Int64)
	}
	if failed.Valid {
		m.FailedAt = fromMS(failed.Int64)
	}
	return m, nil
}

func (s *Store) queryMail(ctx context.Context, db *sql.DB, q string, args ...any) ([]Mail, error) {
	rows, err := db.QueryContext(ctx, "SELECT "+mailColumns+" FROM mail_queue "+q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Mail
	for rows.Next() {
		m, err := scanMail(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// EnqueueMail stores a mail to send now.
func (s *Store) EnqueueMail(ctx context.Context, m NewMail) (int64, error) {
	now := ms(s.now())
	var id int64
	err := s.w.QueryRowContext(ctx, `INSERT INTO mail_queue (kind, to_addr, subject, text_body, html_body, created_at, next_attempt_at, unsubscribe_url)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`, m.Kind, m.To, m.Subject, m.Text, m.HTML, now, now, m.Unsubscribe).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("store: enqueue mail: %w", err)
	}
	return id, nil
}

// DueMail returns up to limit mails waiting whose next attempt is due, oldest first.
func (s *Store) DueMail(ctx context.Context, limit int) ([]Mail, error) {
	out, err := s.queryMail(ctx, s.w, "WHERE sent_at IS NULL AND failed_at IS NULL AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?",
		ms(s.now()), limit)
	if err != nil {
		return nil, fmt.Errorf("store: due mail: %w", err)
	}
	return out, nil
}

// NextMailAttempt is when the earliest waiting mail is due; ok is false when none waits.
func (s *Store) NextMailAttempt(ctx context.Context) (at time.Time, ok bool, err error) {
	var next sql.NullInt64
	err = s.w.QueryRowContext(ctx, "SELECT MIN(next_attempt_at) FROM mail_queue WHERE sent_at IS NULL AND failed_at IS NULL").Scan(&next)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("store: next mail: %w", err)
	}
	if !next.Valid {
		return time.Time{}, false, nil
	}
	return fromMS(next.Int64), true, nil
}

// MailSent records a delivery and wipes the bodies.
func (s *Store) MailSent(ctx context.Context, id int64, deliveredTo string) error {
	_, err := s.w.ExecContext(ctx, `UPDATE mail_queue SET sent_at = ?, attempts = attempts + 1, delivered_to = ?, last_error = '',
		text_body = '', html_body = '', unsubscribe_url = '' WHERE id = ?`, ms(s.now()), deliveredTo, id)
	if err != nil {
		return fmt.Errorf("store: mail sent: %w", err)
	}
	return nil
}

// MailFailed records a failed attempt: the mail is tried again at retryAt, or given up
// (its bodies wiped) once it has had MailMaxAttempts attempts.
func (s *Store) MailFailed(ctx context.Context, id int64, reason string, retryAt time.Time) (gaveUp bool, err error) {
	var attempts int
	err = s.w.QueryRowContext(ctx, `UPDATE mail_queue SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?
		WHERE id = ? RETURNING attempts`, clip(reason, 500), ms(retryAt), id).Scan(&attempts)
	if errors.Is(err, sql.ErrNoRows) {
		return false, ErrNotFound
	}
	if err != nil {
		return false, fmt.Errorf("store: mail failed: %w", err)
	}
	if attempts < MailMaxAttempts {
		return false, nil
	}
	_, err = s.w.ExecContext(ctx, "UPDATE mail_queue SET failed_at = ?, text_body = '', html_body = '', unsubscribe_url = '' WHERE id = ?", ms(s.now()), id)
	if err != nil {
		return false, fmt.Errorf("store: mail failed: %w", err)
	}
	return true, nil
}

// RecentMail lists the newest mails, waiting or not, for the admin's outbox.
func (s *Store) RecentMail(ctx context.Context, limit int) ([]Mail, error) {
	out, err := s.queryMail(ctx, s.r, "ORDER BY id DESC LIMIT ?", limit)
	if err != nil {
		return nil, fmt.Errorf("store: recent mail: %w", err)
	}
	return out, nil
}

// PurgeMailAndLinks deletes mail records (sent or given up) older than TelemetryRetention,
// and reset and verification links a day past their expiry.
func (s *Store) PurgeMailAndLinks(ctx context.Context) (int64, error) {
	now := s.now()
	var total int64
	for _, q := range []struct {
		sql string
		arg int64
	}{
		{"DELETE FROM mail_queue WHERE (sent_at IS NOT NULL OR failed_at IS NOT NULL) AND created_at < ?", ms(now.Add(-TelemetryRetention))},
		{"DELETE FROM password_resets WHERE expires_at < ?", ms(now.Add(-24 * time.Hour))},
		{"DELETE FROM email_verifications WHERE expires_at < ?", ms(now.Add(-24 * time.Hour))},
		{"DELETE FROM email_changes WHERE expires_at < ?", ms(now.Add(-24 * time.Hour))},
	} {
		res, err := s.w.ExecContext(ctx, q.sql, q.arg)
		if err != nil {
			return total, fmt.Errorf("store: purge mail: %w", err)
		}
		n, _ := res.RowsAffected()
		total += n
	}
	return total, nil
}

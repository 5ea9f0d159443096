package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// MailRunEnded is the kind of the "your run succeeded / failed" mail.
const MailRunEnded = "run_ended"

// RunMails says whether the user wants a mail when a run succeeds or fails.
func (s *Store) RunMails(ctx context.Context, userID int64) (bool, error) {
	var on bool
	err := s.r.QueryRowContext(ctx, "SELECT run_mails FROM users WHERE id = ?", userID).Scan(&on)
	if errors.Is(err, sql.ErrNoRows) {
		return false, ErrNotFound
	}
	if err != nil {
		return false, fmt.Errorf("store: run mails: %w", err)
	}
	return on, nil
}

// SetRunMails turns the run mails on or off.
func (s *Store) SetRunMails(ctx context.Context, userID int64, on bool) error {
	res, err := s.w.ExecContext(ctx, "UPDATE users SET run_mails = ?, updated_at = ? WHERE id = ?", on, ms(s.now()), userID)
	if err != nil {
		return fmt.Errorf("store: set run mails: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// MailRunEnded is the kind of the "your run succeeded / failed" mail.
const MailRunEnded = "run_ended"

// MailPrefs are the mails a person chose to get besides the essential ones (security
// and account mails always go).
type MailPrefs struct {
	RunMails     bool // a mail when a run succeeds or fails (on unless turned off)
	ProductMails bool // product updates (off unless turned on)
}

// Mail lists a one-click unsubscribe link can turn off.
const (
	ListRunMails     = "run_mails"
	ListProductMails = "product_mails"
)

// MailLists names every list, for links and forms.
var MailLists = []string{ListRunMails, ListProductMails}

// GetMailPrefs returns the account's choices.
func (s *Store) GetMailPrefs(ctx context.Context, userID int64) (MailPrefs, error) {
	var p MailPrefs
	err := s.r.QueryRowContext(ctx, "SELECT run_mails, product_mails FROM users WHERE id = ?", userID).Scan(&p.RunMails, &p.ProductMails)
	if errors.Is(err, sql.ErrNoRows) {
		return MailPrefs{}, ErrNotFound
	}
	if err != nil {
		return MailPrefs{}, fmt.Errorf("store: mail prefs: %w", err)
	}
	return p, nil
}

// SetMailPrefs stores the choices.
func (s *Store) SetMailPrefs(ctx context.Context, userID int64, p MailPrefs) error {
	res, err := s.w.ExecContext(ctx, "UPDATE users SET run_mails = ?, product_mails = ?, updated_at = ? WHERE id = ?",
		p.RunMails, p.ProductMails, ms(s.now()), userID)
	if err != nil {
		return fmt.Errorf("store: set mail prefs: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// RunMails says whether the user wants a mail when a run succeeds or fails.
func (s *Store) RunMails(ctx context.Context, userID int64) (bool, error) {
	p, err := s.GetMailPrefs(ctx, userID)
	return p.RunMails, err
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

// Unsubscribe turns one list off for the account (a one-click unsubscribe link).
func (s *Store) Unsubscribe(ctx context.Context, userID int64, list string) error {
	var q string
	switch list {
	case ListRunMails:
		q = "UPDATE users SET run_mails = 0, updated_at = ? WHERE id = ?"
	case ListProductMails:
		q = "UPDATE users SET product_mails = 0, updated_at = ? WHERE id = ?"
	default:
		return fmt.Errorf("store: unsubscribe: unknown list %q", list)
	}
	res, err := s.w.ExecContext(ctx, q, ms(s.now()), userID)
	if err != nil {
		return fmt.Errorf("store: unsubscribe: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

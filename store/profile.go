package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/mattn/go-sqlite3"
)

// MaxDisplayNameLen caps a display name, in characters.
const MaxDisplayNameLen = 80

// EmailChangeTTL is how long the link to confirm a new address works.
const EmailChangeTTL = time.Hour

// Mail kinds of the profile.
const (
	MailEmailChangeConfirm = "email_change_confirm" // to the new address: the link
	MailEmailChanged       = "email_changed"        // to the old address: the change happened
	MailTwoFactor          = "two_factor_changed"   // two-factor sign-in turned on or off
)

// ErrEmailChangeInvalid is a link that is unknown, used, expired, or for an address
// another account took meanwhile.
var ErrEmailChangeInvalid = errors.New("store: the email change link is not valid")

// SetDisplayName stores a name (trimmed; "" clears it). Names with control characters or
// longer than MaxDisplayNameLen are a ValidationError on "display_name".
func (s *Store) SetDisplayName(ctx context.Context, userID int64, name string) (string, error) {
	name = strings.TrimSpace(name)
	if utf8.RuneCountInString(name) > MaxDisplayNameLen {
		return "", &ValidationError{Fields: map[string]string{"display_name": fmt.Sprintf("Use at most %d characters.", MaxDisplayNameLen)}}
	}
	if strings.IndexFunc(name, unicode.IsControl) >= 0 || !utf8.ValidString(name) {
		return "", &ValidationError{Fields: map[string]string{"display_name": "Use letters, digits, spaces and punctuation only."}}
	}
	res, err := s.w.ExecContext(ctx, "UPDATE users SET display_name = ?, updated_at = ? WHERE id = ?", name, ms(s.now()), userID)
	if err != nil {
		return "", fmt.Errorf("store: set display name: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return "", ErrNotFound
	}
	return name, nil
}

// CreateEmailChange checks the new address and makes a single-use token (256 bits) that
// moves the account to it; only the token's SHA-256 is stored. Earlier unused links of the
// account stop working. It returns the normalized address.
func (s *Store) CreateEmailChange(ctx context.Context, userID int64, rawEmail string) (token, email string, err error) {
	email, msg := NormalizeEmail(rawEmail)
	if msg != "" {
		return "", "", &ValidationError{Fields: map[string]string{"new_email": msg}}
	}
	var current string
	if err := s.r.QueryRowContext(ctx, "SELECT email FROM users WHERE id = ?", userID).Scan(&current); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return "", "", ErrNotFound
		}
		return "", "", fmt.Errorf("store: email change: %w", err)
	}
	if email == current {
		return "", "", &ValidationError{Fields: map[string]string{"new_email": "That is already your email address."}}
	}
	b := make([]byte, 32)
	rand.Read(b)
	token = base64.RawURLEncoding.EncodeToString(b)
	now := s.now()
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return "", "", fmt.Errorf("store: email change: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "UPDATE email_changes SET used_at = ? WHERE user_id = ? AND used_at IS NULL", ms(now), userID); err != nil {
		return "", "", fmt.Errorf("store: email change: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO email_changes (token_hash, user_id, new_email, created_at, expires_at)
		VALUES (?, ?, ?, ?, ?)`, APIKeyHash(token), userID, email, ms(now), ms(now.Add(EmailChangeTTL))); err != nil {
		return "", "", fmt.Errorf("store: email change: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return "", "", fmt.Errorf("store: email change: %w", err)
	}
	return token, email, nil
}

// PendingEmailChange returns the address a live link would move the account to, or "".
func (s *Store) PendingEmailChange(ctx context.Context, userID int64) (string, error) {
	var email string
	err := s.r.QueryRowContext(ctx, `SELECT new_email FROM email_changes WHERE user_id = ? AND used_at IS NULL AND expires_at > ?
		ORDER BY created_at DESC LIMIT 1`, userID, ms(s.now())).Scan(&email)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("store: pending email change: %w", err)
	}
	return email, nil
}

// EmailChangeFor returns the account and new address of a live token, or
// ErrEmailChangeInvalid.
func (s *Store) EmailChangeFor(ctx context.Context, token string) (User, string, error) {
	var userID int64
	var email string
	err := s.r.QueryRowContext(ctx, `SELECT user_id, new_email FROM email_changes
		WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?`, APIKeyHash(token), ms(s.now())).Scan(&userID, &email)
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, "", ErrEmailChangeInvalid
	}
	if err != nil {
		return User{}, "", fmt.Errorf("store: email change: %w", err)
	}
	u, err := s.UserByID(ctx, userID)
	return u, email, err
}

// ConfirmEmailChange spends a live token: the account's email becomes the new address,
// verified (the link reached it). It returns the account as it was before, so the old
// address can be told.
func (s *Store) ConfirmEmailChange(ctx context.Context, token string) (before User, after User, err error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return User{}, User{}, fmt.Errorf("store: confirm email change: %w", err)
	}
	defer tx.Rollback()
	now := ms(s.now())
	var userID int64
	var email string
	err = tx.QueryRowContext(ctx, `UPDATE email_changes SET used_at = ? WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?
		RETURNING user_id, new_email`, now, APIKeyHash(token), now).Scan(&userID, &email)
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, User{}, ErrEmailChangeInvalid
	}
	if err != nil {
		return User{}, User{}, fmt.Errorf("store: confirm email change: %w", err)
	}
	before, err = scanUser(tx.QueryRowContext(ctx, "SELECT "+userColumns+" FROM users WHERE id = ?", userID))
	if err != nil {
		return User{}, User{}, fmt.Errorf("store: confirm email change: %w", err)
	}
	_, err = tx.ExecContext(ctx, "UPDATE users SET email = ?, email_verified_at = ?, updated_at = ? WHERE id = ?", email, now, now, userID)
	var se sqlite3.Error
	if errors.As(err, &se) && se.ExtendedCode == sqlite3.ErrConstraintUnique {
		return User{}, User{}, ErrEmailChangeInvalid // another account took the address meanwhile
	}
	if err != nil {
		return User{}, User{}, fmt.Errorf("store: confirm email change: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return User{}, User{}, fmt.Errorf("store: confirm email change: %w", err)
	}
	after = before
	after.Email = email
	return before, after, nil
}

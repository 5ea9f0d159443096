package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"time"
)

// PasswordResetTTL is how long a reset link works.
const PasswordResetTTL = 30 * time.Minute

// ErrResetInvalid is a reset token that is unknown, used or expired.
var ErrResetInvalid = errors.New("store: the password reset link is not valid")

// UserByEmail returns the account with that email (normalized), or ErrNotFound.
func (s *Store) UserByEmail(ctx context.Context, rawEmail string) (User, error) {
	email, msg := NormalizeEmail(rawEmail)
	if msg != "" {
		return User{}, ErrNotFound
	}
	u, err := scanUser(s.r.QueryRowContext(ctx, "SELECT "+userColumns+" FROM users WHERE email = ?", email))
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, ErrNotFound
	}
	if err != nil {
		return User{}, fmt.Errorf("store: user by email: %w", err)
	}
	return u, nil
}

// CreatePasswordReset makes a single-use reset token (256 bits, URL-safe) for the user,
// valid PasswordResetTTL; only its SHA-256 is stored.
func (s *Store) CreatePasswordReset(ctx context.Context, userID int64) (string, error) {
	b := make([]byte, 32)
	rand.Read(b)
	token := base64.RawURLEncoding.EncodeToString(b)
	now := s.now()
	_, err := s.w.ExecContext(ctx, "INSERT INTO password_resets (token_hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
		APIKeyHash(token), userID, ms(now), ms(now.Add(PasswordResetTTL)))
	if err != nil {
		return "", fmt.Errorf("store: create password reset: %w", err)
	}
	return token, nil
}

// PasswordResetUser returns the account a live (unused, unexpired) token resets, or
// ErrResetInvalid.
func (s *Store) PasswordResetUser(ctx context.Context, token string) (User, error) {
	var userID int64
	err := s.r.QueryRowContext(ctx, "SELECT user_id FROM password_resets WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?",
		APIKeyHash(token), ms(s.now())).Scan(&userID)
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, ErrResetInvalid
	}
	if err != nil {
		return User{}, fmt.Errorf("store: password reset: %w", err)
	}
	u, err := s.UserByID(ctx, userID)
	if errors.Is(err, ErrNotFound) {
		return User{}, ErrResetInvalid
	}
	return u, err
}

// ResetPassword sets a new password with a live token (same rules as sign-up; a
// ValidationError on "new_password" otherwise, and the token stays usable). On success
// the token and every other reset token of the account stop working, and every session
// of the account ends.
func (s *Store) ResetPassword(ctx context.Context, token, password string) (User, error) {
	u, err := s.PasswordResetUser(ctx, token)
	if err != nil {
		return User{}, err
	}
	if msg := checkPassword(password, u.Email); msg != "" {
		return User{}, &ValidationError{Fields: map[string]string{"new_password": msg}}
	}
	hash, err := hashPassword(password, s.argon2)
	if err != nil {
		return User{}, err
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return User{}, fmt.Errorf("store: reset password: %w", err)
	}
	defer tx.Rollback()
	now := ms(s.now())
	// Claim the token inside the transaction: of two concurrent uses only one wins.
	res, err := tx.ExecContext(ctx, "UPDATE password_resets SET used_at = ? WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?",
		now, APIKeyHash(token), now)
	if err != nil {
		return User{}, fmt.Errorf("store: reset password: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return User{}, ErrResetInvalid
	}
	if _, err := tx.ExecContext(ctx, "UPDATE password_resets SET used_at = ? WHERE user_id = ? AND used_at IS NULL", now, u.ID); err != nil {
		return User{}, fmt.Errorf("store: reset password: %w", err)
	}
	if _, err := tx.ExecContext(ctx, "UPDATE users SET password_hash = ?, updated_at = ? WHERE id = ?", hash, now, u.ID); err != nil {
		return User{}, fmt.Errorf("store: reset password: %w", err)
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM sessions WHERE user_id = ?", u.ID); err != nil {
		return User{}, fmt.Errorf("store: reset password: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return User{}, fmt.Errorf("store: reset password: %w", err)
	}
	return u, nil
}

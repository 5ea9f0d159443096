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

// EmailVerificationTTL is how long a verification link works.
const EmailVerificationTTL = 48 * time.Hour

// MailVerifyEmail is the kind of the verification mail.
const MailVerifyEmail = "verify_email"

// ErrVerifyInvalid is a verification token that is unknown, used, expired, or for an
// address the account no longer has.
var ErrVerifyInvalid = errors.New("store: the email verification link is not valid")

// CreateEmailVerification makes a single-use token (256 bits) that confirms the user's
// current email address; only its SHA-256 is stored.
func (s *Store) CreateEmailVerification(ctx context.Context, userID int64) (string, error) {
	b := make([]byte, 32)
	rand.Read(b)
	token := base64.RawURLEncoding.EncodeToString(b)
	now := s.now()
	_, err := s.w.ExecContext(ctx, `INSERT INTO email_verifications (token_hash, user_id, email, created_at, expires_at)
		SELECT ?, id, email, ?, ? FROM users WHERE id = ?`, APIKeyHash(token), ms(now), ms(now.Add(EmailVerificationTTL)), userID)
	if err != nil {
		return "", fmt.Errorf("store: create email verification: %w", err)
	}
	return token, nil
}

// EmailVerificationUser returns the account a live token would verify, or ErrVerifyInvalid.
func (s *Store) EmailVerificationUser(ctx context.Context, token string) (User, error) {
	var userID int64
	err := s.r.QueryRowContext(ctx, `SELECT v.user_id FROM email_verifications v JOIN users u ON u.id = v.user_id
		WHERE v.token_hash = ? AND v.used_at IS NULL AND v.expires_at > ? AND v.email = u.email`,
		APIKeyHash(token), ms(s.now())).Scan(&userID)
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, ErrVerifyInvalid
	}
	if err != nil {
		return User{}, fmt.Errorf("store: email verification: %w", err)
	}
	return s.UserByID(ctx, userID)
}

// VerifyEmail spends a live token and marks its address verified.
func (s *Store) VerifyEmail(ctx context.Context, token string) (User, error) {
	u, err := s.EmailVerificationUser(ctx, token)
	if err != nil {
		return User{}, err
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return User{}, fmt.Errorf("store: verify email: %w", err)
	}
	defer tx.Rollback()
	now := ms(s.now())
	res, err := tx.ExecContext(ctx, "UPDATE email_verifications SET used_at = ? WHERE token_hash = ? AND used_at IS NULL AND expires_at > ? AND email = ?",
		now, APIKeyHash(token), now, u.Email)
	if err != nil {
		return User{}, fmt.Errorf("store: verify email: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return User{}, ErrVerifyInvalid
	}
	if _, err := tx.ExecContext(ctx, "UPDATE users SET email_verified_at = COALESCE(email_verified_at, ?) WHERE id = ?", now, u.ID); err != nil {
		return User{}, fmt.Errorf("store: verify email: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return User{}, fmt.Errorf("store: verify email: %w", err)
	}
	return u, nil
}

// EmailVerified says whether the user has confirmed their address.
func (s *Store) EmailVerified(ctx context.Context, userID int64) (bool, error) {
	var at sql.NullInt64
	err := s.r.QueryRowContext(ctx, "SELECT email_verified_at FROM users WHERE id = ?", userID).Scan(&at)
	if errors.Is(err, sql.ErrNoRows) {
		return false, ErrNotFound
	}
	if err != nil {
		return false, fmt.Errorf("store: email verified: %w", err)
	}
	return at.Valid, nil
}

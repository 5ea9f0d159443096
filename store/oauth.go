package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mattn/go-sqlite3"
)

// Sign-in providers an account can be linked to.
const (
	ProviderGoogle = "google"
	ProviderGitHub = "github"
)

var (
	// ErrIdentityTaken: that provider account is already linked to another tunelab account.
	ErrIdentityTaken = errors.New("store: that provider account is linked to another account")
	// ErrProviderLinked: the account already has a link to that provider.
	ErrProviderLinked = errors.New("store: the account is already linked to that provider")
	// ErrLastSignInMethod: unlinking would leave the account with no way to sign in.
	ErrLastSignInMethod = errors.New("store: that is the account's only way to sign in")
	// ErrNoPassword: the account has no password (made through a provider) to check.
	ErrNoPassword = errors.New("store: the account has no password")
	// ErrHasPassword: a first password was offered for an account that has one.
	ErrHasPassword = errors.New("store: the account already has a password")
)

// Identity is an account's link to a provider account.
type Identity struct {
	ID         int64
	UserID     int64
	Provider   string
	Subject    string
	Email      string
	CreatedAt  time.Time
	LastUsedAt time.Time // zero until used to sign in
}

// UserByIdentity returns the account linked to (provider, subject) and notes the use, or
// ErrNotFound.
func (s *Store) UserByIdentity(ctx context.Context, provider, subject string) (User, error) {
	var userID int64
	err := s.r.QueryRowContext(ctx, "SELECT user_id FROM oauth_identities WHERE provider = ? AND subject = ?", provider, subject).Scan(&userID)
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, ErrNotFound
	}
	if err != nil {
		return User{}, fmt.Errorf("store: user by identity: %w", err)
	}
	if _, err := s.w.ExecContext(ctx, "UPDATE oauth_identities SET last_used_at = ? WHERE provider = ? AND subject = ?",
		ms(s.now()), provider, subject); err != nil {
		return User{}, fmt.Errorf("store: note identity use: %w", err)
	}
	return s.UserByID(ctx, userID)
}

// LinkIdentity links a provider account to userID.
func (s *Store) LinkIdentity(ctx context.Context, userID int64, provider, subject, email string) error {
	return s.linkIdentity(ctx, s.w, userID, provider, subject, email)
}

type execer interface {
	ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error)
}

func (s *Store) linkIdentity(ctx context.Context, db execer, userID int64, provider, subject, email string) error {
	if subject == "" {
		return errors.New("store: link identity: empty subject")
	}
	_, err := db.ExecContext(ctx, `INSERT INTO oauth_identities (user_id, provider, subject, email, created_at)
		VALUES (?, ?, ?, ?, ?)`, userID, provider, subject, clip(strings.TrimSpace(email), 254), ms(s.now()))
	var se sqlite3.Error
	if errors.As(err, &se) && se.ExtendedCode == sqlite3.ErrConstraintUnique {
		if strings.Contains(se.Error(), "subject") {
			return ErrIdentityTaken
		}
		return ErrProviderLinked
	}
	if err != nil {
		return fmt.Errorf("store: link identity: %w", err)
	}
	return nil
}

// Identities lists the account's links, by provider name.
func (s *Store) Identities(ctx context.Context, userID int64) ([]Identity, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, user_id, provider, subject, email, created_at, last_used_at
		FROM oauth_identities WHERE user_id = ? ORDER BY provider`, userID)
	if err != nil {
		return nil, fmt.Errorf("store: identities: %w", err)
	}
	defer rows.Close()
	var out []Identity
	for rows.Next() {
		var id Identity
		var created int64
		var used sql.NullInt64
		if err := rows.Scan(&id.ID, &id.UserID, &id.Provider, &id.Subject, &id.Email, &created, &used); err != nil {
			return nil, fmt.Errorf("store: identities: %w", err)
		}
		id.CreatedAt = fromMS(created)
		if used.Valid {
			id.LastUsedAt = fromMS(used.Int64)
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// UnlinkIdentity removes the account's link to provider, unless it is the last way to
// sign in (no password and no other link): ErrLastSignInMethod then. The check and the
// delete are one statement, so two unlinks at once cannot both pass it.
func (s *Store) UnlinkIdentity(ctx context.Context, userID int64, provider string) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM oauth_identities WHERE user_id = ? AND provider = ?
		AND ((SELECT password_hash FROM users WHERE id = ?) != ''
		     OR (SELECT COUNT(*) FROM oauth_identities WHERE user_id = ?) > 1)`, userID, provider, userID, userID)
	if err != nil {
		return fmt.Errorf("store: unlink identity: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return nil
	}
	var exists bool
	if err := s.r.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM oauth_identities WHERE user_id = ? AND provider = ?)",
		userID, provider).Scan(&exists); err != nil {
		return fmt.Errorf("store: unlink identity: %w", err)
	}
	if exists {
		return ErrLastSignInMethod
	}
	return ErrNotFound
}

// NewOAuthUser is an account made through a provider: no password, linked at once.
type NewOAuthUser struct {
	Email         string
	EmailVerified bool // the provider says the address is verified
	DisplayName   string
	TermsVersion  string
	Provider      string
	Subject       string
}

// CreateOAuthUser makes the account and its link in one transaction.
func (s *Store) CreateOAuthUser(ctx context.Context, nu NewOAuthUser) (User, error) {
	email, msg := NormalizeEmail(nu.Email)
	if msg != "" {
		return User{}, &ValidationError{Fields: map[string]string{"email": msg}}
	}
	if strings.TrimSpace(nu.TermsVersion) == "" {
		return User{}, &ValidationError{Fields: map[string]string{"accept_terms": "Accept the terms of service to create an account."}}
	}
	name := clip(strings.TrimSpace(nu.DisplayName), MaxDisplayNameLen)
	now := ms(s.now())
	var verified sql.NullInt64
	if nu.EmailVerified {
		verified = sql.NullInt64{Int64: now, Valid: true}
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return User{}, fmt.Errorf("store: create oauth user: %w", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `INSERT INTO users (email, password_hash, display_name, terms_version, terms_accepted_at,
		created_at, updated_at, email_verified_at) VALUES (?, '', ?, ?, ?, ?, ?, ?)`,
		email, name, nu.TermsVersion, now, now, now, verified)
	var se sqlite3.Error
	if errors.As(err, &se) && se.ExtendedCode == sqlite3.ErrConstraintUnique {
		return User{}, ErrEmailTaken
	}
	if err != nil {
		return User{}, fmt.Errorf("store: create oauth user: %w", err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return User{}, fmt.Errorf("store: create oauth user: %w", err)
	}
	if err := s.linkIdentity(ctx, tx, id, nu.Provider, nu.Subject, nu.Email); err != nil {
		return User{}, err
	}
	if err := tx.Commit(); err != nil {
		return User{}, fmt.Errorf("store: create oauth user: %w", err)
	}
	return s.UserByID(ctx, id)
}

// HasPassword says whether the account has a password (one made through a provider has
// none until it sets one).
func (s *Store) HasPassword(ctx context.Context, userID int64) (bool, error) {
	var has bool
	err := s.r.QueryRowContext(ctx, "SELECT password_hash != '' FROM users WHERE id = ?", userID).Scan(&has)
	if errors.Is(err, sql.ErrNoRows) {
		return false, ErrNotFound
	}
	if err != nil {
		return false, fmt.Errorf("store: has password: %w", err)
	}
	return has, nil
}

// SetFirstPassword gives a password to an account that has none; ErrHasPassword when it
// has one already (then the current one must be given: ChangePassword).
func (s *Store) SetFirstPassword(ctx context.Context, userID int64, password string) error {
	var email string
	var has bool
	err := s.r.QueryRowContext(ctx, "SELECT email, password_hash != '' FROM users WHERE id = ?", userID).Scan(&email, &has)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("store: set first password: %w", err)
	}
	if has {
		return ErrHasPassword
	}
	if msg := checkPassword(password, email); msg != "" {
		return &ValidationError{Fields: map[string]string{"new_password": msg}}
	}
	hash, err := hashPassword(password, s.argon2)
	if err != nil {
		return err
	}
	res, err := s.w.ExecContext(ctx, "UPDATE users SET password_hash = ?, updated_at = ? WHERE id = ? AND password_hash = ''",
		hash, ms(s.now()), userID)
	if err != nil {
		return fmt.Errorf("store: set first password: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrHasPassword
	}
	return nil
}

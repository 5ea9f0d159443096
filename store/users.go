package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/mail"
	"sort"
	"strings"
	"time"

	"github.com/mattn/go-sqlite3"
)

// User is an account.
type User struct {
	ID              int64
	Email           string
	DisplayName     string // "" until the person names themselves in Settings
	IsAdmin         bool
	TermsVersion    string
	TermsAcceptedAt time.Time
	CreatedAt       time.Time
	ClosedAt        time.Time // zero unless the person closed the account (see close.go)
}

// NewUser is what sign-up (or the admin command) provides.
type NewUser struct {
	Email        string
	Password     string
	IsAdmin      bool
	TermsVersion string // the version of the terms the person accepted
}

var (
	// ErrEmailTaken is returned when an account with that email already exists.
	ErrEmailTaken = errors.New("store: email already registered")
	// ErrBadCredentials is the one answer for an unknown email and for a wrong password.
	ErrBadCredentials = errors.New("store: email or password is wrong")
)

// ValidationError lists what is wrong with input, by field, in words a person can act on.
type ValidationError struct {
	Fields map[string]string // field name -> message
}

func (e *ValidationError) Error() string {
	keys := make([]string, 0, len(e.Fields))
	for k := range e.Fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + ": " + e.Fields[k]
	}
	return "store: invalid input: " + strings.Join(parts, "; ")
}

// NormalizeEmail trims and lower-cases an address and checks it is a plain address.
// It returns the message to show when it is not one.
func NormalizeEmail(raw string) (string, string) {
	e := strings.ToLower(strings.TrimSpace(raw))
	switch {
	case e == "":
		return "", "Enter your email address."
	case len(e) > 254:
		return "", "That email address is too long (254 characters at most)."
	}
	addr, err := mail.ParseAddress(e)
	local, domain, _ := strings.Cut(e, "@")
	if err != nil || addr.Address != e || local == "" || !strings.Contains(domain, ".") {
		return "", "Enter an email address like name@example.com."
	}
	return e, ""
}

// CreateUser validates the email and password, hashes the password and stores the account.
func (s *Store) CreateUser(ctx context.Context, nu NewUser) (User, error) {
	email, emailMsg := NormalizeEmail(nu.Email)
	fields := map[string]string{}
	if emailMsg != "" {
		fields["email"] = emailMsg
	}
	if msg := checkPassword(nu.Password, email); msg != "" {
		fields["password"] = msg
	}
	if strings.TrimSpace(nu.TermsVersion) == "" {
		fields["accept_terms"] = "Accept the terms of service to create an account."
	}
	if len(fields) > 0 {
		return User{}, &ValidationError{Fields: fields}
	}
	// Hash before looking at duplicates, so a taken email costs the same time as a free one.
	hash, err := hashPassword(nu.Password, s.argon2)
	if err != nil {
		return User{}, err
	}
	now := s.now()
	res, err := s.w.ExecContext(ctx, `INSERT INTO users (email, password_hash, is_admin, terms_version, terms_accepted_at, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, email, hash, nu.IsAdmin, nu.TermsVersion, ms(now), ms(now), ms(now))
	if err != nil {
		var se sqlite3.Error
		if errors.As(err, &se) && se.ExtendedCode == sqlite3.ErrConstraintUnique {
			return User{}, ErrEmailTaken
		}
		return User{}, fmt.Errorf("store: create user: %w", err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return User{}, fmt.Errorf("store: create user: %w", err)
	}
	return User{ID: id, Email: email, IsAdmin: nu.IsAdmin, TermsVersion: nu.TermsVersion,
		TermsAcceptedAt: fromMS(ms(now)), CreatedAt: fromMS(ms(now))}, nil
}

const userColumns = "id, email, display_name, is_admin, terms_version, terms_accepted_at, created_at, closed_at"

func scanUser(row interface{ Scan(...any) error }) (User, error) {
	var u User
	var accepted, created int64
	var closed sql.NullInt64
	if err := row.Scan(&u.ID, &u.Email, &u.DisplayName, &u.IsAdmin, &u.TermsVersion, &accepted, &created, &closed); err != nil {
		return User{}, err
	}
	u.TermsAcceptedAt, u.CreatedAt = fromMS(accepted), fromMS(created)
	if closed.Valid {
		u.ClosedAt = fromMS(closed.Int64)
	}
	return u, nil
}

// UserByID returns the account with that id, or ErrNotFound.
func (s *Store) UserByID(ctx context.Context, id int64) (User, error) {
	u, err := scanUser(s.r.QueryRowContext(ctx, "SELECT "+userColumns+" FROM users WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, ErrNotFound
	}
	if err != nil {
		return User{}, fmt.Errorf("store: user by id: %w", err)
	}
	return u, nil
}

// Authenticate checks an email and password. An unknown email and a wrong password both
// return ErrBadCredentials after the same amount of hashing work. A password stored with
// older argon2 parameters is re-hashed with the current ones.
func (s *Store) Authenticate(ctx context.Context, rawEmail, password string) (User, error) {
	email, _ := NormalizeEmail(rawEmail)
	var hash string
	var u User
	var accepted, created int64
	var closed sql.NullInt64
	err := s.r.QueryRowContext(ctx, "SELECT "+userColumns+", password_hash FROM users WHERE email = ?", email).
		Scan(&u.ID, &u.Email, &u.DisplayName, &u.IsAdmin, &u.TermsVersion, &accepted, &created, &closed, &hash)
	// An account made through Google or GitHub has no password ('') until it sets one.
	if errors.Is(err, sql.ErrNoRows) || email == "" || (err == nil && hash == "") {
		verifyPassword(password, s.dummyHash, s.argon2)
		return User{}, ErrBadCredentials
	}
	if err != nil {
		return User{}, fmt.Errorf("store: authenticate: %w", err)
	}
	u.TermsAcceptedAt, u.CreatedAt = fromMS(accepted), fromMS(created)
	if closed.Valid {
		u.ClosedAt = fromMS(closed.Int64)
	}
	ok, stale, err := verifyPassword(password, hash, s.argon2)
	if err != nil {
		return User{}, fmt.Errorf("store: authenticate user %d: %w", u.ID, err)
	}
	if !ok {
		return User{}, ErrBadCredentials
	}
	if stale {
		if err := s.setPassword(ctx, u.ID, password); err != nil {
			return User{}, err
		}
	}
	return u, nil
}

// ChangePassword replaces a password after checking the current one. A wrong current
// password is a ValidationError on "current_password".
func (s *Store) ChangePassword(ctx context.Context, userID int64, current, next string) error {
	var hash, email string
	err := s.r.QueryRowContext(ctx, "SELECT password_hash, email FROM users WHERE id = ?", userID).Scan(&hash, &email)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("store: change password: %w", err)
	}
	if hash == "" {
		return ErrNoPassword
	}
	ok, _, err := verifyPassword(current, hash, s.argon2)
	if err != nil {
		return fmt.Errorf("store: change password: %w", err)
	}
	if !ok {
		return &ValidationError{Fields: map[string]string{"current_password": "That is not your current password."}}
	}
	if msg := checkPassword(next, email); msg != "" {
		return &ValidationError{Fields: map[string]string{"new_password": msg}}
	}
	if current == next {
		return &ValidationError{Fields: map[string]string{"new_password": "Choose a password different from the current one."}}
	}
	return s.setPassword(ctx, userID, next)
}

func (s *Store) setPassword(ctx context.Context, userID int64, password string) error {
	hash, err := hashPassword(password, s.argon2)
	if err != nil {
		return err
	}
	_, err = s.w.ExecContext(ctx, "UPDATE users SET password_hash = ?, updated_at = ? WHERE id = ?", hash, ms(s.now()), userID)
	if err != nil {
		return fmt.Errorf("store: set password: %w", err)
	}
	return nil
}

// ListUsers returns the newest accounts first, at most limit of them, and the total count.
func (s *Store) ListUsers(ctx context.Context, limit int) ([]User, int, error) {
	var total int
	if err := s.r.QueryRowContext(ctx, "SELECT COUNT(*) FROM users").Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("store: count users: %w", err)
	}
	rows, err := s.r.QueryContext(ctx, "SELECT "+userColumns+" FROM users ORDER BY id DESC LIMIT ?", limit)
	if err != nil {
		return nil, 0, fmt.Errorf("store: list users: %w", err)
	}
	defer rows.Close()
	var out []User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, 0, fmt.Errorf("store: list users: %w", err)
		}
		out = append(out, u)
	}
	return out, total, rows.Err()
}

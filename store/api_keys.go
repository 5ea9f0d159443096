package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// API keys let a person's scripts use /api/v1 as that person. A key is "tl_" and 32
// base62 characters (about 190 bits), so secret scanners can spot it; only its SHA-256
// and its first characters are stored.
const (
	APIKeyPrefix     = "tl_"
	apiKeyBodyLen    = 32
	APIKeyLen        = len(APIKeyPrefix) + apiKeyBodyLen
	apiKeyShownChars = len(APIKeyPrefix) + 6 // "tl_Ab12Cd" identifies a key in lists
	MaxAPIKeyName    = 64
	MaxAPIKeys       = 50 // live (not revoked) keys per person
	// apiKeyTouchEvery bounds writes of last_used_at: a script calling many times a
	// second updates it at most once a minute.
	apiKeyTouchEvery = time.Minute
)

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// APIKey is one key as its owner sees it; the secret itself is never stored.
type APIKey struct {
	ID         int64
	UserID     int64
	Name       string
	Prefix     string    // the key's first characters, "tl_Ab12Cd"
	CreatedAt  time.Time //
	ExpiresAt  time.Time // zero: never expires
	LastUsedAt time.Time // zero: never used
	RevokedAt  time.Time // zero: not revoked
}

// Active says whether the key may be used at now.
func (k APIKey) Active(now time.Time) bool {
	return k.RevokedAt.IsZero() && (k.ExpiresAt.IsZero() || now.Before(k.ExpiresAt))
}

// Expired says whether the key has passed its expiry at now.
func (k APIKey) Expired(now time.Time) bool { return !k.ExpiresAt.IsZero() && !now.Before(k.ExpiresAt) }

// NewAPIKeySecret returns a fresh key from crypto/rand: uniform base62 by rejection.
func NewAPIKeySecret() string {
	out := make([]byte, 0, APIKeyLen)
	out = append(out, APIKeyPrefix...)
	buf := make([]byte, 64)
	for len(out) < APIKeyLen {
		rand.Read(buf)
		for _, b := range buf {
			if b < 248 && len(out) < APIKeyLen { // 248 = 4*62: no bias
				out = append(out, base62[b%62])
			}
		}
	}
	return string(out)
}

// LooksLikeAPIKey says whether s has the shape of a key (not whether it is one).
func LooksLikeAPIKey(s string) bool {
	body, ok := strings.CutPrefix(s, APIKeyPrefix)
	if !ok || len(body) != apiKeyBodyLen {
		return false
	}
	for i := 0; i < len(body); i++ {
		if strings.IndexByte(base62, body[i]) < 0 {
			return false
		}
	}
	return true
}

// APIKeyHash is what is stored for a key and looked up when one is presented.
func APIKeyHash(key string) []byte { s := sha256.Sum256([]byte(key)); return s[:] }

const apiKeyColumns = "id, user_id, name, prefix, created_at, expires_at, last_used_at, revoked_at"

func scanAPIKey(row interface{ Scan(...any) error }) (APIKey, error) {
	var k APIKey
	var created int64
	var expires, used, revoked sql.NullInt64
	if err := row.Scan(&k.ID, &k.UserID, &k.Name, &k.Prefix, &created, &expires, &used, &revoked); err != nil {
		return APIKey{}, err
	}
	k.CreatedAt = fromMS(created)
	if expires.Valid {
		k.ExpiresAt = fromMS(expires.Int64)
	}
	if used.Valid {
		k.LastUsedAt = fromMS(used.Int64)
	}
	if revoked.Valid {
		k.RevokedAt = fromMS(revoked.Int64)
	}
	return k, nil
}

// CreateAPIKey makes a key named name for the user, valid until expires (zero: no
// expiry). It returns the key's record and the secret, which is never available again.
func (s *Store) CreateAPIKey(ctx context.Context, userID int64, name string, expires time.Time) (APIKey, string, error) {
	name = strings.TrimSpace(name)
	now := s.now()
	switch {
	case name == "":
		return APIKey{}, "", &ValidationError{Fields: map[string]string{"name": "Give the key a name, such as the script or machine that uses it."}}
	case utf8.RuneCountInString(name) > MaxAPIKeyName || !utf8.ValidString(name) || strings.ContainsAny(name, "\r\n\t"):
		return APIKey{}, "", &ValidationError{Fields: map[string]string{"name": fmt.Sprintf("Use at most %d characters on one line.", MaxAPIKeyName)}}
	case !expires.IsZero() && !expires.After(now):
		return APIKey{}, "", &ValidationError{Fields: map[string]string{"expires": "Choose an expiry in the future."}}
	}
	var live int
	if err := s.w.QueryRowContext(ctx, "SELECT COUNT(*) FROM api_keys WHERE user_id = ? AND revoked_at IS NULL", userID).Scan(&live); err != nil {
		return APIKey{}, "", fmt.Errorf("store: create api key: %w", err)
	}
	if live >= MaxAPIKeys {
		return APIKey{}, "", &ValidationError{Fields: map[string]string{"name": fmt.Sprintf("You have %d keys; revoke one you no longer use first.", MaxAPIKeys)}}
	}
	secret := NewAPIKeySecret()
	k := APIKey{UserID: userID, Name: name, Prefix: secret[:apiKeyShownChars], CreatedAt: fromMS(ms(now)), ExpiresAt: expires}
	var exp sql.NullInt64
	if !expires.IsZero() {
		exp = sql.NullInt64{Int64: ms(expires), Valid: true}
		k.ExpiresAt = fromMS(ms(expires))
	}
	err := s.w.QueryRowContext(ctx, `INSERT INTO api_keys (user_id, name, prefix, hash, created_at, expires_at)
		VALUES (?, ?, ?, ?, ?, ?) RETURNING id`, userID, name, k.Prefix, APIKeyHash(secret), ms(now), exp).Scan(&k.ID)
	if err != nil {
		return APIKey{}, "", fmt.Errorf("store: create api key: %w", err)
	}
	return k, secret, nil
}

// APIKeys lists the user's keys, newest first, revoked ones included.
func (s *Store) APIKeys(ctx context.Context, userID int64) ([]APIKey, error) {
	rows, err := s.r.QueryContext(ctx, "SELECT "+apiKeyColumns+" FROM api_keys WHERE user_id = ? ORDER BY id DESC", userID)
	if err != nil {
		return nil, fmt.Errorf("store: api keys: %w", err)
	}
	defer rows.Close()
	var out []APIKey
	for rows.Next() {
		k, err := scanAPIKey(rows)
		if err != nil {
			return nil, fmt.Errorf("store: api keys: %w", err)
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: api keys: %w", err)
	}
	return out, nil
}

// RevokeAPIKey stops one of the user's keys for good; another person's or an unknown id
// is ErrNotFound. Revoking a revoked key changes nothing.
func (s *Store) RevokeAPIKey(ctx context.Context, userID, id int64) (APIKey, error) {
	_, err := s.w.ExecContext(ctx, "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND user_id = ? AND revoked_at IS NULL",
		ms(s.now()), id, userID)
	if err != nil {
		return APIKey{}, fmt.Errorf("store: revoke api key: %w", err)
	}
	k, err := scanAPIKey(s.w.QueryRowContext(ctx, "SELECT "+apiKeyColumns+" FROM api_keys WHERE id = ? AND user_id = ?", id, userID))
	if errors.Is(err, sql.ErrNoRows) {
		return APIKey{}, ErrNotFound
	}
	if err != nil {
		return APIKey{}, fmt.Errorf("store: revoke api key: %w", err)
	}
	return k, nil
}

// APIKeyFor finds the key whose secret is key (by its hash), active or not: ErrNotFound
// when none. An active key's last-used time is brought up to date (at most once a minute).
func (s *Store) APIKeyFor(ctx context.Context, key string) (APIKey, error) {
	k, err := scanAPIKey(s.r.QueryRowContext(ctx, "SELECT "+apiKeyColumns+" FROM api_keys WHERE hash = ?", APIKeyHash(key)))
	if errors.Is(err, sql.ErrNoRows) {
		return APIKey{}, ErrNotFound
	}
	if err != nil {
		return APIKey{}, fmt.Errorf("store: api key: %w", err)
	}
	now := s.now()
	if k.Active(now) && now.Sub(k.LastUsedAt) >= apiKeyTouchEvery {
		if _, err := s.w.ExecContext(ctx, "UPDATE api_keys SET last_used_at = ? WHERE id = ?", ms(now), k.ID); err != nil {
			return APIKey{}, fmt.Errorf("store: api key used: %w", err)
		}
		k.LastUsedAt = fromMS(ms(now))
	}
	return k, nil
}

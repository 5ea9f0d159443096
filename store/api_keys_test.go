package store

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestAPIKeySecretShape(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		k := NewAPIKeySecret()
		if !LooksLikeAPIKey(k) || len(k) != 35 || seen[k] {
			t.Fatalf("bad or repeated key %q", k)
		}
		seen[k] = true
	}
	for _, bad := range []string{"", "tl_", "tl_" + strings.Repeat("a", 31), "tl_" + strings.Repeat("a", 33), "xx_" + strings.Repeat("a", 32), "tl_" + strings.Repeat("-", 32)} {
		if LooksLikeAPIKey(bad) {
			t.Errorf("%q passes as a key", bad)
		}
	}
}

func TestAPIKeysLifecycle(t *testing.T) {
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	s, _ := openTest(t, Options{Argon2: cheapArgon2, Now: func() time.Time { return now }})
	ctx := context.Background()
	ada, _ := s.CreateUser(ctx, NewUser{Email: "ada@example.com", Password: "first long passphrase", TermsVersion: "v"})
	bob, _ := s.CreateUser(ctx, NewUser{Email: "bob@example.com", Password: "first long passphrase", TermsVersion: "v"})

	var verr *ValidationError
	if _, _, err := s.CreateAPIKey(ctx, ada.ID, "  ", time.Time{}); !errors.As(err, &verr) || verr.Fields["name"] == "" {
		t.Fatalf("empty name: %v", err)
	}
	if _, _, err := s.CreateAPIKey(ctx, ada.ID, "ci", now.Add(-time.Second)); !errors.As(err, &verr) || verr.Fields["expires"] == "" {
		t.Fatalf("past expiry: %v", err)
	}
	k, secret, err := s.CreateAPIKey(ctx, ada.ID, " laptop ", now.Add(time.Hour))
	if err != nil || k.Name != "laptop" || !strings.HasPrefix(secret, k.Prefix) || len(k.Prefix) != 9 {
		t.Fatalf("create: %+v %v", k, err)
	}
	// Only the hash is stored.
	var stored []byte
	var plain int
	s.r.QueryRowContext(ctx, "SELECT hash FROM api_keys WHERE id = ?", k.ID).Scan(&stored)
	s.r.QueryRowContext(ctx, "SELECT COUNT(*) FROM api_keys WHERE hash = ? OR name = ? OR prefix = ?", secret, secret, secret).Scan(&plain)
	if !bytes.Equal(stored, APIKeyHash(secret)) || plain != 0 {
		t.Fatal("the secret is stored, or not its hash")
	}

	got, err := s.APIKeyFor(ctx, secret)
	if err != nil || got.ID != k.ID || got.UserID != ada.ID || !got.LastUsedAt.Equal(now) || !got.Active(now) {
		t.Fatalf("lookup: %+v %v", got, err)
	}
	if _, err := s.APIKeyFor(ctx, NewAPIKeySecret()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown key: %v", err)
	}
	// Last used moves at most once a minute.
	now = now.Add(30 * time.Second)
	if got, _ = s.APIKeyFor(ctx, secret); !got.LastUsedAt.Equal(now.Add(-30 * time.Second)) {
		t.Fatalf("touched within the minute: %v", got.LastUsedAt)
	}
	now = now.Add(time.Minute)
	if got, _ = s.APIKeyFor(ctx, secret); !got.LastUsedAt.Equal(now) {
		t.Fatalf("not touched after a minute: %v", got.LastUsedAt)
	}
	// Expiry.
	now = k.ExpiresAt
	if got, _ = s.APIKeyFor(ctx, secret); got.Active(now) || !got.Expired(now) {
		t.Fatal("an expired key is active")
	}
	// Revoke: only by the owner.
	k2, secret2, _ := s.CreateAPIKey(ctx, ada.ID, "ci", time.Time{})
	if _, err := s.RevokeAPIKey(ctx, bob.ID, k2.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("bob revokes ada's key: %v", err)
	}
	if got, _ := s.APIKeyFor(ctx, secret2); !got.Active(now) {
		t.Fatal("key revoked by someone else")
	}
	if r, err := s.RevokeAPIKey(ctx, ada.ID, k2.ID); err != nil || r.RevokedAt.IsZero() {
		t.Fatalf("revoke: %+v %v", r, err)
	}
	if got, _ := s.APIKeyFor(ctx, secret2); got.Active(now) {
		t.Fatal("a revoked key is active")
	}
	list, _ := s.APIKeys(ctx, ada.ID)
	if len(list) != 2 || list[0].ID != k2.ID {
		t.Fatalf("list: %+v", list)
	}
	if list, _ := s.APIKeys(ctx, bob.ID); len(list) != 0 {
		t.Fatalf("bob sees keys: %+v", list)
	}
}

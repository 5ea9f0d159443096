package store

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// cheapArgon2 keeps tests that hash many passwords fast; tests about hashing itself use
// DefaultArgon2.
var cheapArgon2 = Argon2Params{Time: 1, Memory: 64, Threads: 1}

func openTest(t *testing.T, opt Options) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "test.db")
	s, err := Open(context.Background(), path, opt)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func TestOpenSetsPragmasOnBothPools(t *testing.T) {
	s, _ := openTest(t, Options{Argon2: cheapArgon2})
	ctx := context.Background()
	if err := checkPragmas(ctx, s.w, "writer"); err != nil {
		t.Fatal(err)
	}
	if err := checkPragmas(ctx, s.r, "reader"); err != nil {
		t.Fatal(err)
	}
	// The reader pool must refuse writes.
	if _, err := s.r.ExecContext(ctx, "INSERT INTO schema_migrations VALUES (999, 'x', 0)"); err == nil {
		t.Fatal("reader pool accepted a write")
	}
	if got := s.w.Stats().MaxOpenConnections; got != 1 {
		t.Fatalf("writer max open conns = %d, want 1", got)
	}
}

func TestMigrationsAreRecordedAndIdempotent(t *testing.T) {
	s, path := openTest(t, Options{Argon2: cheapArgon2})
	ctx := context.Background()
	all, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	v, err := s.SchemaVersion(ctx)
	if err != nil || v != all[len(all)-1].version {
		t.Fatalf("schema version = %d, %v; want %d", v, err, all[len(all)-1].version)
	}
	if _, err := s.CreateUser(ctx, NewUser{Email: "keep@example.com", Password: "a long unusual passphrase", TermsVersion: "v1"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// Reopening applies nothing twice and keeps the data.
	s2, err := Open(ctx, path, Options{Argon2: cheapArgon2})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s2.Close()
	var n int
	s2.r.QueryRow("SELECT COUNT(*) FROM schema_migrations").Scan(&n)
	if n != len(all) {
		t.Fatalf("schema_migrations has %d rows, want %d", n, len(all))
	}
	if _, total, _ := s2.ListUsers(ctx, 10); total != 1 {
		t.Fatalf("users after reopen = %d, want 1", total)
	}
}

func TestOpenRefusesBadPath(t *testing.T) {
	if _, err := Open(context.Background(), filepath.Join(t.TempDir(), "a?b.db"), Options{}); err == nil {
		t.Fatal("Open accepted a path with '?'")
	}
	dir := filepath.Join(t.TempDir(), "missing", "dir")
	if _, err := Open(context.Background(), filepath.Join(dir, "x.db"), Options{}); err == nil {
		t.Fatal("Open succeeded in a missing directory")
	}
}

func TestCreateUserValidation(t *testing.T) {
	s, _ := openTest(t, Options{Argon2: cheapArgon2})
	ctx := context.Background()
	long := strings.Repeat("x", MaxPasswordLen+1)
	cases := []struct {
		name      string
		in        NewUser
		wantField string
		wantText  string
	}{
		{"empty email", NewUser{Email: "  ", Password: "a long unusual passphrase", TermsVersion: "v"}, "email", "Enter your email"},
		{"bad email", NewUser{Email: "ada@", Password: "a long unusual passphrase", TermsVersion: "v"}, "email", "like name@example.com"},
		{"display name", NewUser{Email: "Ada <ada@example.com>", Password: "a long unusual passphrase", TermsVersion: "v"}, "email", "like name@example.com"},
		{"too short", NewUser{Email: "a@example.com", Password: "short7!", TermsVersion: "v"}, "password", "at least 8"},
		{"too long", NewUser{Email: "a@example.com", Password: long, TermsVersion: "v"}, "password", "at most 1024"},
		{"common", NewUser{Email: "a@example.com", Password: "password1", TermsVersion: "v"}, "password", "commonly used"},
		{"common any case", NewUser{Email: "a@example.com", Password: "BaseBall", TermsVersion: "v"}, "password", "commonly used"},
		{"is the email", NewUser{Email: "averyunusualname@example.com", Password: "AveryUnusualName@example.com", TermsVersion: "v"}, "password", "email"},
		{"no terms", NewUser{Email: "a@example.com", Password: "a long unusual passphrase"}, "accept_terms", "Accept the terms"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.CreateUser(ctx, tc.in)
			var verr *ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("err = %v, want ValidationError", err)
			}
			if msg := verr.Fields[tc.wantField]; !strings.Contains(msg, tc.wantText) {
				t.Fatalf("field %s message = %q, want it to contain %q (all: %v)", tc.wantField, msg, tc.wantText, verr.Fields)
			}
		})
	}
	if _, total, _ := s.ListUsers(ctx, 10); total != 0 {
		t.Fatalf("%d users stored after only invalid input", total)
	}
}

func TestCreateUserAcceptsLongAndUnicodePasswordsExactly(t *testing.T) {
	s, _ := openTest(t, Options{Argon2: cheapArgon2})
	ctx := context.Background()
	pw := strings.Repeat("ü", 300) + " Tr0ub4dor " // 64+ chars, not ASCII, spaces kept
	u, err := s.CreateUser(ctx, NewUser{Email: " Ada@Example.COM ", Password: pw, TermsVersion: "2026-11-23"})
	if err != nil {
		t.Fatal(err)
	}
	if u.Email != "ada@example.com" || u.TermsVersion != "2026-11-23" || u.TermsAcceptedAt.IsZero() {
		t.Fatalf("user = %+v", u)
	}
	if _, err := s.Authenticate(ctx, "ADA@example.com", pw); err != nil {
		t.Fatalf("exact password refused: %v", err)
	}
	for _, wrong := range []string{strings.TrimSpace(pw), strings.ToUpper(pw), pw[:len(pw)-1]} {
		if _, err := s.Authenticate(ctx, "ada@example.com", wrong); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("altered password accepted (err %v)", err)
		}
	}
	if _, err := s.CreateUser(ctx, NewUser{Email: "ADA@example.com", Password: "another long passphrase", TermsVersion: "v"}); !errors.Is(err, ErrEmailTaken) {
		t.Fatalf("duplicate email: err = %v, want ErrEmailTaken", err)
	}
}

func TestPasswordHashFormatAndRehash(t *testing.T) {
	ctx := context.Background()
	old := Argon2Params{Time: 1, Memory: 8 * 1024, Threads: 1}
	s, path := openTest(t, Options{Argon2: old})
	u, err := s.CreateUser(ctx, NewUser{Email: "r@example.com", Password: "rehash me please now", TermsVersion: "v"})
	if err != nil {
		t.Fatal(err)
	}
	h1, _ := s.passwordHash(ctx, u.ID)
	if !strings.HasPrefix(h1, "$argon2id$v=19$m=8192,t=1,p=1$") {
		t.Fatalf("hash %q does not carry its parameters", h1)
	}
	s.Close()

	s2, err := Open(ctx, path, Options{}) // production parameters
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if _, err := s2.Authenticate(ctx, "r@example.com", "wrong password here"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("wrong password: %v", err)
	}
	if h, _ := s2.passwordHash(ctx, u.ID); h != h1 {
		t.Fatal("a failed sign-in changed the stored hash")
	}
	if _, err := s2.Authenticate(ctx, "r@example.com", "rehash me please now"); err != nil {
		t.Fatal(err)
	}
	h2, _ := s2.passwordHash(ctx, u.ID)
	if !strings.HasPrefix(h2, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("after sign-in hash = %q, want the current parameters m=19456,t=2,p=1", h2)
	}
	if _, err := s2.Authenticate(ctx, "r@example.com", "rehash me please now"); err != nil {
		t.Fatalf("sign-in after re-hash: %v", err)
	}
}

// An unknown email must cost the same hashing work as a wrong password; without the dummy
// verification it would answer in microseconds instead of milliseconds.
func TestUnknownEmailCostsAsMuchAsWrongPassword(t *testing.T) {
	s, _ := openTest(t, Options{})
	ctx := context.Background()
	if _, err := s.CreateUser(ctx, NewUser{Email: "known@example.com", Password: "the right passphrase", TermsVersion: "v"}); err != nil {
		t.Fatal(err)
	}
	fastest := func(email string) time.Duration {
		best := time.Hour
		for range 5 {
			start := time.Now()
			if _, err := s.Authenticate(ctx, email, "a wrong passphrase"); !errors.Is(err, ErrBadCredentials) {
				t.Fatalf("%s: err = %v", email, err)
			}
			best = min(best, time.Since(start))
		}
		return best
	}
	wrong, unknown := fastest("known@example.com"), fastest("nobody@example.com")
	if unknown*3 < wrong {
		t.Fatalf("unknown email took %v, wrong password %v: the difference reveals which accounts exist", unknown, wrong)
	}
}

func TestChangePassword(t *testing.T) {
	s, _ := openTest(t, Options{Argon2: cheapArgon2})
	ctx := context.Background()
	u, _ := s.CreateUser(ctx, NewUser{Email: "c@example.com", Password: "first long passphrase", TermsVersion: "v"})
	var verr *ValidationError
	if err := s.ChangePassword(ctx, u.ID, "not the current one", "second long passphrase"); !errors.As(err, &verr) || verr.Fields["current_password"] == "" {
		t.Fatalf("wrong current password: %v", err)
	}
	if err := s.ChangePassword(ctx, u.ID, "first long passphrase", "password"); !errors.As(err, &verr) || verr.Fields["new_password"] == "" {
		t.Fatalf("weak new password: %v", err)
	}
	if err := s.ChangePassword(ctx, u.ID, "first long passphrase", "second long passphrase"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, "c@example.com", "first long passphrase"); !errors.Is(err, ErrBadCredentials) {
		t.Fatal("old password still works")
	}
	if _, err := s.Authenticate(ctx, "c@example.com", "second long passphrase"); err != nil {
		t.Fatal("new password refused")
	}
	if err := s.ChangePassword(ctx, 9999, "x", "y"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown user: %v", err)
	}
}

func TestSessionsStoreHashedTokens(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	s, _ := openTest(t, Options{Argon2: cheapArgon2, Now: func() time.Time { return now }})
	ctx := context.Background()
	u, _ := s.CreateUser(ctx, NewUser{Email: "s@example.com", Password: "session passphrase", TermsVersion: "v"})
	ss := s.Sessions()
	// scs encodes values with gob; user_id is read from it.
	data := gobSession(t, map[string]any{SessionUserKey: u.ID})
	if err := ss.Commit("tok-A", data, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := ss.Commit("tok-B", data, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	var raw int
	s.r.QueryRow("SELECT COUNT(*) FROM sessions WHERE token_hash = ?", []byte("tok-A")).Scan(&raw)
	if raw != 0 {
		t.Fatal("raw token stored in the database")
	}
	if b, ok, err := ss.Find("tok-A"); err != nil || !ok || len(b) == 0 {
		t.Fatalf("find: %v %v", ok, err)
	}
	if n, _ := s.CountUserSessions(ctx, u.ID); n != 2 {
		t.Fatalf("sessions of user = %d, want 2", n)
	}
	if n, err := s.DeleteUserSessions(ctx, u.ID, "tok-A"); err != nil || n != 1 {
		t.Fatalf("delete others: %d %v", n, err)
	}
	if _, ok, _ := ss.Find("tok-B"); ok {
		t.Fatal("other session survived")
	}
	if _, ok, _ := ss.Find("tok-A"); !ok {
		t.Fatal("kept session was deleted")
	}
	now = now.Add(2 * time.Hour)
	if _, ok, _ := ss.Find("tok-A"); ok {
		t.Fatal("expired session found")
	}
	if n, _ := s.DeleteExpiredSessions(ctx); n != 1 {
		t.Fatalf("expired deleted = %d, want 1", n)
	}
}

func TestSecurityEventsPurgedAfterRetention(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s, _ := openTest(t, Options{Argon2: cheapArgon2, Now: func() time.Time { return now }})
	ctx := context.Background()
	for i := range 1500 {
		kind := EventSignInFailed
		if i%2 == 0 {
			kind = EventSignIn
		}
		if err := s.RecordSecurityEvent(ctx, SecurityEvent{Kind: kind, Email: "x@example.com", IP: "192.0.2.1", UserAgent: "ua"}); err != nil {
			t.Fatal(err)
		}
	}
	now = now.Add(TelemetryRetention - time.Minute)
	s.RecordSecurityEvent(ctx, SecurityEvent{Kind: EventSignOut, Email: "recent@example.com", IP: "192.0.2.2", UserAgent: "ua"})
	now = now.Add(2 * time.Minute) // the first 1500 are now older than 90 days
	n, err := s.PurgeSecurityEvents(ctx)
	if err != nil || n != 1500 {
		t.Fatalf("purged %d, %v; want 1500", n, err)
	}
	left, _ := s.RecentSecurityEvents(ctx, 10)
	if len(left) != 1 || left[0].Email != "recent@example.com" {
		t.Fatalf("left = %+v", left)
	}
	if n, _ := s.PurgeSecurityEvents(ctx); n != 0 {
		t.Fatal("second purge deleted more")
	}
}

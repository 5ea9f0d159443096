package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"tunelab/store"
	"tunelab/store/storetest"
)

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func codeAt(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCodeCustom(secret, at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func enrolled(t *testing.T) (*store.Store, *store.Vault, *fakeClock, int64, store.TOTPKey, []string, string) {
	t.Helper()
	ctx := context.Background()
	clock := &fakeClock{now: time.Unix(1_800_000_000, 0)} // the start of a 30 s step
	dir := t.TempDir()
	st, v := storetest.OpenDir(t, dir, store.Options{Now: clock.Now})
	u, err := st.CreateUser(ctx, store.NewUser{Email: "ada@example.com", Password: "a quiet orange giraffe", TermsVersion: "1"})
	if err != nil {
		t.Fatal(err)
	}
	key, err := st.BeginTOTP(ctx, v, u.ID, u.Email)
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := st.TOTPState(ctx, u.ID); s.Enabled || !s.Pending {
		t.Fatalf("before the first code: %+v, want pending and off", s)
	}
	if _, err := st.ConfirmTOTP(ctx, v, u.ID, "000000"); !errors.Is(err, store.ErrBadCode) && codeAt(t, key.Secret, clock.Now()) != "000000" {
		t.Fatalf("wrong first code: %v, want ErrBadCode", err)
	}
	codes, err := st.ConfirmTOTP(ctx, v, u.ID, codeAt(t, key.Secret, clock.Now()))
	if err != nil {
		t.Fatal(err)
	}
	return st, v, clock, u.ID, key, codes, filepath.Join(dir, storetest.DBFile)
}

func TestTOTPCodesOnceWithinOneStep(t *testing.T) {
	ctx := context.Background()
	st, v, clock, id, key, codes, _ := enrolled(t)
	if s, _ := st.TOTPState(ctx, id); !s.Enabled || s.RecoveryCodes != store.RecoveryCodeCount || len(codes) != store.RecoveryCodeCount {
		t.Fatalf("state %+v, %d codes", s, len(codes))
	}
	// The enrolment code's step is spent: the same code is refused.
	if err := st.VerifyTOTP(ctx, v, id, codeAt(t, key.Secret, clock.Now())); !errors.Is(err, store.ErrBadCode) {
		t.Fatalf("replayed enrolment code: %v", err)
	}
	clock.Add(30 * time.Second)
	code := codeAt(t, key.Secret, clock.Now())
	if err := st.VerifyTOTP(ctx, v, id, code); err != nil {
		t.Fatalf("fresh code: %v", err)
	}
	if err := st.VerifyTOTP(ctx, v, id, code); !errors.Is(err, store.ErrBadCode) {
		t.Fatalf("replayed code: %v, want ErrBadCode", err)
	}
	// One step of skew either way passes; an older step than the last used does not.
	clock.Add(60 * time.Second)
	if err := st.VerifyTOTP(ctx, v, id, codeAt(t, key.Secret, clock.Now().Add(-30*time.Second))); err != nil {
		t.Fatalf("code one step old: %v", err)
	}
	if err := st.VerifyTOTP(ctx, v, id, codeAt(t, key.Secret, clock.Now().Add(30*time.Second))); err != nil {
		t.Fatalf("code one step ahead: %v", err)
	}
	clock.Add(5 * time.Minute)
	for _, skew := range []time.Duration{-60 * time.Second, 60 * time.Second} {
		if err := st.VerifyTOTP(ctx, v, id, codeAt(t, key.Secret, clock.Now().Add(skew))); !errors.Is(err, store.ErrBadCode) {
			t.Errorf("code %v away (two steps): %v, want ErrBadCode", skew, err)
		}
	}
}

func TestRecoveryCodesSingleUseAndRenewed(t *testing.T) {
	ctx := context.Background()
	st, v, clock, id, key, codes, _ := enrolled(t)
	if err := st.UseRecoveryCode(ctx, id, codes[0]); err != nil {
		t.Fatal(err)
	}
	if err := st.UseRecoveryCode(ctx, id, codes[0]); !errors.Is(err, store.ErrBadCode) {
		t.Fatalf("second use: %v, want ErrBadCode", err)
	}
	if err := st.UseRecoveryCode(ctx, id, " "+codes[1]+" "); err != nil {
		t.Fatalf("code with spaces: %v", err)
	}
	if s, _ := st.TOTPState(ctx, id); s.RecoveryCodes != store.RecoveryCodeCount-2 {
		t.Fatalf("%d codes left, want %d", s.RecoveryCodes, store.RecoveryCodeCount-2)
	}
	clock.Add(30 * time.Second)
	renewed, err := st.RegenerateRecoveryCodes(ctx, v, id, codeAt(t, key.Secret, clock.Now()))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.UseRecoveryCode(ctx, id, codes[2]); !errors.Is(err, store.ErrBadCode) {
		t.Fatalf("old set after regenerating: %v", err)
	}
	if err := st.UseRecoveryCode(ctx, id, renewed[2]); err != nil {
		t.Fatal(err)
	}
	clock.Add(30 * time.Second)
	if err := st.DisableTOTP(ctx, v, id, codeAt(t, key.Secret, clock.Now())); err != nil {
		t.Fatal(err)
	}
	if s, _ := st.TOTPState(ctx, id); s.Enabled || s.Pending {
		t.Fatalf("after disabling: %+v", s)
	}
	if err := st.UseRecoveryCode(ctx, id, renewed[3]); !errors.Is(err, store.ErrBadCode) {
		t.Fatalf("recovery code after disabling: %v", err)
	}
}

func TestTOTPSeedSealedAtRest(t *testing.T) {
	st, _, _, _, key, codes, dbFile := enrolled(t)
	st.Close() // checkpoint the WAL into the file
	b, err := os.ReadFile(dbFile)
	if err != nil {
		t.Fatal(err)
	}
	if wal, err := os.ReadFile(dbFile + "-wal"); err == nil {
		b = append(b, wal...)
	}
	if bytes.Contains(b, []byte(key.Secret)) {
		t.Fatal("the base32 seed is in the database file")
	}
	if bytes.Contains(b, []byte(codes[0])) {
		t.Fatal("a recovery code is in the database file")
	}
	if !bytes.Contains(b, []byte("TLS1")) {
		t.Fatal("no sealed secret in the database file")
	}
}

func TestSealedSecretBoundToPurposeAndKey(t *testing.T) {
	v, _ := store.NewVault(t.TempDir(), bytes.Repeat([]byte{1}, 32))
	other, _ := store.NewVault(t.TempDir(), bytes.Repeat([]byte{2}, 32))
	sealed, err := v.SealSecret("a", []byte("seed"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := v.OpenSecret("a", sealed); err != nil || string(got) != "seed" {
		t.Fatalf("open: %q %v", got, err)
	}
	if _, err := v.OpenSecret("b", sealed); !errors.Is(err, store.ErrSecretCorrupt) {
		t.Fatalf("other purpose: %v", err)
	}
	if _, err := other.OpenSecret("a", sealed); !errors.Is(err, store.ErrVaultWrongKey) {
		t.Fatalf("other key: %v", err)
	}
	sealed[len(sealed)-1] ^= 1
	if _, err := v.OpenSecret("a", sealed); !errors.Is(err, store.ErrSecretCorrupt) {
		t.Fatalf("tampered: %v", err)
	}
}

// A request that began before its session was revoked (or signed out) and commits after
// must not bring the session back.
func TestEndedSessionIsNotStoredAgain(t *testing.T) {
	ctx := context.Background()
	st, _ := storetest.OpenTemp(t)
	u, err := st.CreateUser(ctx, store.NewUser{Email: "ada@example.com", Password: "a quiet orange giraffe", TermsVersion: "1"})
	if err != nil {
		t.Fatal(err)
	}
	ss := st.Sessions()
	data, err := (scs.GobCodec{}).Encode(time.Now().Add(time.Hour), map[string]any{store.SessionUserKey: u.ID})
	if err != nil {
		t.Fatal(err)
	}
	for _, end := range []struct {
		name string
		fn   func(token string) error
	}{
		{"sign-out", ss.Delete},
		{"revoke others", func(string) error { _, err := st.DeleteUserSessions(ctx, u.ID, ""); return err }},
		{"revoke one", func(token string) error {
			if err := st.TouchSessionDevice(ctx, token, u.ID, "ua", "127.0.0.1"); err != nil {
				return err
			}
			list, err := st.ListSessionDevices(ctx, u.ID, token)
			if err != nil || len(list) != 1 {
				return fmt.Errorf("list: %v %d", err, len(list))
			}
			return st.RevokeSession(ctx, u.ID, list[0].ID)
		}},
	} {
		token := "token of " + end.name
		if err := ss.Commit(token, data, time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if _, found, _ := ss.Find(token); !found {
			t.Fatalf("%s: session not stored", end.name)
		}
		if err := end.fn(token); err != nil {
			t.Fatalf("%s: %v", end.name, err)
		}
		// The late commit of a request that was already running.
		if err := ss.Commit(token, append([]byte(nil), data...), time.Now().Add(2*time.Hour)); err != nil {
			t.Fatal(err)
		}
		if _, found, _ := ss.Find(token); found {
			t.Errorf("%s: the ended session was stored again by a late commit", end.name)
		}
	}
}

package store

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRotateKeyKilledHalfWayAndResumed: files and a two-factor seed written under the old
// key; the server (new key + old key) reads both while rotate-key runs; the run dies after
// two files (and a half-written rewrite is left behind); a second run finishes; then a
// vault with only the new key reads everything and the old key alone reads nothing.
func TestRotateKeyKilledHalfWayAndResumed(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	oldKey, newKey := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	s, err := Open(ctx, filepath.Join(dir, "t.db"), Options{Argon2: cheapArgon2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	vdir := filepath.Join(dir, "files")
	oldV, _ := NewVault(vdir, oldKey)
	contents := map[string][]byte{}
	for i := range 5 {
		body := bytes.Repeat([]byte{byte('a' + i)}, 100_000+i) // two chunks each
		contents[putVault(t, oldV, body, 4096)] = body
	}
	u, _ := s.CreateUser(ctx, NewUser{Email: "rot@example.com", Password: "rotate passphrase", TermsVersion: "v"})
	if _, err := s.BeginTOTP(ctx, oldV, u.ID, u.Email); err != nil {
		t.Fatal(err)
	}
	seedBefore, err := s.PendingTOTP(ctx, oldV, u.ID, u.Email)
	if err != nil {
		t.Fatal(err)
	}

	// The server after the restart: new key, old key for reading.
	v, _ := NewVault(vdir, newKey)
	if err := v.WithOldKey(oldKey); err != nil {
		t.Fatal(err)
	}
	readAll := func(v *Vault) error {
		for id, want := range contents {
			r, err := v.Open(id)
			if err != nil {
				return err
			}
			got, err := io.ReadAll(r)
			r.Close()
			if err != nil {
				return err
			}
			if !bytes.Equal(got, want) {
				return errors.New("content differs")
			}
		}
		return nil
	}
	if err := readAll(v); err != nil {
		t.Fatalf("serving with both keys before rotating: %v", err)
	}
	crash := errors.New("killed")
	n := 0
	rep, err := s.RotateKey(ctx, v, RotateOptions{AfterItem: func() error {
		if n++; n == 2 {
			return crash
		}
		return nil
	}})
	if !errors.Is(err, crash) || rep.Files != 2 {
		t.Fatalf("first run: %+v %v", rep, err)
	}
	// A rewrite cut short by the kill: a temporary file, never under a file's id.
	os.WriteFile(filepath.Join(vdir, vaultIncoming+"killed"), []byte("half"), 0o600)
	if err := readAll(v); err != nil {
		t.Fatalf("serving half-way through: %v", err)
	}
	rep, err = s.RotateKey(ctx, v, RotateOptions{})
	if err != nil || rep.Files != 3 || rep.Secrets != 1 || rep.Total != 5 {
		t.Fatalf("resumed run: %+v %v", rep, err)
	}
	if rep, _ := s.RotateKey(ctx, v, RotateOptions{}); rep.Files+rep.Secrets != 0 {
		t.Fatalf("a third run rewrote %+v; everything was done", rep)
	}
	newOnly, _ := NewVault(vdir, newKey)
	if err := readAll(newOnly); err != nil {
		t.Fatalf("new key alone after rotating: %v", err)
	}
	if err := readAll(oldV); !errors.Is(err, ErrVaultWrongKey) {
		t.Fatalf("old key alone after rotating: %v, want refused", err)
	}
	seedAfter, err := s.PendingTOTP(ctx, newOnly, u.ID, u.Email)
	if err != nil || seedAfter.Secret != seedBefore.Secret {
		t.Fatalf("two-factor seed after rotating: %v", err)
	}
	entries, _ := s.RecentAudit(ctx, 5)
	if len(entries) == 0 || entries[0].Action != AuditKeyRotated || !strings.Contains(entries[0].Target, KeyID(newKey)) {
		t.Fatalf("audit: %+v", entries)
	}
}

// Package storetest opens SQLite stores for tests, the way the server opens its own: the
// same DSN, pragmas and migrations (store.Open), on a temporary file. Only tests import it.
package storetest

import (
	"context"
	"path/filepath"
	"testing"

	"tunelab/store"
)

// Names inside the directory OpenDir uses.
const (
	DBFile   = "tunelab.db"
	VaultDir = "files"
)

// CheapArgon2 keeps tests that sign many people up fast; store tests cover the production
// cost.
var CheapArgon2 = store.Argon2Params{Time: 1, Memory: 64, Threads: 1}

// Open opens the SQLite file at path (creating it if needed) with o, and closes it when the
// test ends.
func Open(t testing.TB, path string, o store.Options) *store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), path, o)
	if err != nil {
		t.Fatalf("storetest: open %s: %v", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// OpenTemp opens a fresh store in a temporary directory with cheap password hashing and the
// real clock, and an encrypted file vault beside it (a zero key).
func OpenTemp(t testing.TB) (*store.Store, *store.Vault) {
	t.Helper()
	return OpenDir(t, t.TempDir(), store.Options{})
}

// OpenDir opens a fresh store at dir/DBFile with o, and a vault at dir/VaultDir (a zero
// key). A zero o.Argon2 means CheapArgon2.
func OpenDir(t testing.TB, dir string, o store.Options) (*store.Store, *store.Vault) {
	t.Helper()
	if o.Argon2 == (store.Argon2Params{}) {
		o.Argon2 = CheapArgon2
	}
	s := Open(t, filepath.Join(dir, DBFile), o)
	v, err := store.NewVault(filepath.Join(dir, VaultDir), make([]byte, 32))
	if err != nil {
		t.Fatalf("storetest: vault: %v", err)
	}
	return s, v
}

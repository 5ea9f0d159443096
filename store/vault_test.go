package store

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
)

func testVault(t *testing.T) (*Vault, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "vault")
	key := bytes.Repeat([]byte{7}, 32)
	v, err := NewVault(dir, key)
	if err != nil {
		t.Fatal(err)
	}
	return v, dir
}

func putVault(t *testing.T, v *Vault, data []byte, writeSize int) string {
	t.Helper()
	w, err := v.Create()
	if err != nil {
		t.Fatal(err)
	}
	for rest := data; len(rest) > 0; {
		n := min(writeSize, len(rest))
		if _, err := w.Write(rest[:n]); err != nil {
			t.Fatal(err)
		}
		rest = rest[n:]
	}
	id, err := w.Commit()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func readVault(v *Vault, id string) ([]byte, error) {
	r, err := v.Open(id)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(iotest.OneByteReader(r))
}

func TestVaultRoundTripAtChunkEdges(t *testing.T) {
	v, dir := testVault(t)
	for _, size := range []int{0, 1, vaultChunk - 1, vaultChunk, vaultChunk + 1, 3*vaultChunk + 17} {
		for _, ws := range []int{1 << 20, vaultChunk, 4093} {
			data := make([]byte, size)
			rand.Read(data)
			id := putVault(t, v, data, ws)
			got, err := readVault(v, id)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("size %d write %d: round trip failed (%v)", size, ws, err)
			}
		}
	}
	// Nothing but committed files remains, and none holds the plaintext.
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".incoming") {
			t.Fatalf("temporary file %s left behind", e.Name())
		}
	}
}

func TestVaultStoresNoPlaintext(t *testing.T) {
	v, dir := testVault(t)
	secret := []byte(strings.Repeat(`{"prompt":"my private training data","completion":"x"}`+"\n", 100))
	id := putVault(t, v, secret, 1<<20)
	raw, err := os.ReadFile(filepath.Join(dir, id))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("private training data")) {
		t.Fatal("plaintext found on disk")
	}
	other, _ := NewVault(dir, bytes.Repeat([]byte{8}, 32))
	if _, err := readVault(other, id); !errors.Is(err, ErrVaultCorrupt) {
		t.Fatalf("read with another key: %v, want ErrVaultCorrupt", err)
	}
}

func TestVaultDetectsTamperingAndTruncation(t *testing.T) {
	v, dir := testVault(t)
	data := make([]byte, 2*vaultChunk+100)
	rand.Read(data)
	id := putVault(t, v, data, 1<<20)
	path := filepath.Join(dir, id)
	orig, _ := os.ReadFile(path)
	chunkCT := vaultChunk + 16
	header := len(vaultMagic) + vaultSaltLen
	cases := map[string][]byte{
		"bit flip":           flip(orig, header+10),
		"last chunk dropped": orig[:header+2*chunkCT],
		"cut mid-chunk":      orig[:header+chunkCT+500],
		"chunks swapped":     append(append(append([]byte{}, orig[:header]...), orig[header+chunkCT:header+2*chunkCT]...), append(append([]byte{}, orig[header:header+chunkCT]...), orig[header+2*chunkCT:]...)...),
		"header only":        orig[:header],
		"bad magic":          append([]byte("XXXX"), orig[4:]...),
	}
	for name, bad := range cases {
		t.Run(name, func(t *testing.T) {
			os.WriteFile(path, bad, 0o600)
			if _, err := readVault(v, id); !errors.Is(err, ErrVaultCorrupt) {
				t.Fatalf("err = %v, want ErrVaultCorrupt", err)
			}
		})
	}
}

func flip(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[i] ^= 1
	return c
}

func TestVaultIDsArePathSafe(t *testing.T) {
	v, _ := testVault(t)
	for _, id := range []string{"../secret.key", "/etc/passwd", "", "ABCDEF0123456789abcdef0123456789", "0123"} {
		if _, err := v.Open(id); err == nil || errors.Is(err, ErrNotFound) {
			t.Errorf("Open(%q) = %v, want a refusal", id, err)
		}
		if err := v.Remove(id); err == nil {
			t.Errorf("Remove(%q) accepted", id)
		}
	}
	if _, err := v.Open("0123456789abcdef0123456789abcdef"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing file: %v", err)
	}
}

func TestVaultAbortAndRemove(t *testing.T) {
	v, dir := testVault(t)
	w, _ := v.Create()
	w.Write([]byte("half an upload"))
	w.Abort()
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("an aborted write left %d files", len(entries))
	}
	id := putVault(t, v, []byte("x"), 1)
	if err := v.Remove(id); err != nil {
		t.Fatal(err)
	}
	if err := v.Remove(id); err != nil {
		t.Fatalf("second remove: %v", err)
	}
	if _, err := v.Open(id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("removed file still opens: %v", err)
	}
	if _, err := NewVault(dir, []byte("short")); err == nil {
		t.Fatal("a short key was accepted")
	}
}

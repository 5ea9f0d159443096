package store

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
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
}

func TestVaultRefusesAFileOfAnotherKeyByItsKeyID(t *testing.T) {
	v, dir := testVault(t)
	id := putVault(t, v, []byte("written under key 7"), 1<<20)
	otherKey := bytes.Repeat([]byte{8}, 32)
	other, _ := NewVault(dir, otherKey)
	_, err := readVault(other, id)
	var ke *VaultKeyError
	if !errors.Is(err, ErrVaultWrongKey) || !errors.As(err, &ke) || errors.Is(err, ErrVaultCorrupt) {
		t.Fatalf("read with another key: %v, want a *VaultKeyError", err)
	}
	written, server := KeyID(bytes.Repeat([]byte{7}, 32)), KeyID(otherKey)
	if ke.File != id || ke.FileKeyID != written || ke.KeyID != server || written == server || len(written) != 16 {
		t.Fatalf("key error = %+v; want file %s, key ids %s (file) and %s (server)", ke, id, written, server)
	}
	for _, want := range []string{id, written, server, "TUNELAB_SECRET_KEY", "start the server with the key that wrote the file"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error %q does not say %q", err, want)
		}
	}
	// The right key still reads it.
	if got, err := readVault(v, id); err != nil || string(got) != "written under key 7" {
		t.Fatalf("round trip: %q %v", got, err)
	}
}

func TestVaultChunksAreBoundToTheirFileID(t *testing.T) {
	v, dir := testVault(t)
	a := make([]byte, 2*vaultChunk+10)
	rand.Read(a)
	idA, idB := putVault(t, v, a, 1<<20), putVault(t, v, []byte("file b"), 1<<20)
	contentA, _ := os.ReadFile(filepath.Join(dir, idA))
	// A's whole file (header and chunks, same key) stored under B's id, or under a new id,
	// no longer decrypts: every chunk's additional data names the id it was written for.
	os.WriteFile(filepath.Join(dir, idB), contentA, 0o600)
	if _, err := readVault(v, idB); !errors.Is(err, ErrVaultCorrupt) {
		t.Fatalf("A's content under B's id: %v, want ErrVaultCorrupt", err)
	}
	moved := "0123456789abcdef0123456789abcdef"
	os.Rename(filepath.Join(dir, idA), filepath.Join(dir, moved))
	if _, err := readVault(v, moved); !errors.Is(err, ErrVaultCorrupt) {
		t.Fatalf("A renamed: %v, want ErrVaultCorrupt", err)
	}
	os.Rename(filepath.Join(dir, moved), filepath.Join(dir, idA))
	if got, err := readVault(v, idA); err != nil || !bytes.Equal(got, a) {
		t.Fatalf("A back under its own id: %v", err)
	}
}

// v1File encrypts data in the version 1 format ("TLV1" | salt | chunks without additional
// data), written here from the primitives so the test does not lean on the vault's code.
func v1File(t *testing.T, key, data []byte) []byte {
	t.Helper()
	salt := make([]byte, 16)
	rand.Read(salt)
	fileKey, err := hkdf.Key(sha256.New, key, salt, "tunelab vault v1", 32)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := aes.NewCipher(fileKey)
	gcm, _ := cipher.NewGCM(block)
	out := append([]byte("TLV1"), salt...)
	for i := uint64(0); ; i++ {
		n := min(len(data), 64<<10)
		nonce := make([]byte, 12)
		binary.BigEndian.PutUint64(nonce[3:11], i)
		last := n == len(data)
		if last {
			nonce[11] = 1
		}
		out = gcm.Seal(out, nonce, data[:n], nil)
		data = data[n:]
		if last {
			return out
		}
	}
}

func TestVaultStillReadsVersion1Files(t *testing.T) {
	v, dir := testVault(t)
	for i, size := range []int{0, 100, vaultChunk, 2*vaultChunk + 5} {
		data := make([]byte, size)
		rand.Read(data)
		id := fmt.Sprintf("%032x", i+1)
		os.WriteFile(filepath.Join(dir, id), v1File(t, bytes.Repeat([]byte{7}, 32), data), 0o600)
		if got, err := readVault(v, id); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("version 1 file of %d bytes: %v", size, err)
		}
	}
	// New files are version 2, with this key's id in the header.
	id := putVault(t, v, []byte("new"), 10)
	raw, _ := os.ReadFile(filepath.Join(dir, id))
	if string(raw[:4]) != "TLV2" || hex.EncodeToString(raw[4:12]) != KeyID(bytes.Repeat([]byte{7}, 32)) {
		t.Fatalf("new file header %x", raw[:12])
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
	header := vaultV2Header
	cases := map[string][]byte{
		"salt changed":       flip(orig, header-1),
		"version unknown":    append([]byte("TLV9"), orig[4:]...),
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

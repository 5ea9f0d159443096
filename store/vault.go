package store

import (
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
	"regexp"
	"strings"
	"time"
)

// Vault keeps files (datasets, snapshots) encrypted at rest with AES-256-GCM under a key
// derived from the server's secret key. Files are named by random ids the server makes;
// a name a person uploaded never becomes a path.
//
// File format ("STREAM" construction, so large files stream in constant memory and
// truncation or reordering is detected):
//
//	magic "TLV1" | 16-byte salt | chunk...
//	chunk = AES-GCM(fileKey, nonce = 11-byte big-endian counter | last-flag, up to 64 KiB)
//
// fileKey = HKDF-SHA256(secret key, salt, "tunelab vault v1"), new for every file.
type Vault struct {
	dir    string
	master []byte
}

const (
	vaultMagic     = "TLV1"
	vaultChunk     = 64 << 10
	vaultSaltLen   = 16
	vaultNonceSize = 12
	vaultIncoming  = ".incoming-" // temporary files, until Commit renames them
)

var (
	vaultIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)
	// ErrVaultCorrupt means a file was altered, truncated or encrypted under another key.
	ErrVaultCorrupt = errors.New("store: vault file is corrupt or was encrypted with another key")
)

// NewVault opens (creating) the vault directory. secretKey must be 32 bytes.
func NewVault(dir string, secretKey []byte) (*Vault, error) {
	if len(secretKey) != 32 {
		return nil, fmt.Errorf("store: vault key is %d bytes, want 32", len(secretKey))
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: create vault dir: %w", err)
	}
	return &Vault{dir: dir, master: append([]byte(nil), secretKey...)}, nil
}

func (v *Vault) path(id string) (string, error) {
	if !vaultIDPattern.MatchString(id) {
		return "", fmt.Errorf("store: vault id %q is not one the server made", id)
	}
	return filepath.Join(v.dir, id), nil
}

func (v *Vault) aead(salt []byte) (cipher.AEAD, error) {
	key, err := hkdf.Key(sha256.New, v.master, salt, "tunelab vault v1", 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func chunkNonce(counter uint64, last bool) []byte {
	n := make([]byte, vaultNonceSize)
	binary.BigEndian.PutUint64(n[3:11], counter)
	if last {
		n[11] = 1
	}
	return n
}

// VaultWriter encrypts into a temporary file; Commit makes it visible under a new id,
// Abort throws it away. Until Commit nothing is stored.
type VaultWriter struct {
	v       *Vault
	f       *os.File
	aead    cipher.AEAD
	buf     []byte
	counter uint64
	n       int64
	err     error
}

// Create starts a new encrypted file.
func (v *Vault) Create() (*VaultWriter, error) {
	f, err := os.CreateTemp(v.dir, vaultIncoming+"*")
	if err != nil {
		return nil, fmt.Errorf("store: vault create: %w", err)
	}
	salt := make([]byte, vaultSaltLen)
	rand.Read(salt)
	aead, err := v.aead(salt)
	if err == nil {
		_, err = f.Write(append([]byte(vaultMagic), salt...))
	}
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("store: vault create: %w", err)
	}
	return &VaultWriter{v: v, f: f, aead: aead, buf: make([]byte, 0, vaultChunk)}, nil
}

// Write encrypts p, a chunk at a time.
func (w *VaultWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	written := 0
	for len(p) > 0 {
		// A full chunk is sealed only once more data arrives, so the chunk sealed by
		// Commit, the one marked last, is really the last (and may be full).
		if len(w.buf) == vaultChunk {
			if err := w.seal(false); err != nil {
				return written, err
			}
		}
		take := min(len(p), vaultChunk-len(w.buf))
		w.buf = append(w.buf, p[:take]...)
		p, written = p[take:], written+take
	}
	w.n += int64(written)
	return written, nil
}

func (w *VaultWriter) seal(last bool) error {
	ct := w.aead.Seal(nil, chunkNonce(w.counter, last), w.buf, nil)
	w.counter++
	w.buf = w.buf[:0]
	if _, err := w.f.Write(ct); err != nil {
		w.err = fmt.Errorf("store: vault write: %w", err)
		return w.err
	}
	return nil
}

// Size is the number of plaintext bytes written so far.
func (w *VaultWriter) Size() int64 { return w.n }

// Commit seals the last chunk, syncs the file to disk and gives it its id.
func (w *VaultWriter) Commit() (string, error) {
	if w.err != nil {
		w.Abort()
		return "", w.err
	}
	if err := w.seal(true); err != nil {
		w.Abort()
		return "", err
	}
	if err := w.f.Sync(); err != nil {
		w.Abort()
		return "", fmt.Errorf("store: vault sync: %w", err)
	}
	if err := w.f.Close(); err != nil {
		os.Remove(w.f.Name())
		return "", fmt.Errorf("store: vault close: %w", err)
	}
	idb := make([]byte, 16)
	rand.Read(idb)
	id := hex.EncodeToString(idb)
	if err := os.Rename(w.f.Name(), filepath.Join(w.v.dir, id)); err != nil {
		os.Remove(w.f.Name())
		return "", fmt.Errorf("store: vault commit: %w", err)
	}
	syncDir(w.v.dir)
	return id, nil
}

// Abort removes the temporary file; it is safe to call after Commit.
func (w *VaultWriter) Abort() {
	w.f.Close()
	os.Remove(w.f.Name())
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// Open returns the decrypted content of a file. Reading fails with ErrVaultCorrupt when
// the file was tampered with or cut short.
func (v *Vault) Open(id string) (io.ReadCloser, error) {
	p, err := v.path(id)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: vault open: %w", err)
	}
	head := make([]byte, len(vaultMagic)+vaultSaltLen)
	if _, err := io.ReadFull(f, head); err != nil || string(head[:4]) != vaultMagic {
		f.Close()
		return nil, ErrVaultCorrupt
	}
	aead, err := v.aead(head[4:])
	if err != nil {
		f.Close()
		return nil, err
	}
	return &vaultReader{f: f, aead: aead, ct: make([]byte, vaultChunk+aead.Overhead()+1)}, nil
}

type vaultReader struct {
	f       *os.File
	aead    cipher.AEAD
	ct      []byte // one chunk plus one byte, to tell whether more follows
	have    int    // bytes of ct filled
	plain   []byte
	counter uint64
	done    bool
}

func (r *vaultReader) Read(p []byte) (int, error) {
	for len(r.plain) == 0 {
		if r.done {
			return 0, io.EOF
		}
		if err := r.next(); err != nil {
			return 0, err
		}
	}
	n := copy(p, r.plain)
	r.plain = r.plain[n:]
	return n, nil
}

// next decrypts one chunk. A chunk is the last when no byte follows it.
func (r *vaultReader) next() error {
	n, err := io.ReadFull(r.f, r.ct[r.have:])
	r.have += n
	size := vaultChunk + r.aead.Overhead()
	last := false
	switch {
	case err == nil: // a full chunk and at least one more byte
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		last = true
		size = r.have
	default:
		return fmt.Errorf("store: vault read: %w", err)
	}
	if size < r.aead.Overhead() {
		return ErrVaultCorrupt
	}
	plain, err := r.aead.Open(nil, chunkNonce(r.counter, last), r.ct[:size], nil)
	if err != nil {
		return ErrVaultCorrupt
	}
	r.counter++
	r.plain = plain
	r.done = last
	// Keep the byte read past this chunk for the next one.
	r.have = copy(r.ct, r.ct[size:r.have])
	return nil
}

func (r *vaultReader) Close() error { return r.f.Close() }

// RemoveStaleUploads removes half-written files (an upload whose request ended with the
// process, before Commit or Abort) last written before the given time, and returns how
// many went.
func (v *Vault) RemoveStaleUploads(before time.Time) (int, error) {
	entries, err := os.ReadDir(v.dir)
	if err != nil {
		return 0, fmt.Errorf("store: vault sweep: %w", err)
	}
	n := 0
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), vaultIncoming) {
			continue
		}
		info, err := e.Info()
		if err != nil || !info.ModTime().Before(before) {
			continue // gone meanwhile, or still being written
		}
		if err := os.Remove(filepath.Join(v.dir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
			return n, fmt.Errorf("store: vault sweep: %w", err)
		}
		n++
	}
	return n, nil
}

// Remove deletes a file; a missing file is not an error (purges must be re-runnable).
func (v *Vault) Remove(id string) error {
	p, err := v.path(id)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("store: vault remove: %w", err)
	}
	return nil
}

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
	"regexp"
	"strings"
	"time"
)

// Vault keeps files (datasets, snapshots) encrypted at rest with AES-256-GCM under a key
// derived from the server's secret key. Files are named by random ids the server makes;
// a name a person uploaded never becomes a path.
//
// File format ("STREAM" construction, so large files stream in constant memory and
// truncation or reordering is detected), version 2:
//
//	header = magic "TLV" | version '2' | 8-byte key id | 16-byte salt
//	file   = header | chunk...
//	chunk  = AES-GCM(fileKey, nonce = 11-byte big-endian counter | last-flag,
//	                 plaintext up to 64 KiB, additional data = header | file id | counter)
//
// fileKey = HKDF-SHA256(secret key, salt, "tunelab vault v2"), new for every file. The
// additional data binds every chunk to its file id and place, so content moved under
// another file's id, or chunks reordered, fail to decrypt. The key id (KeyID) names the
// secret key a file was written with: a file written with another key is refused with a
// *VaultKeyError saying so (and a later key rotation can tell old files from new).
//
// Version 1 files ("TLV1" | salt | chunks: no key id, no additional data, HKDF info
// "tunelab vault v1"), written before this format, are still read; new files are always
// version 2.
type Vault struct {
	dir    string
	master []byte
	keyID  [vaultKeyIDLen]byte
	// old reads what the previous secret key wrote while a key rotation runs
	// (TUNELAB_OLD_SECRET_KEY, see vault_rotate.go); nil otherwise.
	old *Vault
}

const (
	vaultMagic     = "TLV"
	vaultV1        = '1'
	vaultV2        = '2'
	vaultChunk     = 64 << 10
	vaultKeyIDLen  = 8
	vaultSaltLen   = 16
	vaultNonceSize = 12
	vaultV1Header  = len(vaultMagic) + 1 + vaultSaltLen
	vaultV2Header  = len(vaultMagic) + 1 + vaultKeyIDLen + vaultSaltLen
	vaultIncoming  = ".incoming-" // temporary files, until Commit renames them
)

var (
	vaultIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)
	// ErrVaultCorrupt means a file was altered, truncated, moved under another file's id,
	// or (a version 1 file) encrypted under another key.
	ErrVaultCorrupt = errors.New("store: vault file is corrupt or was encrypted with another key")
	// ErrVaultWrongKey matches a *VaultKeyError.
	ErrVaultWrongKey = errors.New("store: vault file was encrypted with another secret key")
)

// VaultKeyError refuses a file written with another secret key than the server's.
type VaultKeyError struct {
	File      string // the file id
	FileKeyID string // the key id in the file's header (hex)
	KeyID     string // the key id of the server's key (hex)
}

func (e *VaultKeyError) Error() string {
	return fmt.Sprintf("store: vault file %s was encrypted with the secret key whose id is %s, but this server's key (TUNELAB_SECRET_KEY) has id %s; start the server with the key that wrote the file",
		e.File, e.FileKeyID, e.KeyID)
}

// Is makes errors.Is(err, ErrVaultWrongKey) true.
func (e *VaultKeyError) Is(target error) bool { return target == ErrVaultWrongKey }

// KeyID names a secret key without revealing it: the first 8 bytes of SHA-256 over a
// fixed label and the key, in hex.
func KeyID(secretKey []byte) string {
	id := keyID(secretKey)
	return hex.EncodeToString(id[:])
}

func keyID(secretKey []byte) [vaultKeyIDLen]byte {
	sum := sha256.Sum256(append([]byte("tunelab vault key id\x00"), secretKey...))
	return [vaultKeyIDLen]byte(sum[:vaultKeyIDLen])
}

// NewVault opens (creating) the vault directory. secretKey must be 32 bytes.
func NewVault(dir string, secretKey []byte) (*Vault, error) {
	if len(secretKey) != 32 {
		return nil, fmt.Errorf("store: vault key is %d bytes, want 32", len(secretKey))
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: create vault dir: %w", err)
	}
	return &Vault{dir: dir, master: append([]byte(nil), secretKey...), keyID: keyID(secretKey)}, nil
}

func (v *Vault) path(id string) (string, error) {
	if !vaultIDPattern.MatchString(id) {
		return "", fmt.Errorf("store: vault id %q is not one the server made", id)
	}
	return filepath.Join(v.dir, id), nil
}

func (v *Vault) aead(version byte, salt []byte) (cipher.AEAD, error) {
	info := "tunelab vault v2"
	if version == vaultV1 {
		info = "tunelab vault v1"
	}
	key, err := hkdf.Key(sha256.New, v.master, salt, info, 32)
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

// chunkAAD is a version 2 chunk's additional data: the header, the file id and the
// chunk's counter. prefix (header | file id) is nil for a version 1 file, which has none.
func chunkAAD(prefix []byte, counter uint64) []byte {
	if prefix == nil {
		return nil
	}
	return binary.BigEndian.AppendUint64(append([]byte(nil), prefix...), counter)
}

// VaultWriter encrypts into a temporary file; Commit makes it visible under its id,
// Abort throws it away. Until Commit nothing is stored.
type VaultWriter struct {
	v       *Vault
	f       *os.File
	id      string
	aead    cipher.AEAD
	prefix  []byte // header | file id: the chunks' additional data before the counter
	buf     []byte
	counter uint64
	n       int64
	err     error
}

// Create starts a new encrypted file. Its id is chosen now, since every chunk is bound
// to it.
func (v *Vault) Create() (*VaultWriter, error) {
	idb := make([]byte, 16)
	rand.Read(idb)
	return v.createWithID(hex.EncodeToString(idb))
}

// createWithID starts a file that Commit puts under id (replacing a file there: a key
// rotation rewrites a file in place).
func (v *Vault) createWithID(id string) (*VaultWriter, error) {
	f, err := os.CreateTemp(v.dir, vaultIncoming+"*")
	if err != nil {
		return nil, fmt.Errorf("store: vault create: %w", err)
	}
	salt := make([]byte, vaultSaltLen)
	rand.Read(salt)
	header := make([]byte, 0, vaultV2Header)
	header = append(append(append(append(header, vaultMagic...), vaultV2), v.keyID[:]...), salt...)
	aead, err := v.aead(vaultV2, salt)
	if err == nil {
		_, err = f.Write(header)
	}
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("store: vault create: %w", err)
	}
	return &VaultWriter{v: v, f: f, id: id, aead: aead, prefix: append(header, id...), buf: make([]byte, 0, vaultChunk)}, nil
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
	ct := w.aead.Seal(nil, chunkNonce(w.counter, last), w.buf, chunkAAD(w.prefix, w.counter))
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
	if err := os.Rename(w.f.Name(), filepath.Join(w.v.dir, w.id)); err != nil {
		os.Remove(w.f.Name())
		return "", fmt.Errorf("store: vault commit: %w", err)
	}
	syncDir(w.v.dir)
	return w.id, nil
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
	r, err := v.openFile(id, f)
	if err != nil {
		f.Close()
		if v.old != nil && errors.Is(err, ErrVaultWrongKey) {
			return v.old.Open(id) // written before the key rotation reached it
		}
		return nil, err
	}
	return r, nil
}

// openFile reads a file's header and returns the reader of its chunks.
func (v *Vault) openFile(id string, f *os.File) (*vaultReader, error) {
	head := make([]byte, vaultV1Header, vaultV2Header)
	if _, err := io.ReadFull(f, head); err != nil || string(head[:len(vaultMagic)]) != vaultMagic {
		return nil, ErrVaultCorrupt
	}
	var salt, prefix []byte
	switch version := head[len(vaultMagic)]; version {
	case vaultV1:
		salt = head[len(vaultMagic)+1:]
	case vaultV2:
		head = head[:vaultV2Header]
		if _, err := io.ReadFull(f, head[vaultV1Header:]); err != nil {
			return nil, ErrVaultCorrupt
		}
		fileKey := head[len(vaultMagic)+1 : len(vaultMagic)+1+vaultKeyIDLen]
		if !bytes.Equal(fileKey, v.keyID[:]) {
			return nil, &VaultKeyError{File: id, FileKeyID: hex.EncodeToString(fileKey), KeyID: hex.EncodeToString(v.keyID[:])}
		}
		salt = head[len(vaultMagic)+1+vaultKeyIDLen:]
		prefix = append(append([]byte(nil), head...), id...)
	default:
		return nil, fmt.Errorf("%w (format version %q is newer than this server)", ErrVaultCorrupt, version)
	}
	aead, err := v.aead(head[len(vaultMagic)], salt)
	if err != nil {
		return nil, err
	}
	return &vaultReader{f: f, aead: aead, prefix: prefix, ct: make([]byte, vaultChunk+aead.Overhead()+1)}, nil
}

type vaultReader struct {
	f       *os.File
	aead    cipher.AEAD
	prefix  []byte // header | file id (version 2); nil for version 1
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
	plain, err := r.aead.Open(nil, chunkNonce(r.counter, last), r.ct[:size], chunkAAD(r.prefix, r.counter))
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

// Small secrets (TOTP seeds) are sealed in one AES-256-GCM message rather than a file:
//
//	sealed = magic "TLS1" | 8-byte key id | 12-byte random nonce | ciphertext
//
// key = HKDF-SHA256(secret key, no salt, "tunelab vault secrets v1"); the additional data
// is the header and a purpose string naming what the secret is and whose (a seed moved to
// another account's row does not open).
const secretMagic = "TLS1"

// ErrSecretCorrupt means a sealed secret was altered, belongs elsewhere, or was sealed
// under another key.
var ErrSecretCorrupt = errors.New("store: sealed secret is corrupt or was sealed with another key")

func (v *Vault) secretAEAD() (cipher.AEAD, error) {
	key, err := hkdf.Key(sha256.New, v.master, nil, "tunelab vault secrets v1", 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// SealSecret encrypts a small secret for purpose.
func (v *Vault) SealSecret(purpose string, plain []byte) ([]byte, error) {
	aead, err := v.secretAEAD()
	if err != nil {
		return nil, fmt.Errorf("store: seal secret: %w", err)
	}
	header := append([]byte(secretMagic), v.keyID[:]...)
	nonce := make([]byte, aead.NonceSize())
	rand.Read(nonce)
	out := append(append([]byte(nil), header...), nonce...)
	return aead.Seal(out, nonce, plain, append(header, purpose...)), nil
}

// OpenSecret decrypts what SealSecret sealed for the same purpose.
func (v *Vault) OpenSecret(purpose string, sealed []byte) ([]byte, error) {
	aead, err := v.secretAEAD()
	if err != nil {
		return nil, fmt.Errorf("store: open secret: %w", err)
	}
	hl := len(secretMagic) + vaultKeyIDLen
	if len(sealed) < hl+aead.NonceSize()+aead.Overhead() || string(sealed[:len(secretMagic)]) != secretMagic {
		return nil, ErrSecretCorrupt
	}
	if !bytes.Equal(sealed[len(secretMagic):hl], v.keyID[:]) {
		if v.old != nil {
			return v.old.OpenSecret(purpose, sealed)
		}
		return nil, &VaultKeyError{File: "sealed secret", FileKeyID: hex.EncodeToString(sealed[len(secretMagic):hl]), KeyID: hex.EncodeToString(v.keyID[:])}
	}
	header := sealed[:hl]
	nonce := sealed[hl : hl+aead.NonceSize()]
	plain, err := aead.Open(nil, nonce, sealed[hl+aead.NonceSize():], append(append([]byte(nil), header...), purpose...))
	if err != nil {
		return nil, ErrSecretCorrupt
	}
	return plain, nil
}

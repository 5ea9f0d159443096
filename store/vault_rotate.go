package store

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
)

// Key rotation. The server starts with the new key as TUNELAB_SECRET_KEY and the old one as
// TUNELAB_OLD_SECRET_KEY: it writes with the new key and reads either (each file and sealed
// secret names its key id). `tunelab admin rotate-key` then rewrites every vault file and
// sealed secret still under the old key while the server keeps serving; each file is
// replaced by an atomic rename under its own id, each secret by a compare-and-swap UPDATE,
// so a run killed half-way leaves every item readable and the next run picks up where it
// stopped. Once it reports done, the old key can be dropped.

// WithOldKey makes v read files and secrets written with old as well.
func (v *Vault) WithOldKey(old []byte) error {
	if bytes.Equal(old, v.master) {
		return errors.New("store: the old secret key is the same as the new one")
	}
	o, err := NewVault(v.dir, old)
	if err != nil {
		return err
	}
	v.old = o
	return nil
}

// fileKeyID reads the key id in a file's header; ok is false for a version 1 file (no id).
func (v *Vault) fileKeyID(id string) (kid [vaultKeyIDLen]byte, ok bool, err error) {
	p, err := v.path(id)
	if err != nil {
		return kid, false, err
	}
	f, err := os.Open(p)
	if err != nil {
		return kid, false, err
	}
	defer f.Close()
	head := make([]byte, vaultV2Header)
	n, _ := io.ReadFull(f, head)
	if n < vaultV1Header || string(head[:len(vaultMagic)]) != vaultMagic {
		return kid, false, ErrVaultCorrupt
	}
	if head[len(vaultMagic)] != vaultV2 || n < vaultV2Header {
		return kid, false, nil
	}
	copy(kid[:], head[len(vaultMagic)+1:])
	return kid, true, nil
}

// reencrypt rewrites file id under v's key unless it is already; it reports whether it did.
func (v *Vault) reencrypt(id string) (bool, error) {
	kid, ok, err := v.fileKeyID(id)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil // purged meanwhile
	}
	if err != nil {
		return false, err
	}
	if ok && kid == v.keyID {
		return false, nil
	}
	src := v
	if ok && v.old != nil && kid == v.old.keyID {
		src = v.old
	} else if !ok && v.old != nil {
		src = v.old // a version 1 file: written before rotation, so with the old key
	}
	r, err := src.Open(id)
	if err != nil {
		return false, fmt.Errorf("store: rotate file %s: %w", id, err)
	}
	defer r.Close()
	w, err := v.createWithID(id)
	if err != nil {
		return false, err
	}
	if _, err := io.Copy(w, r); err != nil {
		w.Abort()
		return false, fmt.Errorf("store: rotate file %s: %w", id, err)
	}
	if _, err := w.Commit(); err != nil {
		return false, err
	}
	return true, nil
}

// RotateReport counts what one rotate-key run rewrote.
type RotateReport struct {
	Files, Secrets int // rewritten now
	Total          int // vault files seen
}

// RotateOptions: AfterItem (tests) runs after each rewritten item; an error from it stops
// the run there, as a crash would.
type RotateOptions struct {
	AfterItem func() error
}

// RotateKey rewrites every vault file and sealed secret not yet under v's key (v must have
// the old key, WithOldKey). It is safe to run again at any point.
func (s *Store) RotateKey(ctx context.Context, v *Vault, o RotateOptions) (RotateReport, error) {
	var rep RotateReport
	if v.old == nil {
		return rep, errors.New("store: rotate key: the old key is needed (TUNELAB_OLD_SECRET_KEY)")
	}
	after := func() error {
		if o.AfterItem != nil {
			return o.AfterItem()
		}
		return nil
	}
	entries, err := os.ReadDir(v.dir)
	if err != nil {
		return rep, fmt.Errorf("store: rotate key: %w", err)
	}
	for _, e := range entries {
		if !vaultIDPattern.MatchString(e.Name()) {
			continue // temporary files
		}
		rep.Total++
		did, err := v.reencrypt(e.Name())
		if err != nil {
			return rep, err
		}
		if did {
			rep.Files++
			if err := after(); err != nil {
				return rep, err
			}
		}
	}
	rows, err := s.r.QueryContext(ctx, "SELECT user_id, secret_sealed FROM user_totp")
	if err != nil {
		return rep, fmt.Errorf("store: rotate key: %w", err)
	}
	type sealedRow struct {
		user   int64
		sealed []byte
	}
	var secrets []sealedRow
	for rows.Next() {
		var r sealedRow
		if err := rows.Scan(&r.user, &r.sealed); err != nil {
			rows.Close()
			return rep, err
		}
		secrets = append(secrets, r)
	}
	rows.Close()
	hl := len(secretMagic) + vaultKeyIDLen
	for _, r := range secrets {
		if len(r.sealed) >= hl && bytes.Equal(r.sealed[len(secretMagic):hl], v.keyID[:]) {
			continue
		}
		plain, err := v.OpenSecret(totpPurpose(r.user), r.sealed)
		if err != nil {
			return rep, fmt.Errorf("store: rotate secret of user %d: %w", r.user, err)
		}
		resealed, err := v.SealSecret(totpPurpose(r.user), plain)
		if err != nil {
			return rep, err
		}
		// Compare-and-swap: a seed changed meanwhile (2FA turned off and on) is left alone.
		var res sql.Result
		if res, err = s.w.ExecContext(ctx, "UPDATE user_totp SET secret_sealed = ? WHERE user_id = ? AND secret_sealed = ?", resealed, r.user, r.sealed); err != nil {
			return rep, fmt.Errorf("store: rotate secret of user %d: %w", r.user, err)
		}
		if n, _ := res.RowsAffected(); n == 1 {
			rep.Secrets++
			if err := after(); err != nil {
				return rep, err
			}
		}
	}
	err = s.RecordAudit(ctx, AuditEntry{Action: AuditKeyRotated,
		Target: fmt.Sprintf("key %s to %s: %d files, %d secrets rewritten", KeyID(v.old.master), KeyID(v.master), rep.Files, rep.Secrets)})
	return rep, err
}

package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"
)

// Snapshot is a checkpoint a run saved; its bytes live encrypted in the vault.
type Snapshot struct {
	ID        int64
	RunID     int64
	Step      int
	Final     bool
	FileID    string
	SizeBytes int64
	SHA256    string // hex
	CreatedAt time.Time
}

var (
	// ErrChecksum is returned when uploaded bytes do not match the sha256 announced.
	ErrChecksum = errors.New("store: the snapshot's sha256 does not match its bytes")
	// ErrSnapshotTooLarge is returned when an upload passes its size cap.
	ErrSnapshotTooLarge = errors.New("store: the snapshot is larger than allowed")
	// ErrSnapshotExists is returned for a second snapshot at the same step.
	ErrSnapshotExists = errors.New("store: the run already has a snapshot at that step")
)

// NewSnapshot is what CreateSnapshot needs.
type NewSnapshot struct {
	RunID    int64
	Step     int
	Final    bool
	SHA256   string // hex digest the uploader announced
	MaxBytes int64
}

// CreateSnapshot streams r into the vault while hashing it; the row is written only when
// the digest matches and the size is within MaxBytes, otherwise no file and no row remain.
func (s *Store) CreateSnapshot(ctx context.Context, v *Vault, ns NewSnapshot, r io.Reader) (Snapshot, error) {
	w, err := v.Create()
	if err != nil {
		return Snapshot{}, fmt.Errorf("store: create snapshot: %w", err)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, h), io.LimitReader(r, ns.MaxBytes+1))
	if err != nil {
		w.Abort()
		return Snapshot{}, fmt.Errorf("store: receive snapshot: %w", err)
	}
	if n > ns.MaxBytes {
		w.Abort()
		return Snapshot{}, ErrSnapshotTooLarge
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if sum != ns.SHA256 {
		w.Abort()
		return Snapshot{}, ErrChecksum
	}
	fileID, err := w.Commit()
	if err != nil {
		return Snapshot{}, fmt.Errorf("store: save snapshot: %w", err)
	}
	var id int64
	err = s.w.QueryRowContext(ctx, `INSERT INTO snapshots (run_id, step, final, file_id, size_bytes, sha256, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, step) DO NOTHING RETURNING id`,
		ns.RunID, ns.Step, ns.Final, fileID, n, sum, ms(s.now())).Scan(&id)
	if err != nil {
		v.Remove(fileID)
		if errors.Is(err, sql.ErrNoRows) {
			return Snapshot{}, ErrSnapshotExists
		}
		return Snapshot{}, fmt.Errorf("store: save snapshot: %w", err)
	}
	return s.snapshotByID(ctx, id)
}

const snapshotColumns = "s.id, s.run_id, s.step, s.final, s.file_id, s.size_bytes, s.sha256, s.created_at"

func scanSnapshot(row interface{ Scan(...any) error }) (Snapshot, error) {
	var sn Snapshot
	var created int64
	if err := row.Scan(&sn.ID, &sn.RunID, &sn.Step, &sn.Final, &sn.FileID, &sn.SizeBytes, &sn.SHA256, &created); err != nil {
		return Snapshot{}, err
	}
	sn.CreatedAt = fromMS(created)
	return sn, nil
}

func (s *Store) snapshotByID(ctx context.Context, id int64) (Snapshot, error) {
	sn, err := scanSnapshot(s.r.QueryRowContext(ctx, "SELECT "+snapshotColumns+" FROM snapshots s WHERE s.id = ?", id))
	if err != nil {
		return Snapshot{}, fmt.Errorf("store: snapshot: %w", err)
	}
	return sn, nil
}

// Snapshots lists the snapshots of one of the user's runs, by step.
func (s *Store) Snapshots(ctx context.Context, userID, runID int64) ([]Snapshot, error) {
	rows, err := s.r.QueryContext(ctx, "SELECT "+snapshotColumns+` FROM snapshots s JOIN runs r ON r.id = s.run_id
		WHERE s.run_id = ? AND r.user_id = ? AND r.deleted_at IS NULL AND s.deleted_at IS NULL ORDER BY s.step`, runID, userID)
	if err != nil {
		return nil, fmt.Errorf("store: snapshots: %w", err)
	}
	defer rows.Close()
	var out []Snapshot
	for rows.Next() {
		sn, err := scanSnapshot(rows)
		if err != nil {
			return nil, fmt.Errorf("store: snapshots: %w", err)
		}
		out = append(out, sn)
	}
	return out, rows.Err()
}

// Snapshot returns one snapshot of one of the user's runs; anything else is ErrNotFound.
func (s *Store) Snapshot(ctx context.Context, userID, runID, id int64) (Snapshot, error) {
	sn, err := scanSnapshot(s.r.QueryRowContext(ctx, "SELECT "+snapshotColumns+` FROM snapshots s JOIN runs r ON r.id = s.run_id
		WHERE s.id = ? AND s.run_id = ? AND r.user_id = ? AND r.deleted_at IS NULL AND s.deleted_at IS NULL`, id, runID, userID))
	if errors.Is(err, sql.ErrNoRows) {
		return Snapshot{}, ErrNotFound
	}
	if err != nil {
		return Snapshot{}, fmt.Errorf("store: snapshot: %w", err)
	}
	return sn, nil
}

// Usage is one row of the GPU-second ledger.
type Usage struct {
	RunID   int64
	Seq     int
	Seconds int64
	At      time.Time
}

// RunUsage returns the ledger rows of a run.
func (s *Store) RunUsage(ctx context.Context, runID int64) ([]Usage, error) {
	rows, err := s.r.QueryContext(ctx, "SELECT run_id, seq, seconds, ts FROM usage WHERE run_id = ? ORDER BY seq", runID)
	if err != nil {
		return nil, fmt.Errorf("store: usage: %w", err)
	}
	defer rows.Close()
	var out []Usage
	for rows.Next() {
		var u Usage
		var ts int64
		if err := rows.Scan(&u.RunID, &u.Seq, &u.Seconds, &ts); err != nil {
			return nil, fmt.Errorf("store: usage: %w", err)
		}
		u.At = fromMS(ts)
		out = append(out, u)
	}
	return out, rows.Err()
}

// SnapshotAtStep returns the run's snapshot at step (the worker API uses it to answer a
// re-sent upload).
func (s *Store) SnapshotAtStep(ctx context.Context, runID int64, step int) (Snapshot, error) {
	sn, err := scanSnapshot(s.r.QueryRowContext(ctx, "SELECT "+snapshotColumns+
		" FROM snapshots s WHERE s.run_id = ? AND s.step = ?", runID, step))
	if errors.Is(err, sql.ErrNoRows) {
		return Snapshot{}, ErrNotFound
	}
	if err != nil {
		return Snapshot{}, fmt.Errorf("store: snapshot: %w", err)
	}
	return sn, nil
}

package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// Data export (PRODUCT.md promise 3): a person asks in Settings; a background job builds a
// ZIP into the vault; a mailed single-use link downloads it within ExportLinkTTL; then the
// file is deleted. docs/export.md describes the ZIP.

// ExportLinkTTL is how long an export's link works; its file is deleted after it.
const ExportLinkTTL = 7 * 24 * time.Hour

// ExportEvery is how often a person may ask for an export.
const ExportEvery = 24 * time.Hour

// Export states.
const (
	ExportQueued   = "queued"
	ExportBuilding = "building"
	ExportReady    = "ready"
	ExportFailed   = "failed"
	ExportExpired  = "expired"
)

// ErrExportTooSoon: an export was asked for less than ExportEvery ago.
var ErrExportTooSoon = errors.New("store: one export a day")

// Export is one export request.
type Export struct {
	ID           int64
	UserID       int64
	State        string
	Progress     int
	FileID       string
	SizeBytes    int64
	Error        string
	CreatedAt    time.Time
	ExpiresAt    time.Time // zero until ready
	DownloadedAt time.Time
}

// NextExportAt is when the person may ask again after e.
func (e Export) NextExportAt() time.Time { return e.CreatedAt.Add(ExportEvery) }

const exportCols = "id, user_id, state, progress, COALESCE(file_id, ''), size_bytes, error, created_at, COALESCE(expires_at, 0), COALESCE(downloaded_at, 0)"

func scanExport(row interface{ Scan(...any) error }) (Export, error) {
	var e Export
	var created, expires, downloaded int64
	if err := row.Scan(&e.ID, &e.UserID, &e.State, &e.Progress, &e.FileID, &e.SizeBytes, &e.Error, &created, &expires, &downloaded); err != nil {
		return e, err
	}
	e.CreatedAt = fromMS(created)
	if expires != 0 {
		e.ExpiresAt = fromMS(expires)
	}
	if downloaded != 0 {
		e.DownloadedAt = fromMS(downloaded)
	}
	return e, nil
}

// RequestExport queues an export unless the person asked for one (that did not fail) less
// than ExportEvery ago; then it returns ErrExportTooSoon with that export.
func (s *Store) RequestExport(ctx context.Context, userID int64) (Export, error) {
	now := s.now()
	var out Export
	err := s.tx(ctx, func(tx *sql.Tx) error {
		last, err := scanExport(tx.QueryRowContext(ctx, "SELECT "+exportCols+` FROM exports WHERE user_id = ? AND state <> 'failed'
			ORDER BY created_at DESC LIMIT 1`, userID))
		if err == nil && now.Before(last.NextExportAt()) {
			out = last
			return ErrExportTooSoon
		}
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		res, err := tx.ExecContext(ctx, "INSERT INTO exports (user_id, state, created_at) VALUES (?, 'queued', ?)", userID, ms(now))
		if err != nil {
			return err
		}
		id, _ := res.LastInsertId()
		out = Export{ID: id, UserID: userID, State: ExportQueued, CreatedAt: fromMS(ms(now))}
		return recordAudit(ctx, tx, ms(now), AuditEntry{ActorID: userID, SubjectID: userID, Action: AuditExportRequested, Target: fmt.Sprintf("export %d", id)})
	})
	if errors.Is(err, ErrExportTooSoon) {
		return out, err
	}
	if err != nil {
		return out, fmt.Errorf("store: request export: %w", err)
	}
	return out, nil
}

// LatestExport returns the person's newest export; ok is false when there is none.
func (s *Store) LatestExport(ctx context.Context, userID int64) (Export, bool, error) {
	e, err := scanExport(s.r.QueryRowContext(ctx, "SELECT "+exportCols+" FROM exports WHERE user_id = ? ORDER BY id DESC LIMIT 1", userID))
	if errors.Is(err, sql.ErrNoRows) {
		return e, false, nil
	}
	if err != nil {
		return e, false, fmt.Errorf("store: latest export: %w", err)
	}
	return e, true, nil
}

// UnfinishedExports lists exports queued or cut short while building (a restart), to build.
func (s *Store) UnfinishedExports(ctx context.Context) ([]int64, error) {
	return s.ids(ctx, "SELECT id FROM exports WHERE state IN ('queued', 'building') ORDER BY id")
}

// ExportByID returns one export.
func (s *Store) ExportByID(ctx context.Context, id int64) (Export, error) {
	e, err := scanExport(s.r.QueryRowContext(ctx, "SELECT "+exportCols+" FROM exports WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return e, ErrNotFound
	}
	return e, err
}

// SetExportProgress records the build's progress (percent) and state building.
func (s *Store) SetExportProgress(ctx context.Context, id int64, pct int) error {
	_, err := s.w.ExecContext(ctx, "UPDATE exports SET state = 'building', progress = ? WHERE id = ? AND state IN ('queued', 'building')", min(max(pct, 0), 99), id)
	return err
}

// FinishExport marks an export ready with its vault file and returns the link's token
// (only its hash is kept).
func (s *Store) FinishExport(ctx context.Context, id int64, fileID string, size int64) (string, error) {
	b := make([]byte, 32)
	rand.Read(b)
	token := hex.EncodeToString(b)
	sum := sha256.Sum256([]byte(token))
	now := s.now()
	_, err := s.w.ExecContext(ctx, `UPDATE exports SET state = 'ready', progress = 100, file_id = ?, size_bytes = ?, token_hash = ?,
		ready_at = ?, expires_at = ? WHERE id = ?`, fileID, size, sum[:], ms(now), ms(now.Add(ExportLinkTTL)), id)
	if err != nil {
		return "", fmt.Errorf("store: finish export: %w", err)
	}
	return token, nil
}

// FailExport records why a build failed; the person may ask again at once.
func (s *Store) FailExport(ctx context.Context, id int64, reason string) error {
	_, err := s.w.ExecContext(ctx, "UPDATE exports SET state = 'failed', error = ? WHERE id = ?", clip(reason, 500), id)
	return err
}

// ExportLink is the export a mailed link still leads to (its owner's, ready, not yet
// downloaded, not expired), without spending the link; ErrNotFound otherwise.
func (s *Store) ExportLink(ctx context.Context, userID int64, token string) (Export, error) {
	sum := sha256.Sum256([]byte(token))
	e, err := scanExport(s.r.QueryRowContext(ctx, "SELECT "+exportCols+` FROM exports WHERE token_hash = ? AND user_id = ?
		AND state = 'ready' AND downloaded_at IS NULL AND expires_at > ? AND file_id IS NOT NULL`, sum[:], userID, ms(s.now())))
	if errors.Is(err, sql.ErrNoRows) {
		return Export{}, ErrNotFound
	}
	if err != nil {
		return Export{}, fmt.Errorf("store: export link: %w", err)
	}
	return e, nil
}

// UseExportLink spends userID's single-use link token: the export must be the person's,
// ready, unexpired and not downloaded before. Anything else is ErrNotFound.
func (s *Store) UseExportLink(ctx context.Context, userID int64, token string) (Export, error) {
	sum := sha256.Sum256([]byte(token))
	now := ms(s.now())
	var out Export
	err := s.tx(ctx, func(tx *sql.Tx) error {
		e, err := scanExport(tx.QueryRowContext(ctx, "SELECT "+exportCols+` FROM exports WHERE token_hash = ? AND user_id = ?
			AND state = 'ready' AND downloaded_at IS NULL AND expires_at > ? AND file_id IS NOT NULL`, sum[:], userID, now))
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "UPDATE exports SET downloaded_at = ? WHERE id = ?", now, e.ID); err != nil {
			return err
		}
		out = e
		return recordAudit(ctx, tx, now, AuditEntry{ActorID: userID, SubjectID: userID, Action: AuditExportDownloaded, Target: fmt.Sprintf("export %d", e.ID)})
	})
	if errors.Is(err, ErrNotFound) {
		return out, err
	}
	if err != nil {
		return out, fmt.Errorf("store: use export link: %w", err)
	}
	return out, nil
}

// purgeExports deletes export files whose link expired (downloaded or not).
func (s *Store) purgeExports(ctx context.Context, v *Vault) (int, error) {
	rows, err := column[string](ctx, s, "SELECT id || ' ' || file_id FROM exports WHERE file_id IS NOT NULL AND expires_at <= ?", ms(s.now()))
	if err != nil {
		return 0, err
	}
	for _, r := range rows {
		var id int64
		var file string
		fmt.Sscanf(r, "%d %s", &id, &file)
		if err := v.Remove(file); err != nil {
			return 0, err
		}
		if _, err := s.w.ExecContext(ctx, "UPDATE exports SET file_id = NULL, token_hash = NULL, state = 'expired' WHERE id = ?", id); err != nil {
			return 0, fmt.Errorf("store: purge export %d: %w", id, err)
		}
	}
	return len(rows), nil
}

// ExportSnapshot returns a snapshot an export listed by link instead of carrying: the
// export must be userID's and inside its 7 days, the snapshot userID's and not deleted.
func (s *Store) ExportSnapshot(ctx context.Context, userID, exportID, snapshotID int64) (Snapshot, error) {
	var ok int
	err := s.r.QueryRowContext(ctx, `SELECT 1 FROM exports WHERE id = ? AND user_id = ? AND state = 'ready' AND expires_at > ?`,
		exportID, userID, ms(s.now())).Scan(&ok)
	if errors.Is(err, sql.ErrNoRows) {
		return Snapshot{}, ErrNotFound
	}
	if err != nil {
		return Snapshot{}, fmt.Errorf("store: export snapshot: %w", err)
	}
	var owner int64
	err = s.r.QueryRowContext(ctx, `SELECT r.user_id FROM runs r JOIN snapshots sn ON sn.run_id = r.id
		WHERE sn.id = ? AND sn.deleted_at IS NULL AND r.deleted_at IS NULL`, snapshotID).Scan(&owner)
	if errors.Is(err, sql.ErrNoRows) || owner != userID {
		return Snapshot{}, ErrNotFound
	}
	if err != nil {
		return Snapshot{}, fmt.Errorf("store: export snapshot: %w", err)
	}
	return s.snapshotByID(ctx, snapshotID)
}

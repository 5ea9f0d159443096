package store

import (
	"context"
	"fmt"
)

// DeleteSnapshot marks one snapshot of one of the user's runs deleted: it is hidden from
// every list and download at once, and the hourly purge removes its file after PurgeDelay
// (later when a queued or running run still starts from it). The run may be running.
// Another person's snapshot, or one already deleted, is ErrNotFound.
func (s *Store) DeleteSnapshot(ctx context.Context, userID, runID, id int64) error {
	res, err := s.w.ExecContext(ctx, `UPDATE snapshots SET deleted_at = ?
		WHERE id = ? AND run_id = ? AND deleted_at IS NULL
		AND run_id IN (SELECT id FROM runs WHERE id = ? AND user_id = ? AND deleted_at IS NULL)`,
		ms(s.now()), id, runID, runID, userID)
	if err != nil {
		return fmt.Errorf("store: delete snapshot: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

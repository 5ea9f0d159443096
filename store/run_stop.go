package store

import (
	"context"
	"database/sql"
	"fmt"
)

// StopRun asks a live run's worker to stop cleanly for the server's own reason (a budget
// or monthly cap reached, a payment failed past its grace, a free plan's time used up):
// the worker hears it on its next heartbeat, uploads a final snapshot of its current
// weights and finishes the run as cancelled with reason. The reason is noted on the
// timeline. asked is true only for the call that asked: a run already asked to stop or to
// cancel, or one that ended, is left as it is.
func (s *Store) StopRun(ctx context.Context, id int64, reason string) (asked bool, err error) {
	now := ms(s.now())
	err = s.tx(ctx, func(tx *sql.Tx) error {
		var status RunStatus
		var cancel bool
		var stop string
		if err := tx.QueryRowContext(ctx, "SELECT status, cancel_requested, stop_reason FROM runs WHERE id = ?", id).
			Scan(&status, &cancel, &stop); err != nil {
			return err
		}
		if status.Final() || cancel || stop != "" {
			return nil
		}
		if _, err := tx.ExecContext(ctx, "UPDATE runs SET stop_reason = ?, stop_requested_at = ? WHERE id = ?", reason, now, id); err != nil {
			return err
		}
		asked = true
		return addRunEvent(ctx, tx, id, status, reason, now)
	})
	if err != nil {
		return false, fmt.Errorf("store: stop run: %w", err)
	}
	return asked, nil
}

// EscalateStop turns a stop the worker did not finish in time into a plain cancel (the
// worker hears "cancel", and the dispatcher ends the job if it still does not finish).
// note says so on the timeline. A run that ended or is already cancelling is left alone.
func (s *Store) EscalateStop(ctx context.Context, id int64, note string) error {
	now := ms(s.now())
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var status RunStatus
		var cancel bool
		if err := tx.QueryRowContext(ctx, "SELECT status, cancel_requested FROM runs WHERE id = ?", id).Scan(&status, &cancel); err != nil {
			return err
		}
		if status.Final() || cancel {
			return nil
		}
		if _, err := tx.ExecContext(ctx, "UPDATE runs SET cancel_requested = 1 WHERE id = ?", id); err != nil {
			return err
		}
		return addRunEvent(ctx, tx, id, status, note, now)
	})
	if err != nil {
		return fmt.Errorf("store: escalate stop: %w", err)
	}
	return nil
}

// MarkSnapshotFinal marks a stored snapshot as its run's final one: a worker stopped
// right after saving a snapshot uploads the same weights again as its final snapshot.
func (s *Store) MarkSnapshotFinal(ctx context.Context, id int64) error {
	if _, err := s.w.ExecContext(ctx, "UPDATE snapshots SET final = 1 WHERE id = ?", id); err != nil {
		return fmt.Errorf("store: mark snapshot final: %w", err)
	}
	return nil
}

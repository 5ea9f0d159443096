package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// QueuedRuns lists every queued run that is not deleted, oldest first: what the
// dispatcher's fair queue chooses from.
func (s *Store) QueuedRuns(ctx context.Context) ([]Run, error) {
	out, err := s.queryRuns(ctx, "WHERE r.status = 'queued' AND r.deleted_at IS NULL ORDER BY r.id")
	if err != nil {
		return nil, fmt.Errorf("store: queued runs: %w", err)
	}
	return out, nil
}

// QueueTurns says when each person last had a run started (people never served are
// absent).
func (s *Store) QueueTurns(ctx context.Context) (map[int64]time.Time, error) {
	rows, err := s.r.QueryContext(ctx, "SELECT user_id, last_start_at FROM queue_turns")
	if err != nil {
		return nil, fmt.Errorf("store: queue turns: %w", err)
	}
	defer rows.Close()
	out := map[int64]time.Time{}
	for rows.Next() {
		var id, at int64
		if err := rows.Scan(&id, &at); err != nil {
			return nil, fmt.Errorf("store: queue turns: %w", err)
		}
		out[id] = fromMS(at)
	}
	return out, rows.Err()
}

// ClaimRun moves one queued run to starting on the given backend, with the worker
// token's hash, and records the person's turn, in one transaction. ok is false when the
// run is no longer queued (cancelled or deleted meanwhile).
func (s *Store) ClaimRun(ctx context.Context, id int64, backend string, tokenHash []byte) (r Run, ok bool, err error) {
	now := ms(s.now())
	err = s.tx(ctx, func(tx *sql.Tx) error {
		var userID int64
		err := tx.QueryRowContext(ctx, `UPDATE runs SET status = 'starting', token_hash = ?, backend = ?
			WHERE id = ? AND status = 'queued' AND deleted_at IS NULL RETURNING user_id`, tokenHash, backend, id).Scan(&userID)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO queue_turns (user_id, last_start_at) VALUES (?, ?)
			ON CONFLICT (user_id) DO UPDATE SET last_start_at = MAX(last_start_at, excluded.last_start_at)`, userID, now); err != nil {
			return err
		}
		return addRunEvent(ctx, tx, id, RunStarting, "on the "+backend+" backend", now)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return Run{}, false, nil
	}
	if err != nil {
		return Run{}, false, fmt.Errorf("store: claim run: %w", err)
	}
	r, err = s.RunByID(ctx, id)
	return r, err == nil, err
}

// RecentRunDurations returns, per backend, how long its most recent succeeded runs
// trained (first heartbeat to end), newest first: the queue's estimates start from them.
func (s *Store) RecentRunDurations(ctx context.Context, limit int) (map[string][]time.Duration, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT backend, finished_at - first_heartbeat_at FROM runs
		WHERE status = 'succeeded' AND first_heartbeat_at IS NOT NULL AND finished_at IS NOT NULL
		ORDER BY id DESC LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("store: run durations: %w", err)
	}
	defer rows.Close()
	out := map[string][]time.Duration{}
	for rows.Next() {
		var backend string
		var d int64
		if err := rows.Scan(&backend, &d); err != nil {
			return nil, fmt.Errorf("store: run durations: %w", err)
		}
		out[backend] = append(out[backend], time.Duration(max(d, 0))*time.Millisecond)
	}
	return out, rows.Err()
}

package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// SnapshotEval is the evaluation of one snapshot (migration 0026).
type SnapshotEval struct {
	SnapshotID, UserID, RunID int64
	Status                    string // queued, running, done, failed
	Rows                      int
	EvalLoss                  sql.NullFloat64
	ExactMatch, Contains      sql.NullFloat64
	Error                     string
	UpdatedAt                 time.Time
}

// Evaluation statuses.
const (
	EvalQueued  = "queued"
	EvalRunning = "running"
	EvalDone    = "done"
	EvalFailed  = "failed"
)

// QueueSnapshotEval queues the snapshot for evaluation unless it is queued or running
// already; a finished evaluation is queued again (scores replaced when it ends).
func (s *Store) QueueSnapshotEval(ctx context.Context, userID, runID, snapshotID int64) error {
	now := ms(s.now())
	_, err := s.w.ExecContext(ctx, `INSERT INTO snapshot_evals (snapshot_id, user_id, run_id, status, created_at, updated_at)
		VALUES (?, ?, ?, 'queued', ?, ?)
		ON CONFLICT (snapshot_id) DO UPDATE SET status = 'queued', error = '', created_at = excluded.created_at, updated_at = excluded.updated_at
		WHERE status NOT IN ('queued', 'running')`, snapshotID, userID, runID, now, now)
	if err != nil {
		return fmt.Errorf("store: queue evaluation: %w", err)
	}
	return nil
}

// SnapshotEvals returns the evaluations of one of the user's runs by snapshot id.
func (s *Store) SnapshotEvals(ctx context.Context, userID, runID int64) (map[int64]SnapshotEval, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT snapshot_id, user_id, run_id, status, rows, eval_loss, exact_match, contains, error, updated_at
		FROM snapshot_evals WHERE user_id = ? AND run_id = ?`, userID, runID)
	if err != nil {
		return nil, fmt.Errorf("store: evaluations: %w", err)
	}
	defer rows.Close()
	out := map[int64]SnapshotEval{}
	for rows.Next() {
		e, err := scanEval(rows)
		if err != nil {
			return nil, fmt.Errorf("store: evaluations: %w", err)
		}
		out[e.SnapshotID] = e
	}
	return out, rows.Err()
}

func scanEval(row interface{ Scan(...any) error }) (SnapshotEval, error) {
	var e SnapshotEval
	var at int64
	err := row.Scan(&e.SnapshotID, &e.UserID, &e.RunID, &e.Status, &e.Rows, &e.EvalLoss, &e.ExactMatch, &e.Contains, &e.Error, &at)
	e.UpdatedAt = fromMS(at)
	return e, err
}

// ClaimNextEval marks the oldest queued evaluation running and returns it; ErrNotFound
// when none is queued.
func (s *Store) ClaimNextEval(ctx context.Context) (SnapshotEval, error) {
	e, err := scanEval(s.w.QueryRowContext(ctx, `UPDATE snapshot_evals SET status = 'running', updated_at = ?
		WHERE snapshot_id = (SELECT snapshot_id FROM snapshot_evals WHERE status = 'queued' ORDER BY created_at, snapshot_id LIMIT 1)
		RETURNING snapshot_id, user_id, run_id, status, rows, eval_loss, exact_match, contains, error, updated_at`, ms(s.now())))
	if errors.Is(err, sql.ErrNoRows) {
		return SnapshotEval{}, ErrNotFound
	}
	if err != nil {
		return SnapshotEval{}, fmt.Errorf("store: claim evaluation: %w", err)
	}
	return e, nil
}

// FinishEval stores an evaluation's scores; exactMatch and contains may be NaN-free nulls.
func (s *Store) FinishEval(ctx context.Context, snapshotID int64, rows int, loss float64, exactMatch, contains sql.NullFloat64) error {
	_, err := s.w.ExecContext(ctx, `UPDATE snapshot_evals SET status = 'done', rows = ?, eval_loss = ?, exact_match = ?, contains = ?, error = '', updated_at = ?
		WHERE snapshot_id = ?`, rows, loss, exactMatch, contains, ms(s.now()), snapshotID)
	if err != nil {
		return fmt.Errorf("store: finish evaluation: %w", err)
	}
	return nil
}

// SetEvalProgress records how many rows a running evaluation has scored.
func (s *Store) SetEvalProgress(ctx context.Context, snapshotID int64, rows int) error {
	_, err := s.w.ExecContext(ctx, `UPDATE snapshot_evals SET rows = ?, updated_at = ? WHERE snapshot_id = ? AND status = 'running'`,
		rows, ms(s.now()), snapshotID)
	if err != nil {
		return fmt.Errorf("store: evaluation progress: %w", err)
	}
	return nil
}

// FailEval marks an evaluation failed with a reason the person can read.
func (s *Store) FailEval(ctx context.Context, snapshotID int64, reason string) error {
	_, err := s.w.ExecContext(ctx, `UPDATE snapshot_evals SET status = 'failed', error = ?, updated_at = ? WHERE snapshot_id = ?`,
		reason, ms(s.now()), snapshotID)
	if err != nil {
		return fmt.Errorf("store: fail evaluation: %w", err)
	}
	return nil
}

// RequeueRunningEvals queues again the evaluations a restart cut short.
func (s *Store) RequeueRunningEvals(ctx context.Context) (int64, error) {
	res, err := s.w.ExecContext(ctx, `UPDATE snapshot_evals SET status = 'queued', rows = 0 WHERE status = 'running'`)
	if err != nil {
		return 0, fmt.Errorf("store: requeue evaluations: %w", err)
	}
	return res.RowsAffected()
}

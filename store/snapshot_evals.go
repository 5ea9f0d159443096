package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// SnapshotEval is the evaluation of one snapshot on one eval set (migrations 0026, 0030).
type SnapshotEval struct {
	ID, SnapshotID, UserID, RunID int64
	DatasetID                     int64  // the eval set: one of the person's datasets, 0 for the run's held-out rows
	Status                        string // queued, running, done, failed
	Rows                          int
	EvalLoss                      sql.NullFloat64
	ExactMatch, Contains          sql.NullFloat64
	Error                         string
	UpdatedAt                     time.Time
}

// Evaluation statuses.
const (
	EvalQueued  = "queued"
	EvalRunning = "running"
	EvalDone    = "done"
	EvalFailed  = "failed"
)

// QueueSnapshotEval queues the snapshot for evaluation on an eval set (datasetID, 0 for
// the run's held-out rows) unless it is queued or running there already; a finished
// evaluation is queued again (scores replaced when it ends).
func (s *Store) QueueSnapshotEval(ctx context.Context, userID, runID, snapshotID, datasetID int64) error {
	now := ms(s.now())
	_, err := s.w.ExecContext(ctx, `INSERT INTO snapshot_evals (snapshot_id, dataset_id, user_id, run_id, status, created_at, updated_at)
		VALUES (?, ?, ?, ?, 'queued', ?, ?)
		ON CONFLICT (snapshot_id, set_key) DO UPDATE SET status = 'queued', error = '', created_at = excluded.created_at, updated_at = excluded.updated_at
		WHERE status NOT IN ('queued', 'running')`, snapshotID, nullID(datasetID), userID, runID, now, now)
	if err != nil {
		return fmt.Errorf("store: queue evaluation: %w", err)
	}
	return nil
}

const evalColumns = "id, snapshot_id, coalesce(dataset_id, 0), user_id, run_id, status, rows, eval_loss, exact_match, contains, error, updated_at"

// SnapshotEvals returns the evaluations of one of the user's runs on one eval set
// (datasetID, 0 for the run's held-out rows) by snapshot id.
func (s *Store) SnapshotEvals(ctx context.Context, userID, runID, datasetID int64) (map[int64]SnapshotEval, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+evalColumns+`
		FROM snapshot_evals WHERE user_id = ? AND run_id = ? AND set_key = ?`, userID, runID, datasetID)
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
	err := row.Scan(&e.ID, &e.SnapshotID, &e.DatasetID, &e.UserID, &e.RunID, &e.Status, &e.Rows, &e.EvalLoss, &e.ExactMatch, &e.Contains, &e.Error, &at)
	e.UpdatedAt = fromMS(at)
	return e, err
}

// ClaimNextEval marks the next queued evaluation running and returns it; ErrNotFound
// when none is queued. People take turns: the next job is the oldest queued one of the
// person whose last job started longest ago (or never), so one person's long queue
// does not hold up anyone else's job.
func (s *Store) ClaimNextEval(ctx context.Context) (SnapshotEval, error) {
	// The person first (by their last turn, then their oldest queued job), then their job:
	// each subquery reads an index, so a long queue costs a scan of its distinct people.
	e, err := scanEval(s.w.QueryRowContext(ctx, `UPDATE snapshot_evals SET status = 'running', updated_at = ?,
			turn = (SELECT coalesce(max(turn), 0) + 1 FROM snapshot_evals)
		WHERE id = (SELECT j.id FROM snapshot_evals j
			WHERE j.status = 'queued' AND j.user_id = (
				SELECT p.user_id FROM (SELECT DISTINCT user_id FROM snapshot_evals WHERE status = 'queued') p
				ORDER BY (SELECT coalesce(max(t.turn), 0) FROM snapshot_evals t WHERE t.user_id = p.user_id),
					(SELECT min(o.created_at) FROM snapshot_evals o WHERE o.status = 'queued' AND o.user_id = p.user_id),
					p.user_id
				LIMIT 1)
			ORDER BY j.created_at, j.id LIMIT 1)
		RETURNING `+evalColumns, ms(s.now())))
	if errors.Is(err, sql.ErrNoRows) {
		return SnapshotEval{}, ErrNotFound
	}
	if err != nil {
		return SnapshotEval{}, fmt.Errorf("store: claim evaluation: %w", err)
	}
	return e, nil
}

// FinishEval stores an evaluation's scores; exactMatch and contains may be null.
func (s *Store) FinishEval(ctx context.Context, id int64, rows int, loss float64, exactMatch, contains sql.NullFloat64) error {
	_, err := s.w.ExecContext(ctx, `UPDATE snapshot_evals SET status = 'done', rows = ?, eval_loss = ?, exact_match = ?, contains = ?, error = '', updated_at = ?
		WHERE id = ?`, rows, loss, exactMatch, contains, ms(s.now()), id)
	if err != nil {
		return fmt.Errorf("store: finish evaluation: %w", err)
	}
	return nil
}

// SetEvalProgress records how many rows a running evaluation has scored.
func (s *Store) SetEvalProgress(ctx context.Context, id int64, rows int) error {
	_, err := s.w.ExecContext(ctx, `UPDATE snapshot_evals SET rows = ?, updated_at = ? WHERE id = ? AND status = 'running'`,
		rows, ms(s.now()), id)
	if err != nil {
		return fmt.Errorf("store: evaluation progress: %w", err)
	}
	return nil
}

// FailEval marks an evaluation failed with a reason the person can read.
func (s *Store) FailEval(ctx context.Context, id int64, reason string) error {
	_, err := s.w.ExecContext(ctx, `UPDATE snapshot_evals SET status = 'failed', error = ?, updated_at = ? WHERE id = ?`,
		reason, ms(s.now()), id)
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

package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// What the OpenAI-compatible files and fine-tuning API (handlers/openai_files.go,
// openai_jobs.go) reads beyond datasets and runs: pages in OpenAI's cursor order, the
// extras a job made through the API carries (fine_tuning_jobs), its events (the run's
// timeline and log lines, merged) and the metrics a checkpoint reports.

// DatasetsAfter is a page of the person's datasets in id order (newest first unless asc),
// after the dataset afterID (0: from the start); more says whether another page follows.
func (s *Store) DatasetsAfter(ctx context.Context, userID, afterID int64, asc bool, limit int) ([]Dataset, bool, error) {
	q := "SELECT " + datasetColumns + " FROM datasets WHERE user_id = ? AND deleted_at IS NULL"
	args := []any{userID}
	order := " ORDER BY id DESC"
	switch {
	case asc:
		q += " AND id > ?"
		args = append(args, afterID)
		order = " ORDER BY id"
	case afterID > 0:
		q += " AND id < ?"
		args = append(args, afterID)
	}
	rows, err := s.r.QueryContext(ctx, q+order+" LIMIT ?", append(args, limit+1)...)
	if err != nil {
		return nil, false, fmt.Errorf("store: datasets page: %w", err)
	}
	defer rows.Close()
	var out []Dataset
	for rows.Next() {
		d, err := scanDataset(rows)
		if err != nil {
			return nil, false, fmt.Errorf("store: datasets page: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("store: datasets page: %w", err)
	}
	if len(out) > limit {
		return out[:limit], true, nil
	}
	return out, false, nil
}

// RunsAfter is a page of the person's runs, newest first, older than the run afterID (0:
// from the newest); more says whether another page follows.
func (s *Store) RunsAfter(ctx context.Context, userID, afterID int64, limit int) ([]Run, bool, error) {
	where := "WHERE r.user_id = ? AND r.deleted_at IS NULL"
	args := []any{userID}
	if afterID > 0 {
		where += " AND r.id < ?"
		args = append(args, afterID)
	}
	out, err := s.queryRuns(ctx, where+" ORDER BY r.id DESC LIMIT ?", append(args, limit+1)...)
	if err != nil {
		return nil, false, fmt.Errorf("store: runs page: %w", err)
	}
	if len(out) > limit {
		return out[:limit], true, nil
	}
	return out, false, nil
}

// FineTuneJob is what a run made through /v1/fine_tuning/jobs carries besides the run.
type FineTuneJob struct {
	RunID    int64
	UserID   int64
	Model    string // as the request named it ("" for runs made before it was kept)
	Suffix   string
	Metadata map[string]string // nil when the request sent none
	// FineTunedModel is the model id of the deployment made when the job succeeded; ""
	// before that, or when nothing could be deployed (Checked then says the server looked).
	FineTunedModel string
	Checked        bool
	DeployedAt     time.Time
}

// CreateFineTuneJob records the API extras of a run just created.
func (s *Store) CreateFineTuneJob(ctx context.Context, j FineTuneJob) error {
	var meta sql.NullString
	if j.Metadata != nil {
		b, err := json.Marshal(j.Metadata)
		if err != nil {
			return fmt.Errorf("store: create fine-tune job: %w", err)
		}
		meta = sql.NullString{String: string(b), Valid: true}
	}
	_, err := s.w.ExecContext(ctx, "INSERT INTO fine_tuning_jobs (run_id, user_id, model, suffix, metadata) VALUES (?, ?, ?, ?, ?)",
		j.RunID, j.UserID, j.Model, j.Suffix, meta)
	if err != nil {
		return fmt.Errorf("store: create fine-tune job: %w", err)
	}
	return nil
}

// FineTuneJobs returns the API extras of those of the person's runs that have them.
func (s *Store) FineTuneJobs(ctx context.Context, userID int64, runIDs []int64) (map[int64]FineTuneJob, error) {
	out := map[int64]FineTuneJob{}
	if len(runIDs) == 0 {
		return out, nil
	}
	ids, _ := json.Marshal(runIDs)
	rows, err := s.r.QueryContext(ctx, `SELECT run_id, user_id, model, suffix, metadata, COALESCE(fine_tuned_model, ''), deployed_at
		FROM fine_tuning_jobs WHERE user_id = ? AND run_id IN (SELECT value FROM json_each(?))`, userID, string(ids))
	if err != nil {
		return nil, fmt.Errorf("store: fine-tune jobs: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var j FineTuneJob
		var meta sql.NullString
		var deployed sql.NullInt64
		if err := rows.Scan(&j.RunID, &j.UserID, &j.Model, &j.Suffix, &meta, &j.FineTunedModel, &deployed); err != nil {
			return nil, fmt.Errorf("store: fine-tune jobs: %w", err)
		}
		if meta.Valid {
			if err := json.Unmarshal([]byte(meta.String), &j.Metadata); err != nil {
				return nil, fmt.Errorf("store: metadata of job %d: %w", j.RunID, err)
			}
		}
		if deployed.Valid {
			j.Checked, j.DeployedAt = true, fromMS(deployed.Int64)
		}
		out[j.RunID] = j
	}
	return out, rows.Err()
}

// PendingDeploy is a succeeded API job not yet looked at for deploy on success.
type PendingDeploy struct {
	RunID     int64
	UserID    int64
	Suffix    string
	BaseModel string
}

// SucceededUndeployedJobs lists the succeeded API jobs whose deploy on success is pending.
func (s *Store) SucceededUndeployedJobs(ctx context.Context) ([]PendingDeploy, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT j.run_id, j.user_id, j.suffix, COALESCE(json_extract(r.config, '$.base_model'), '')
		FROM fine_tuning_jobs j JOIN runs r ON r.id = j.run_id
		WHERE j.deployed_at IS NULL AND r.status = 'succeeded' AND r.deleted_at IS NULL ORDER BY j.run_id`)
	if err != nil {
		return nil, fmt.Errorf("store: pending deploys: %w", err)
	}
	defer rows.Close()
	var out []PendingDeploy
	for rows.Next() {
		var p PendingDeploy
		if err := rows.Scan(&p.RunID, &p.UserID, &p.Suffix, &p.BaseModel); err != nil {
			return nil, fmt.Errorf("store: pending deploys: %w", err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// DeployFineTuneJob records the deploy on success of a job, once: with a snapshot (not 0)
// it also makes the live deployment named model, in the same transaction; with none it
// only notes that there was nothing to deploy. A job already recorded is left as it is.
func (s *Store) DeployFineTuneJob(ctx context.Context, runID, snapshotID int64, model string, now time.Time) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var name sql.NullString
		if snapshotID != 0 {
			name = sql.NullString{String: model, Valid: true}
		}
		res, err := tx.ExecContext(ctx, "UPDATE fine_tuning_jobs SET fine_tuned_model = ?, deployed_at = ? WHERE run_id = ? AND deployed_at IS NULL",
			name, ms(now), runID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 || snapshotID == 0 {
			return nil
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO deployments (user_id, snapshot_id, name, created_at)
			SELECT j.user_id, ?, ?, ? FROM fine_tuning_jobs j WHERE j.run_id = ?`, snapshotID, model, ms(now), runID)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: deploy fine-tune job %d: %w", runID, err)
	}
	return nil
}

// JobEvent is one entry of a job's events: a status change of the run's timeline
// (FromLog false) or one of its log lines.
type JobEvent struct {
	ID      int64
	FromLog bool
	Status  RunStatus // timeline entries only
	Text    string    // the timeline note, or the log line
	At      time.Time
}

// JobEventCursor is the place of an event in the newest-first order of JobEvents.
type JobEventCursor struct {
	At      time.Time
	FromLog bool
	ID      int64
}

// JobEventAt finds the place of one of the run's events; ErrNotFound when the run has none
// with that id.
func (s *Store) JobEventAt(ctx context.Context, runID int64, fromLog bool, id int64) (JobEventCursor, error) {
	q := "SELECT at FROM run_events WHERE id = ? AND run_id = ?"
	if fromLog {
		q = "SELECT at FROM run_logs WHERE id = ? AND run_id = ?"
	}
	var at int64
	err := s.r.QueryRowContext(ctx, q, id, runID).Scan(&at)
	if errors.Is(err, sql.ErrNoRows) {
		return JobEventCursor{}, ErrNotFound
	}
	if err != nil {
		return JobEventCursor{}, fmt.Errorf("store: job event: %w", err)
	}
	return JobEventCursor{At: fromMS(at), FromLog: fromLog, ID: id}, nil
}

// JobEvents returns a page of the run's timeline and log lines merged, newest first,
// after the cursor (nil: from the newest); more says whether another page follows.
func (s *Store) JobEvents(ctx context.Context, runID int64, after *JobEventCursor, limit int) ([]JobEvent, bool, error) {
	q := `SELECT kind, id, status, text, at FROM (
		SELECT 0 AS kind, id, status, note AS text, at FROM run_events WHERE run_id = ?1
		UNION ALL
		SELECT 1, id, '', line, at FROM run_logs WHERE run_id = ?1)`
	args := []any{runID}
	if after != nil {
		kind := 0
		if after.FromLog {
			kind = 1
		}
		q += " WHERE (at, kind, id) < (?2, ?3, ?4)"
		args = append(args, ms(after.At), kind, after.ID)
	}
	q += fmt.Sprintf(" ORDER BY at DESC, kind DESC, id DESC LIMIT %d", limit+1)
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, false, fmt.Errorf("store: job events: %w", err)
	}
	defer rows.Close()
	var out []JobEvent
	for rows.Next() {
		var e JobEvent
		var kind int
		var at int64
		if err := rows.Scan(&kind, &e.ID, &e.Status, &e.Text, &at); err != nil {
			return nil, false, fmt.Errorf("store: job events: %w", err)
		}
		e.FromLog, e.At = kind == 1, fromMS(at)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("store: job events: %w", err)
	}
	if len(out) > limit {
		return out[:limit], true, nil
	}
	return out, false, nil
}

// MetricAtStep is the run's last finite value of a metric at or before step; ok is false
// when there is none.
func (s *Store) MetricAtStep(ctx context.Context, runID int64, name string, step int) (v float64, ok bool, err error) {
	// Points live in blocks and in point rows; lastFinite reads both.
	pts, err := s.lastFinite(ctx, runID, name, step, 1)
	if err != nil {
		return 0, false, fmt.Errorf("store: metric at step: %w", err)
	}
	if len(pts) == 0 {
		return 0, false, nil
	}
	return pts[0].Value, true, nil
}

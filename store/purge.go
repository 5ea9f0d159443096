package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Retention (PRODUCT.md promise 4): a deleted run or snapshot is gone from storage within
// 30 days, and a dataset is deleted once the training that used it finished longer ago
// than the retention window. The purge runs hourly and is safe to run again at any point.

// PurgeDelay is how long a deleted run, snapshot or dataset waits before its content is
// removed: long enough for a running job to be stopped, well inside the 30-day promise.
const PurgeDelay = 24 * time.Hour

// DefaultDatasetRetention is how long a dataset is kept after the last run that used it
// ended (TUNELAB_DATASET_RETENTION).
const DefaultDatasetRetention = 30 * 24 * time.Hour

// StaleUploadAge is how long a half-written upload (a vault temporary file no write has
// touched since) is kept: one whose request died with the server is removed after it.
const StaleUploadAge = 24 * time.Hour

// PurgeOptions says what Purge may remove besides the database rows and vault files.
type PurgeOptions struct {
	// DatasetRetention: a dataset is deleted this long after the last run that used it
	// ended (TUNELAB_DATASET_RETENTION); 0: never.
	DatasetRetention time.Duration
	// WorkerLogDir holds the local backend's worker logs, run-ID.log (DATA_DIR/workers);
	// a purged run's log goes with it. "": there are none.
	WorkerLogDir string
}

// PurgeReport counts what one purge removed.
type PurgeReport struct {
	Runs, Snapshots, Datasets, ExpiredDatasets int
	WorkerLogs                                 int // logs of purged runs
	Accounts                                   int // closed accounts past ReopenWindow, scrubbed
	Exports                                    int // export files past ExportLinkTTL
	Uploads                                    int // half-written uploads older than StaleUploadAge
}

// Purge removes what is due: deleted runs (metrics, logs, worker log file, timeline,
// snapshots and their files; a tombstone stays for the usage ledger), deleted snapshots,
// datasets past the retention window after their last run, deleted datasets (file, name),
// and half-written uploads older than StaleUploadAge. It runs at start-up and hourly.
func (s *Store) Purge(ctx context.Context, v *Vault, o PurgeOptions) (PurgeReport, error) {
	var rep PurgeReport
	now := s.now()
	cutoff := ms(now.Add(-PurgeDelay))
	var err error
	if rep.Uploads, err = v.RemoveStaleUploads(now.Add(-StaleUploadAge)); err != nil {
		return rep, err
	}
	if rep.ExpiredDatasets, err = s.expireDatasets(ctx, now, o.DatasetRetention); err != nil {
		return rep, err
	}
	// A run waits while a queued or running run still starts from one of its snapshots.
	runs, err := s.ids(ctx, `SELECT id FROM runs WHERE deleted_at IS NOT NULL AND deleted_at <= ? AND purged_at IS NULL
		AND status IN ('succeeded', 'failed', 'cancelled')
		AND NOT EXISTS (SELECT 1 FROM snapshots s WHERE s.run_id = runs.id AND `+liveRunNeeds("s.id")+`)`, cutoff)
	if err != nil {
		return rep, err
	}
	for _, id := range runs {
		if err := s.purgeRun(ctx, v, id); err != nil {
			return rep, err
		}
		rep.Runs++
	}
	// Worker logs of purged runs, this purge's and any an earlier one left behind.
	if rep.WorkerLogs, err = s.purgeWorkerLogs(ctx, o.WorkerLogDir); err != nil {
		return rep, err
	}
	if err := s.purgeDeploymentLogs(ctx, o.WorkerLogDir); err != nil {
		return rep, err
	}
	// A deleted snapshot waits while a queued or running run still starts from it.
	snaps, err := s.ids(ctx, `SELECT id FROM snapshots WHERE deleted_at IS NOT NULL AND deleted_at <= ?
		AND NOT `+liveRunNeeds("snapshots.id"), cutoff)
	if err != nil {
		return rep, err
	}
	for _, id := range snaps {
		if err := s.purgeSnapshot(ctx, v, id); err != nil {
			return rep, err
		}
		rep.Snapshots++
	}
	// A deleted dataset goes once no unfinished run still needs its file.
	datasets, err := s.ids(ctx, `SELECT id FROM datasets d WHERE deleted_at IS NOT NULL AND deleted_at <= ? AND purged_at IS NULL
		AND NOT EXISTS (SELECT 1 FROM runs r WHERE (r.dataset_id = d.id OR r.eval_dataset_id = d.id)
			AND r.status IN ('queued', 'starting', 'running'))`, cutoff)
	if err != nil {
		return rep, err
	}
	for _, id := range datasets {
		if err := s.purgeDataset(ctx, v, id); err != nil {
			return rep, err
		}
		rep.Datasets++
	}
	if rep.Accounts, err = s.purgeClosedAccounts(ctx, v, o); err != nil {
		return rep, err
	}
	if rep.Exports, err = s.purgeExports(ctx, v); err != nil {
		return rep, err
	}
	// Purged rows' old page images can sit in the WAL until a checkpoint: push them into
	// the database file (where secure_delete has zeroed them) and empty the WAL.
	if rep.Runs+rep.Snapshots+rep.Datasets+rep.Accounts > 0 {
		if err := s.Checkpoint(ctx); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

func (s *Store) ids(ctx context.Context, q string, args ...any) ([]int64, error) {
	return column[int64](ctx, s, q, args...)
}

// column reads the single column of a query's rows.
func column[T any](ctx context.Context, s *Store, q string, args ...any) ([]T, error) {
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: purge: %w", err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		var v T
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("store: purge: %w", err)
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// purgeRun deletes a run's content. Files go first: a crash between the two leaves rows
// whose files are gone, and the next purge finishes the job.
func (s *Store) purgeRun(ctx context.Context, v *Vault, id int64) error {
	files, err := column[string](ctx, s, "SELECT file_id FROM snapshots WHERE run_id = ?", id)
	if err != nil {
		return err
	}
	for _, f := range files { // a file already gone (a purge cut short) is fine
		if err := v.Remove(f); err != nil {
			return err
		}
	}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		for _, q := range []string{
			"DELETE FROM snapshots WHERE run_id = ?",
			"DELETE FROM metric_series WHERE run_id = ?", // points and rollups cascade
			"DELETE FROM run_logs WHERE run_id = ?",
			"DELETE FROM run_events WHERE run_id = ?",
			"DELETE FROM metric_rule_firings WHERE run_id = ?",
			"DELETE FROM metric_rules WHERE run_id = ?",
			"DELETE FROM fine_tuning_jobs WHERE run_id = ?", // suffix and metadata the API sent
		} {
			if _, err := tx.ExecContext(ctx, q, id); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, `UPDATE runs SET config = '{}', reason = '', job_id = '', token_hash = NULL,
			ingest_token_hash = NULL, purged_at = ? WHERE id = ?`, ms(s.now()), id)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: purge run %d: %w", id, err)
	}
	return nil
}

// workerLogName is the file the local backend appends a run's worker output to, in its
// log directory (gpu.LocalConfig.LogDir).
func workerLogName(runID int64) string { return fmt.Sprintf("run-%d.log", runID) }

// purgeWorkerLogs removes the worker logs of purged runs from dir.
func (s *Store) purgeWorkerLogs(ctx context.Context, dir string) (int, error) {
	if dir == "" {
		return 0, nil
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("store: purge worker logs: %w", err)
	}
	var ids []int64
	for _, e := range entries {
		var id int64
		if _, err := fmt.Sscanf(e.Name(), "run-%d.log", &id); err == nil && e.Name() == workerLogName(id) {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return 0, nil
	}
	list, _ := json.Marshal(ids)
	purged, err := s.ids(ctx, "SELECT id FROM runs WHERE purged_at IS NOT NULL AND id IN (SELECT value FROM json_each(?))", string(list))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, id := range purged {
		err := os.Remove(filepath.Join(dir, workerLogName(id)))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return n, fmt.Errorf("store: purge worker log of run %d: %w", id, err)
		}
		n++
	}
	return n, nil
}

func (s *Store) purgeSnapshot(ctx context.Context, v *Vault, id int64) error {
	var fileID string
	if err := s.r.QueryRowContext(ctx, "SELECT file_id FROM snapshots WHERE id = ?", id).Scan(&fileID); err != nil {
		return fmt.Errorf("store: purge snapshot %d: %w", id, err)
	}
	if err := v.Remove(fileID); err != nil {
		return err
	}
	if _, err := s.w.ExecContext(ctx, "DELETE FROM snapshots WHERE id = ?", id); err != nil {
		return fmt.Errorf("store: purge snapshot %d: %w", id, err)
	}
	return nil
}

func (s *Store) purgeDataset(ctx context.Context, v *Vault, id int64) error {
	var fileID string
	if err := s.r.QueryRowContext(ctx, "SELECT file_id FROM datasets WHERE id = ?", id).Scan(&fileID); err != nil {
		return fmt.Errorf("store: purge dataset %d: %w", id, err)
	}
	if err := v.Remove(fileID); err != nil {
		return err
	}
	_, err := s.w.ExecContext(ctx, `UPDATE datasets SET name = 'deleted dataset', histogram = '[]',
		file_id = 'purged-' || id, purged_at = ? WHERE id = ?`, ms(s.now()), id)
	if err != nil {
		return fmt.Errorf("store: purge dataset %d: %w", id, err)
	}
	return nil
}

// expireDatasets deletes datasets whose last run ended more than retention ago and that
// no unfinished run uses; datasets never trained on stay until their owner deletes them.
func (s *Store) expireDatasets(ctx context.Context, now time.Time, retention time.Duration) (int, error) {
	if retention <= 0 {
		return 0, nil
	}
	res, err := s.w.ExecContext(ctx, `UPDATE datasets SET deleted_at = ? WHERE deleted_at IS NULL AND id IN (
		SELECT d.id FROM datasets d JOIN runs r ON r.dataset_id = d.id OR r.eval_dataset_id = d.id
		GROUP BY d.id
		HAVING SUM(r.status IN ('queued', 'starting', 'running')) = 0 AND MAX(r.finished_at) <= ?)`,
		ms(now), ms(now.Add(-retention)))
	if err != nil {
		return 0, fmt.Errorf("store: expire datasets: %w", err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

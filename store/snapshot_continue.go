package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
)

// A continued run starts from the weights of an earlier run's snapshot: its config names
// the snapshot (RunConfig.InitSnapshotID), and the run remembers which run and step that
// was (runs.continued_from_run, continued_from_step) for the timelines. The snapshot's file
// is kept while a queued or running run still needs it, even when the snapshot or its run
// was deleted meanwhile (see Purge).

// InitSnapshotError says why a run cannot start from the snapshot it names. Field is the
// run form's field at fault: "init_snapshot_id" (not the person's, deleted, or gone),
// "base_model", "method" or "lora_rank" (the snapshot needs Want there).
type InitSnapshotError struct {
	Field string
	Want  string
}

func (e *InitSnapshotError) Error() string {
	if e.Field == "init_snapshot_id" {
		return "store: the snapshot to continue from is not available"
	}
	return fmt.Sprintf("store: continuing from the snapshot needs %s %q", e.Field, e.Want)
}

// InitSource is the snapshot a run continues from, as the person may see it.
type InitSource struct {
	SnapshotID int64
	RunID      int64
	Step       int
	Config     RunConfig // the source run's settings, to prefill the new run's form
}

// InitSnapshotSource returns one of the user's snapshots (not deleted, on a run not
// deleted) with its run's config; anything else is ErrNotFound.
func (s *Store) InitSnapshotSource(ctx context.Context, userID, snapshotID int64) (InitSource, error) {
	src, err := initSource(ctx, s.r.QueryRowContext, userID, snapshotID)
	if errors.Is(err, sql.ErrNoRows) {
		return InitSource{}, ErrNotFound
	}
	if err != nil {
		return InitSource{}, fmt.Errorf("store: init snapshot: %w", err)
	}
	return src, nil
}

type queryRowFunc func(ctx context.Context, q string, args ...any) *sql.Row

func initSource(ctx context.Context, query queryRowFunc, userID, snapshotID int64) (InitSource, error) {
	src := InitSource{SnapshotID: snapshotID}
	var cfg string
	err := query(ctx, `SELECT s.run_id, s.step, r.config FROM snapshots s JOIN runs r ON r.id = s.run_id
		WHERE s.id = ? AND r.user_id = ? AND s.deleted_at IS NULL AND r.deleted_at IS NULL AND r.purged_at IS NULL`,
		snapshotID, userID).Scan(&src.RunID, &src.Step, &cfg)
	if err != nil {
		return InitSource{}, err
	}
	if err := json.Unmarshal([]byte(cfg), &src.Config); err != nil {
		return InitSource{}, fmt.Errorf("config of run %d: %w", src.RunID, err)
	}
	return src, nil
}

// checkInitSnapshot is CreateRun's check, inside its transaction, that the run may start
// from the snapshot its config names: the person's, not deleted, the same base model and
// method (and for LoRA the same rank: the adapters' shapes). It returns the source.
func checkInitSnapshot(ctx context.Context, tx *sql.Tx, nr NewRun) (InitSource, error) {
	src, err := initSource(ctx, tx.QueryRowContext, nr.UserID, nr.Config.InitSnapshotID)
	if errors.Is(err, sql.ErrNoRows) {
		return InitSource{}, &InitSnapshotError{Field: "init_snapshot_id"}
	}
	if err != nil {
		return InitSource{}, err
	}
	want, got := src.Config, nr.Config
	switch {
	case got.BaseModel != want.BaseModel:
		return InitSource{}, &InitSnapshotError{Field: "base_model", Want: want.BaseModel}
	case got.Method != want.Method:
		return InitSource{}, &InitSnapshotError{Field: "method", Want: string(want.Method)}
	case got.UsesLoRA() && got.LoRARank != want.LoRARank:
		return InitSource{}, &InitSnapshotError{Field: "lora_rank", Want: fmt.Sprint(want.LoRARank)}
	}
	return src, nil
}

// recordContinuedFrom notes on a new run which run and step it continues.
func recordContinuedFrom(ctx context.Context, tx *sql.Tx, runID int64, src InitSource) error {
	_, err := tx.ExecContext(ctx, "UPDATE runs SET continued_from_run = ?, continued_from_step = ? WHERE id = ?",
		src.RunID, src.Step, runID)
	return err
}

// continuedNote is the queued event's note of a continued run.
func continuedNote(src InitSource) string {
	return fmt.Sprintf("continued from run %d, snapshot at step %d", src.RunID, src.Step)
}

// RunLineage links a run with the runs it continues and that continue it.
type RunLineage struct {
	FromRun     int64 // the run this one continues; 0 when it started from the base model
	FromStep    int   // the step of the snapshot it started from
	FromVisible bool  // FromRun is still the person's to open (not deleted)
	Continued   []ContinuedRun
}

// ContinuedRun is a run started from one of this run's snapshots.
type ContinuedRun struct {
	ID     int64
	Step   int // the snapshot's step
	Status RunStatus
}

// RunLineage returns the lineage of one of the user's runs (deleted continuations are
// left out).
func (s *Store) RunLineage(ctx context.Context, userID, runID int64) (RunLineage, error) {
	var l RunLineage
	var from, step sql.NullInt64
	err := s.r.QueryRowContext(ctx, `SELECT r.continued_from_run, r.continued_from_step,
		COALESCE((SELECT src.deleted_at IS NULL FROM runs src WHERE src.id = r.continued_from_run AND src.user_id = r.user_id), 0)
		FROM runs r WHERE r.id = ? AND r.user_id = ?`, runID, userID).Scan(&from, &step, &l.FromVisible)
	if errors.Is(err, sql.ErrNoRows) {
		return RunLineage{}, ErrNotFound
	}
	if err != nil {
		return RunLineage{}, fmt.Errorf("store: run lineage: %w", err)
	}
	l.FromRun, l.FromStep = from.Int64, int(step.Int64)
	rows, err := s.r.QueryContext(ctx, `SELECT id, COALESCE(continued_from_step, 0), status FROM runs
		WHERE continued_from_run = ? AND user_id = ? AND deleted_at IS NULL ORDER BY id`, runID, userID)
	if err != nil {
		return RunLineage{}, fmt.Errorf("store: run lineage: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var c ContinuedRun
		if err := rows.Scan(&c.ID, &c.Step, &c.Status); err != nil {
			return RunLineage{}, fmt.Errorf("store: run lineage: %w", err)
		}
		l.Continued = append(l.Continued, c)
	}
	return l, rows.Err()
}

// RunInitSnapshot returns the snapshot a run starts from, for its worker: deleted or not
// (the person may delete it after queueing the run; its file stays until the run ends),
// ErrNotFound when the run starts fresh or the file was purged.
func (s *Store) RunInitSnapshot(ctx context.Context, runID int64) (Snapshot, error) {
	sn, err := scanSnapshot(s.r.QueryRowContext(ctx, "SELECT "+snapshotColumns+` FROM runs r
		JOIN snapshots s ON s.id = json_extract(r.config, '$.init_snapshot_id') WHERE r.id = ?`, runID))
	if errors.Is(err, sql.ErrNoRows) {
		return Snapshot{}, ErrNotFound
	}
	if err != nil {
		return Snapshot{}, fmt.Errorf("store: run init snapshot: %w", err)
	}
	return sn, nil
}

// liveRunNeeds is SQL true when a queued or running run starts from the snapshot whose id
// is the expression id: its file must stay.
func liveRunNeeds(id string) string {
	return `EXISTS (SELECT 1 FROM runs nr WHERE nr.status IN ('queued', 'starting', 'running')
		AND json_extract(nr.config, '$.init_snapshot_id') = ` + id + `)`
}

package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// RunStatus is where a run is in its life, as stored in runs.status and run_events.status.
// A run moves queued -> starting -> running -> one of the final three.
type RunStatus string

// Run statuses.
const (
	RunQueued    RunStatus = "queued"
	RunStarting  RunStatus = "starting"
	RunRunning   RunStatus = "running"
	RunSucceeded RunStatus = "succeeded"
	RunFailed    RunStatus = "failed"
	RunCancelled RunStatus = "cancelled"
)

// RunStatuses lists every status in the order a run meets them.
var RunStatuses = []RunStatus{RunQueued, RunStarting, RunRunning, RunSucceeded, RunFailed, RunCancelled}

// runStatusLabels are the statuses in words.
var runStatusLabels = map[RunStatus]string{
	RunQueued: "Queued", RunStarting: "Starting", RunRunning: "Running",
	RunSucceeded: "Succeeded", RunFailed: "Failed", RunCancelled: "Cancelled",
}

// Final says whether the status is an end state.
func (s RunStatus) Final() bool {
	return s == RunSucceeded || s == RunFailed || s == RunCancelled
}

// Valid says whether the status is one of RunStatuses.
func (s RunStatus) Valid() bool {
	_, ok := runStatusLabels[s]
	return ok
}

// Label is the status in words: "Running". An unknown status is shown capitalised.
func (s RunStatus) Label() string {
	if l, ok := runStatusLabels[s]; ok {
		return l
	}
	if s == "" {
		return ""
	}
	return strings.ToUpper(string(s[:1])) + string(s[1:])
}

var (
	// ErrRunFinished is returned when a change needs a run that has not ended.
	ErrRunFinished = errors.New("store: the run has already ended")
	// ErrDatasetFormat is returned when the datasets do not suit the method.
	ErrDatasetFormat = errors.New("store: dataset format does not suit the method")
)

// Run is one fine-tuning job.
type Run struct {
	ID              int64
	UserID          int64
	Name            string   // "byte-mlp-small · lora · 7f3a" unless the person renamed it
	Tags            []string // each [a-z0-9-_.]{1,32}, at most MaxRunTags
	Notes           string
	DatasetID       int64
	DatasetName     string
	EvalDatasetID   int64 // 0 when the validation split comes from DatasetID
	EvalDatasetName string
	Config          RunConfig
	Backend         string
	JobID           string
	Status          RunStatus
	Reason          string
	CancelRequested bool
	Step            int
	TotalSteps      int
	RetryOf         int64
	CreatedAt       time.Time
	FirstHeartbeat  time.Time // zero until the worker's first heartbeat
	LastHeartbeat   time.Time
	FinishedAt      time.Time
	Deleted         bool
	GPUSeconds      int64 // from the usage ledger once finished; see GPUTime for live runs
	HasIngestToken  bool  // a metrics token for the person's own scripts exists
	// StopReason is set when the server asked the worker to stop cleanly (a final snapshot,
	// then finish as cancelled with this reason); see run_stop.go.
	StopReason      string
	StopRequestedAt time.Time
}

// Final says whether the run has ended.
func (r Run) Final() bool { return r.Status.Final() }

// GPUTime is the billed time of a finished run, or the time so far of a running one.
func (r Run) GPUTime(now time.Time) time.Duration {
	if r.Final() || r.FirstHeartbeat.IsZero() {
		return time.Duration(r.GPUSeconds) * time.Second
	}
	return now.Sub(r.FirstHeartbeat).Truncate(time.Second)
}

// RunEvent is one entry of a run's timeline.
type RunEvent struct {
	Status RunStatus
	Note   string
	At     time.Time
}

// NewRun is what CreateRun needs; Config must already be validated.
type NewRun struct {
	UserID        int64
	DatasetID     int64
	EvalDatasetID int64
	Config        RunConfig
	Backend       string
	RetryOf       int64
	// MaxQueued is how many queued runs the person may have; past it CreateRun answers a
	// *QuotaError (TUNELAB_QUOTA_QUEUED_RUNS). 0: no limit.
	MaxQueued int
	Name      string   // "" gives the default name (model · method · short id)
	Tags      []string // already validated (RunLabels.Validate)
	// ClaimedBy, when set, is the token hash of a worker started outside the dispatcher:
	// the run is created already claimed (starting), so no backend can take it first.
	ClaimedBy []byte
}

// CreateRun queues a run after checking, in the same transaction, that the datasets are
// the user's, not deleted, and suit the method (ErrNotFound, ErrDatasetFormat), and that a
// snapshot it continues from fits it (*InitSnapshotError).
func (s *Store) CreateRun(ctx context.Context, nr NewRun) (Run, error) {
	cfg, err := json.Marshal(nr.Config)
	if err != nil {
		return Run{}, fmt.Errorf("store: create run: %w", err)
	}
	now := ms(s.now())
	var id int64
	err = s.tx(ctx, func(tx *sql.Tx) error {
		if nr.MaxQueued > 0 {
			var queued int64
			if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM runs WHERE user_id = ? AND status = 'queued'",
				nr.UserID).Scan(&queued); err != nil {
				return err
			}
			if queued >= int64(nr.MaxQueued) {
				return &QuotaError{Quota: QuotaQueuedRuns, Used: queued, Limit: int64(nr.MaxQueued)}
			}
		}
		ids := []int64{nr.DatasetID}
		if nr.EvalDatasetID != 0 {
			ids = append(ids, nr.EvalDatasetID)
		}
		for _, did := range ids {
			var format DatasetFormat
			err := tx.QueryRowContext(ctx, "SELECT format FROM datasets WHERE id = ? AND user_id = ? AND deleted_at IS NULL",
				did, nr.UserID).Scan(&format)
			if errors.Is(err, sql.ErrNoRows) {
				return ErrNotFound
			}
			if err != nil {
				return err
			}
			if !nr.Config.Method.Accepts(format) {
				return ErrDatasetFormat
			}
		}
		var from InitSource
		if nr.Config.InitSnapshotID != 0 {
			var err error
			if from, err = checkInitSnapshot(ctx, tx, nr); err != nil {
				return err
			}
		}
		var evalID, retryOf sql.NullInt64
		if nr.EvalDatasetID != 0 {
			evalID = sql.NullInt64{Int64: nr.EvalDatasetID, Valid: true}
		}
		if nr.RetryOf != 0 {
			retryOf = sql.NullInt64{Int64: nr.RetryOf, Valid: true}
		}
		name := nr.Name
		if name == "" {
			name = DefaultRunName(nr.Config)
		}
		err := tx.QueryRowContext(ctx, `INSERT INTO runs (user_id, dataset_id, eval_dataset_id, config, backend, status, retry_of, created_at, name, tags)
			VALUES (?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?) RETURNING id`,
			nr.UserID, nr.DatasetID, evalID, string(cfg), nr.Backend, retryOf, now, name, strings.Join(nr.Tags, " ")).Scan(&id)
		if err != nil {
			return err
		}
		note := ""
		if nr.RetryOf != 0 {
			note = fmt.Sprintf("retry of run %d", nr.RetryOf)
		}
		if from.RunID != 0 {
			if err := recordContinuedFrom(ctx, tx, id, from); err != nil {
				return err
			}
			if note == "" {
				note = continuedNote(from)
			}
		}
		if err := addRunEvent(ctx, tx, id, RunQueued, note, now); err != nil || nr.ClaimedBy == nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "UPDATE runs SET status = 'starting', token_hash = ? WHERE id = ?", nr.ClaimedBy, id); err != nil {
			return err
		}
		return addRunEvent(ctx, tx, id, RunStarting, "", now)
	})
	var quota *QuotaError
	var initErr *InitSnapshotError
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrDatasetFormat) || errors.As(err, &quota) || errors.As(err, &initErr) {
		return Run{}, err
	}
	if err != nil {
		return Run{}, fmt.Errorf("store: create run: %w", err)
	}
	return s.RunByID(ctx, id)
}

func addRunEvent(ctx context.Context, tx *sql.Tx, runID int64, status RunStatus, note string, at int64) error {
	_, err := tx.ExecContext(ctx, "INSERT INTO run_events (run_id, status, note, at) VALUES (?, ?, ?, ?)", runID, status, note, at)
	return err
}

const runColumns = `r.id, r.user_id, r.name, r.tags, r.notes, r.dataset_id, d.name, COALESCE(r.eval_dataset_id, 0), COALESCE(e.name, ''), r.config,
	r.backend, r.job_id, r.status, r.reason, r.cancel_requested, r.step, r.total_steps, COALESCE(r.retry_of, 0),
	r.created_at, r.first_heartbeat_at, r.last_heartbeat_at, r.finished_at, r.deleted_at IS NOT NULL,
	COALESCE((SELECT SUM(seconds) FROM usage u WHERE u.run_id = r.id AND u.deployment_id IS NULL), 0), r.ingest_token_hash IS NOT NULL,
	r.stop_reason, r.stop_requested_at`

const runFrom = ` FROM runs r JOIN datasets d ON d.id = r.dataset_id LEFT JOIN datasets e ON e.id = r.eval_dataset_id `

func scanRun(row interface{ Scan(...any) error }) (Run, error) {
	var r Run
	var cfg, tags string
	var created int64
	var first, last, finished, stopAt sql.NullInt64
	if err := row.Scan(&r.ID, &r.UserID, &r.Name, &tags, &r.Notes, &r.DatasetID, &r.DatasetName, &r.EvalDatasetID, &r.EvalDatasetName, &cfg,
		&r.Backend, &r.JobID, &r.Status, &r.Reason, &r.CancelRequested, &r.Step, &r.TotalSteps, &r.RetryOf,
		&created, &first, &last, &finished, &r.Deleted, &r.GPUSeconds, &r.HasIngestToken,
		&r.StopReason, &stopAt); err != nil {
		return Run{}, err
	}
	if err := json.Unmarshal([]byte(cfg), &r.Config); err != nil {
		return Run{}, fmt.Errorf("config of run %d: %w", r.ID, err)
	}
	r.Tags = strings.Fields(tags)
	r.CreatedAt = fromMS(created)
	for _, t := range []struct {
		v   sql.NullInt64
		dst *time.Time
	}{{first, &r.FirstHeartbeat}, {last, &r.LastHeartbeat}, {finished, &r.FinishedAt}, {stopAt, &r.StopRequestedAt}} {
		if t.v.Valid {
			*t.dst = fromMS(t.v.Int64)
		}
	}
	return r, nil
}

func (s *Store) queryRuns(ctx context.Context, where string, args ...any) ([]Run, error) {
	rows, err := s.r.QueryContext(ctx, "SELECT "+runColumns+runFrom+where, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Run
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Run returns one of the user's runs; another person's or a deleted one is ErrNotFound.
func (s *Store) Run(ctx context.Context, userID, id int64) (Run, error) {
	r, err := scanRun(s.r.QueryRowContext(ctx, "SELECT "+runColumns+runFrom+
		"WHERE r.id = ? AND r.user_id = ? AND r.deleted_at IS NULL", id, userID))
	if errors.Is(err, sql.ErrNoRows) {
		return Run{}, ErrNotFound
	}
	if err != nil {
		return Run{}, fmt.Errorf("store: run: %w", err)
	}
	return r, nil
}

// RunByID returns any run, deleted or not, for the dispatcher and the worker API.
func (s *Store) RunByID(ctx context.Context, id int64) (Run, error) {
	r, err := scanRun(s.r.QueryRowContext(ctx, "SELECT "+runColumns+runFrom+"WHERE r.id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return Run{}, ErrNotFound
	}
	if err != nil {
		return Run{}, fmt.Errorf("store: run: %w", err)
	}
	return r, nil
}

// Runs lists the user's runs, newest first.
func (s *Store) Runs(ctx context.Context, userID int64) ([]Run, error) {
	out, err := s.queryRuns(ctx, "WHERE r.user_id = ? AND r.deleted_at IS NULL ORDER BY r.id DESC", userID)
	if err != nil {
		return nil, fmt.Errorf("store: runs: %w", err)
	}
	return out, nil
}

// UnfinishedRuns lists every run of a backend that is starting or running, deleted ones
// included (their jobs still have to be stopped), oldest first.
func (s *Store) UnfinishedRuns(ctx context.Context, backend string) ([]Run, error) {
	out, err := s.queryRuns(ctx, "WHERE r.backend = ? AND r.status IN ('starting', 'running') ORDER BY r.id", backend)
	if err != nil {
		return nil, fmt.Errorf("store: unfinished runs: %w", err)
	}
	return out, nil
}

// RunEvents returns a run's timeline, oldest first.
func (s *Store) RunEvents(ctx context.Context, runID int64) ([]RunEvent, error) {
	rows, err := s.r.QueryContext(ctx, "SELECT status, note, at FROM run_events WHERE run_id = ? ORDER BY id", runID)
	if err != nil {
		return nil, fmt.Errorf("store: run events: %w", err)
	}
	defer rows.Close()
	var out []RunEvent
	for rows.Next() {
		var e RunEvent
		var at int64
		if err := rows.Scan(&e.Status, &e.Note, &at); err != nil {
			return nil, fmt.Errorf("store: run events: %w", err)
		}
		e.At = fromMS(at)
		out = append(out, e)
	}
	return out, rows.Err()
}

// CancelRun cancels a queued run at once; for a starting or running one it records the
// request, which the worker learns from its next heartbeat (and the dispatcher enforces).
func (s *Store) CancelRun(ctx context.Context, userID, id int64) (Run, error) {
	now := ms(s.now())
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var status RunStatus
		var requested bool
		err := tx.QueryRowContext(ctx, "SELECT status, cancel_requested FROM runs WHERE id = ? AND user_id = ? AND deleted_at IS NULL",
			id, userID).Scan(&status, &requested)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		switch {
		case status.Final():
			return ErrRunFinished
		case status == RunQueued:
			return finishRunTx(ctx, tx, id, RunCancelled, "cancelled before it started", now)
		case requested:
			return nil
		}
		if _, err := tx.ExecContext(ctx, "UPDATE runs SET cancel_requested = 1 WHERE id = ?", id); err != nil {
			return err
		}
		return addRunEvent(ctx, tx, id, status, "cancel requested", now)
	})
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrRunFinished) {
		return Run{}, err
	}
	if err != nil {
		return Run{}, fmt.Errorf("store: cancel run: %w", err)
	}
	return s.RunByID(ctx, id)
}

// DeleteRun hides a run at once and revokes its worker token; a run that has not ended is
// cancelled (queued) or left for the dispatcher to stop (starting, running).
func (s *Store) DeleteRun(ctx context.Context, userID, id int64) error {
	now := ms(s.now())
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var status RunStatus
		err := tx.QueryRowContext(ctx, "SELECT status FROM runs WHERE id = ? AND user_id = ? AND deleted_at IS NULL",
			id, userID).Scan(&status)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if status == RunQueued {
			if err := finishRunTx(ctx, tx, id, RunCancelled, "deleted before it started", now); err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, `UPDATE runs SET deleted_at = ?, token_hash = NULL,
			cancel_requested = CASE WHEN status IN ('starting', 'running') THEN 1 ELSE cancel_requested END WHERE id = ?`, now, id)
		return err
	})
	if errors.Is(err, ErrNotFound) {
		return err
	}
	if err != nil {
		return fmt.Errorf("store: delete run: %w", err)
	}
	return nil
}

// ClaimQueuedRun moves the oldest queued run of a backend to starting and gives it the
// worker token's hash, in one transaction, so two dispatchers never take the same run.
// ok is false when nothing is queued.
func (s *Store) ClaimQueuedRun(ctx context.Context, backend string, tokenHash []byte) (r Run, ok bool, err error) {
	now := ms(s.now())
	var id int64
	err = s.tx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `UPDATE runs SET status = 'starting', token_hash = ?
			WHERE id = (SELECT id FROM runs WHERE backend = ? AND status = 'queued' AND deleted_at IS NULL ORDER BY id LIMIT 1)
			RETURNING id`, tokenHash, backend).Scan(&id)
		if err != nil {
			return err
		}
		return addRunEvent(ctx, tx, id, RunStarting, "", now)
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

// SetRunJob records the backend's job id once Submit succeeded.
func (s *Store) SetRunJob(ctx context.Context, id int64, jobID string) error {
	if _, err := s.w.ExecContext(ctx, "UPDATE runs SET job_id = ? WHERE id = ?", jobID, id); err != nil {
		return fmt.Errorf("store: set run job: %w", err)
	}
	return nil
}

// RequeueRun puts a starting run that was never submitted back in the queue (the server
// stopped between claiming and submitting it).
func (s *Store) RequeueRun(ctx context.Context, id int64, note string) error {
	now := ms(s.now())
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE runs SET status = 'queued', token_hash = NULL, job_id = ''
			WHERE id = ? AND status = 'starting' AND first_heartbeat_at IS NULL`, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		return addRunEvent(ctx, tx, id, RunQueued, note, now)
	})
	if err != nil {
		return fmt.Errorf("store: requeue run: %w", err)
	}
	return nil
}

// FinishRun ends a run: final status and reason, token revoked, and the GPU seconds from
// the first heartbeat to end written to the usage ledger. end is normally now; for a
// worker that went silent it is the last heartbeat, so dead time is never billed.
// A run that already ended is left as it is (ErrRunFinished).
func (s *Store) FinishRun(ctx context.Context, id int64, status RunStatus, reason string, end time.Time) (Run, error) {
	if !status.Final() {
		return Run{}, fmt.Errorf("store: finish run: %q is not a final status", status)
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var cur RunStatus
		if err := tx.QueryRowContext(ctx, "SELECT status FROM runs WHERE id = ?", id).Scan(&cur); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return ErrNotFound
			}
			return err
		}
		if cur.Final() {
			return ErrRunFinished
		}
		return finishRunTx(ctx, tx, id, status, reason, ms(end))
	})
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrRunFinished) {
		return Run{}, err
	}
	if err != nil {
		return Run{}, fmt.Errorf("store: finish run: %w", err)
	}
	return s.RunByID(ctx, id)
}

// finishRunTx writes the end state and the usage row; the caller checked the run is live.
func finishRunTx(ctx context.Context, tx *sql.Tx, id int64, status RunStatus, reason string, end int64) error {
	var first sql.NullInt64
	if err := tx.QueryRowContext(ctx, "SELECT first_heartbeat_at FROM runs WHERE id = ?", id).Scan(&first); err != nil {
		return err
	}
	// A run that succeeded trained every step, whatever its last heartbeat said.
	if _, err := tx.ExecContext(ctx, `UPDATE runs SET status = ?, reason = ?, finished_at = ?, token_hash = NULL,
		step = CASE WHEN ? = 'succeeded' THEN MAX(step, total_steps) ELSE step END
		WHERE id = ?`, status, reason, end, status, id); err != nil {
		return err
	}
	if first.Valid {
		// Whole seconds actually used, rounded down, less what partial rows already
		// recorded: never bill time not used, never a second twice.
		var recorded int64
		if err := tx.QueryRowContext(ctx, "SELECT COALESCE(SUM(seconds), 0) FROM usage WHERE run_id = ? AND deployment_id IS NULL", id).Scan(&recorded); err != nil {
			return err
		}
		seconds := max(max(end-first.Int64, 0)/1000-recorded, 0)
		if _, err := tx.ExecContext(ctx, `INSERT INTO usage (run_id, seq, seconds, ts)
			VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM usage WHERE run_id = ?), ?, ?)`, id, id, seconds, end); err != nil {
			return err
		}
	}
	return addRunEvent(ctx, tx, id, status, reason, end)
}

// RunIDForToken finds the live run a worker token hash belongs to (ErrNotFound when none).
func (s *Store) RunIDForToken(ctx context.Context, tokenHash []byte) (int64, error) {
	var id int64
	err := s.r.QueryRowContext(ctx, "SELECT id FROM runs WHERE token_hash = ?", tokenHash).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, ErrNotFound
	}
	if err != nil {
		return 0, fmt.Errorf("store: run for token: %w", err)
	}
	return id, nil
}

// RunTokenHash returns the stored worker token hash of a live run (nil once it ended).
func (s *Store) RunTokenHash(ctx context.Context, id int64) ([]byte, error) {
	var h []byte
	err := s.r.QueryRowContext(ctx, "SELECT token_hash FROM runs WHERE id = ?", id).Scan(&h)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: run token: %w", err)
	}
	return h, nil
}

// Heartbeat records that the worker is alive and how far it got. The first one moves the
// run to running and starts the GPU-second meter. cancel tells the worker to stop.
func (s *Store) Heartbeat(ctx context.Context, id int64, step, totalSteps int) (cancel bool, err error) {
	now := ms(s.now())
	err = s.tx(ctx, func(tx *sql.Tx) error {
		var status RunStatus
		var deleted bool
		err := tx.QueryRowContext(ctx, "SELECT status, cancel_requested, deleted_at IS NOT NULL FROM runs WHERE id = ?", id).
			Scan(&status, &cancel, &deleted)
		if err != nil {
			return err
		}
		if status.Final() {
			return ErrRunFinished
		}
		cancel = cancel || deleted
		if _, err := tx.ExecContext(ctx, `UPDATE runs SET step = MAX(step, ?), total_steps = ?, last_heartbeat_at = ?,
			first_heartbeat_at = COALESCE(first_heartbeat_at, ?), status = 'running' WHERE id = ?`,
			step, totalSteps, now, now, id); err != nil {
			return err
		}
		if status == RunStarting {
			return addRunEvent(ctx, tx, id, RunRunning, "", now)
		}
		return meterPartialTx(ctx, tx, id, now, s.meter)
	})
	if errors.Is(err, ErrRunFinished) {
		return true, err
	}
	if err != nil {
		return false, fmt.Errorf("store: heartbeat: %w", err)
	}
	return cancel, nil
}

// SetRunIngestToken gives one of the user's runs a new metrics token (hash), replacing any
// earlier one.
func (s *Store) SetRunIngestToken(ctx context.Context, userID, runID int64, hash []byte) error {
	res, err := s.w.ExecContext(ctx, "UPDATE runs SET ingest_token_hash = ? WHERE id = ? AND user_id = ? AND deleted_at IS NULL",
		hash, runID, userID)
	if err != nil {
		return fmt.Errorf("store: set ingest token: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// RunForIngestToken returns the id of the (not deleted) run a metrics token belongs to.
func (s *Store) RunForIngestToken(ctx context.Context, hash []byte) (int64, error) {
	var id int64
	err := s.r.QueryRowContext(ctx, "SELECT id FROM runs WHERE ingest_token_hash = ? AND deleted_at IS NULL", hash).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, ErrNotFound
	}
	if err != nil {
		return 0, fmt.Errorf("store: run for ingest token: %w", err)
	}
	return id, nil
}

// meterPartialTx writes a running run's GPU seconds since its last usage row once they
// reach interval seconds, so a long run is billed as it goes and a lost server or worker
// never loses more than one interval. Time is counted from the first heartbeat to this
// one, in whole seconds; FinishRun writes the rest.
func meterPartialTx(ctx context.Context, tx *sql.Tx, id, now, interval int64) error {
	var first sql.NullInt64
	var recorded int64
	if err := tx.QueryRowContext(ctx, `SELECT first_heartbeat_at, COALESCE((SELECT SUM(seconds) FROM usage WHERE run_id = ? AND deployment_id IS NULL), 0)
		FROM runs WHERE id = ?`, id, id).Scan(&first, &recorded); err != nil {
		return err
	}
	if !first.Valid {
		return nil
	}
	due := max(now-first.Int64, 0)/1000 - recorded
	if due < interval {
		return nil
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO usage (run_id, seq, seconds, ts)
		VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM usage WHERE run_id = ?), ?, ?)`, id, id, due, now)
	return err
}

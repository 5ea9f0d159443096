package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Worker deployments: a snapshot of a Python-worker run served by an inference server that
// a job on a backend starts (docs/worker-api.md, "Deployments"). The job authenticates to
// the worker API with its own token; /v1 requests for its model id are proxied to the URL
// its heartbeats report, with the sealed serve key as the bearer.

// DeploymentJob is what the server knows of a worker deployment's job.
type DeploymentJob struct {
	Backend        string
	GPUType        string
	JobID          string
	ServeKeySealed []byte // nil once the job ended
	URL            string
	Healthy        bool
	Health         string
	FirstHeartbeat time.Time // zero until the first heartbeat
	LastHeartbeat  time.Time
	EndedAt        time.Time // zero while the job runs
	Failed         bool
	Reason         string
	Log            string
}

// Deployment states as the deployments page shows them.
const (
	DeployStarting  = "starting"
	DeployLive      = "live"
	DeployUnhealthy = "unhealthy"
	DeployStopping  = "stopping"
	DeployStopped   = "stopped"
	DeployFailed    = "failed"
	DeployGone      = "gone" // its snapshot or run was deleted
)

// State is the deployment's state at now; a worker deployment whose heartbeat is older
// than stale is unhealthy.
func (d Deployment) State(now time.Time, stale time.Duration) string {
	switch {
	case d.Worker && !d.Job.EndedAt.IsZero() && d.Job.Failed:
		return DeployFailed
	case d.Worker && !d.Job.EndedAt.IsZero():
		return DeployStopped
	case d.Gone && !d.Worker:
		return DeployGone
	case !d.StoppedAt.IsZero() && d.Worker:
		return DeployStopping
	case !d.StoppedAt.IsZero():
		return DeployStopped
	case !d.Worker:
		return DeployLive
	case d.Job.FirstHeartbeat.IsZero() || (d.Job.URL == "" && now.Sub(d.Job.LastHeartbeat) <= stale):
		return DeployStarting // no server yet: the job is loading the model
	case !d.Job.Healthy || now.Sub(d.Job.LastHeartbeat) > stale:
		return DeployUnhealthy
	}
	return DeployLive
}

// GPUTime is the time the deployment's job has held its GPU so far (from its first
// heartbeat to its end, or to now).
func (d Deployment) GPUTime(now time.Time) time.Duration {
	if d.Job.FirstHeartbeat.IsZero() {
		return 0
	}
	end := now
	if !d.Job.EndedAt.IsZero() {
		end = d.Job.EndedAt
	}
	return max(end.Sub(d.Job.FirstHeartbeat), 0)
}

const deploymentJobColumns = `d.kind = 'worker', d.backend, d.gpu_type, d.job_id, d.serve_key, d.url, d.healthy, d.health,
	d.first_heartbeat_at, d.last_heartbeat_at, d.ended_at, d.failed, d.reason, d.log`

type jobScan struct {
	worker, healthy, failed bool
	j                       DeploymentJob
	first, last, ended      sql.NullInt64
}

func (s *jobScan) dest() []any {
	return []any{&s.worker, &s.j.Backend, &s.j.GPUType, &s.j.JobID, &s.j.ServeKeySealed, &s.j.URL, &s.healthy, &s.j.Health,
		&s.first, &s.last, &s.ended, &s.failed, &s.j.Reason, &s.j.Log}
}

func (s *jobScan) fill() (bool, DeploymentJob) {
	j := s.j
	j.Healthy, j.Failed = s.healthy, s.failed
	if s.first.Valid {
		j.FirstHeartbeat = fromMS(s.first.Int64)
	}
	if s.last.Valid {
		j.LastHeartbeat = fromMS(s.last.Int64)
	}
	if s.ended.Valid {
		j.EndedAt = fromMS(s.ended.Int64)
	}
	return s.worker, j
}

// NewWorkerDeployment is what starting a worker deployment records.
type NewWorkerDeployment struct {
	UserID, SnapshotID int64
	Name               string
	Backend, GPUType   string
	ServeKeySealed     []byte
}

// CreateWorkerDeployment records a worker deployment waiting for its job to be submitted.
func (s *Store) CreateWorkerDeployment(ctx context.Context, n NewWorkerDeployment, now time.Time) (Deployment, error) {
	res, err := s.w.ExecContext(ctx, `INSERT INTO deployments (user_id, snapshot_id, name, created_at, kind, backend, gpu_type, serve_key)
		SELECT ?, ?, ?, ?, 'worker', ?, ?, ?
		WHERE NOT EXISTS (SELECT 1 FROM deployments WHERE user_id = ? AND name = ? AND stopped_at IS NULL)`,
		n.UserID, n.SnapshotID, n.Name, ms(now), n.Backend, n.GPUType, n.ServeKeySealed, n.UserID, n.Name)
	if err != nil {
		return Deployment{}, fmt.Errorf("store: create worker deployment: %w", err)
	}
	if k, _ := res.RowsAffected(); k == 0 {
		return Deployment{}, ErrDeploymentExists
	}
	id, _ := res.LastInsertId()
	return s.DeploymentByID(ctx, n.UserID, id)
}

// UnendedWorkerDeployments lists every worker deployment whose job has not ended, for the
// dispatcher to start and follow.
func (s *Store) UnendedWorkerDeployments(ctx context.Context) ([]Deployment, error) {
	rows, err := s.r.QueryContext(ctx, "SELECT "+deploymentColumns+deploymentFrom+
		" WHERE d.kind = 'worker' AND d.ended_at IS NULL ORDER BY d.id")
	if err != nil {
		return nil, fmt.Errorf("store: unended deployments: %w", err)
	}
	defer rows.Close()
	var out []Deployment
	for rows.Next() {
		d, err := scanDeployment(rows)
		if err != nil {
			return nil, fmt.Errorf("store: unended deployments: %w", err)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// WorkerDeployment returns a deployment by id alone, for the worker API and the dispatcher.
func (s *Store) WorkerDeployment(ctx context.Context, id int64) (Deployment, error) {
	return s.oneDeployment(ctx, " WHERE d.id = ? AND d.kind = 'worker'", id)
}

// SetDeploymentToken gives a deployment waiting for its job the job's token hash; false
// when it no longer waits (stopped or ended meanwhile).
func (s *Store) SetDeploymentToken(ctx context.Context, id int64, hash []byte) (bool, error) {
	res, err := s.w.ExecContext(ctx, `UPDATE deployments SET token_hash = ? WHERE id = ? AND kind = 'worker'
		AND ended_at IS NULL AND stopped_at IS NULL AND job_id = ''`, hash, id)
	if err != nil {
		return false, fmt.Errorf("store: deployment token: %w", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// SetDeploymentJob records the backend's id for a deployment's job.
func (s *Store) SetDeploymentJob(ctx context.Context, id int64, jobID string) error {
	if _, err := s.w.ExecContext(ctx, "UPDATE deployments SET job_id = ? WHERE id = ?", jobID, id); err != nil {
		return fmt.Errorf("store: deployment job: %w", err)
	}
	return nil
}

// DeploymentTokenHash is the live token hash of a worker deployment (ErrNotFound when none).
func (s *Store) DeploymentTokenHash(ctx context.Context, id int64) ([]byte, error) {
	var h []byte
	err := s.r.QueryRowContext(ctx, "SELECT token_hash FROM deployments WHERE id = ? AND token_hash IS NOT NULL", id).Scan(&h)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: deployment token: %w", err)
	}
	return h, nil
}

// DeploymentHeartbeat records what a deployment's job reported and meters its GPU time
// once a partial row of the store's meter interval is due; it says whether the job should stop
// (a stop was asked, the snapshot or its run was deleted). A job that already ended is
// ErrRunFinished.
func (s *Store) DeploymentHeartbeat(ctx context.Context, id int64, url string, healthy bool, health string, now time.Time) (stop bool, err error) {
	err = s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE deployments SET url = ?, healthy = ?, health = ?, last_heartbeat_at = ?,
			first_heartbeat_at = COALESCE(first_heartbeat_at, ?) WHERE id = ? AND ended_at IS NULL`,
			url, healthy, clip(health, 500), ms(now), ms(now), id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrRunFinished
		}
		if err := tx.QueryRowContext(ctx, `SELECT d.stopped_at IS NOT NULL OR s.deleted_at IS NOT NULL OR r.deleted_at IS NOT NULL`+
			deploymentFrom+" WHERE d.id = ?", id).Scan(&stop); err != nil {
			return err
		}
		return meterDeploymentTx(ctx, tx, id, ms(now), s.meter)
	})
	return stop, err
}

// meterDeploymentTx writes the deployment's GPU seconds since its last usage row once they
// reach interval seconds (1 at the end): whole seconds, never a second twice.
func meterDeploymentTx(ctx context.Context, tx *sql.Tx, id, now, interval int64) error {
	var first sql.NullInt64
	var runID, recorded int64
	if err := tx.QueryRowContext(ctx, `SELECT d.first_heartbeat_at, s.run_id,
		COALESCE((SELECT SUM(seconds) FROM usage WHERE deployment_id = d.id), 0)
		FROM deployments d JOIN snapshots s ON s.id = d.snapshot_id WHERE d.id = ?`, id).Scan(&first, &runID, &recorded); err != nil {
		return err
	}
	if !first.Valid {
		return nil
	}
	due := max(now-first.Int64, 0)/1000 - recorded
	if due < interval {
		return nil
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO usage (run_id, seq, seconds, ts, deployment_id)
		VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM usage WHERE run_id = ?), ?, ?, ?)`, runID, runID, due, now, id)
	return err
}

// EndDeployment ends a worker deployment's job: the rest of its GPU time goes to the
// usage ledger, its token and serve key are dropped, and its name is free again. Ending
// one that already ended is ErrRunFinished.
func (s *Store) EndDeployment(ctx context.Context, id int64, failed bool, reason string, now time.Time) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		var last sql.NullInt64
		if err := tx.QueryRowContext(ctx, "SELECT last_heartbeat_at FROM deployments WHERE id = ? AND ended_at IS NULL", id).Scan(&last); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return ErrRunFinished
			}
			return err
		}
		// A job that went silent is metered to its last heartbeat, not to now.
		end := ms(now)
		if failed && last.Valid && last.Int64 < end {
			end = last.Int64
		}
		if _, err := tx.ExecContext(ctx, `UPDATE deployments SET ended_at = ?, failed = ?, reason = CASE WHEN reason = '' THEN ? ELSE reason END, token_hash = NULL,
			serve_key = NULL, healthy = 0, stopped_at = COALESCE(stopped_at, ?) WHERE id = ?`,
			ms(now), failed, clip(reason, 500), ms(now), id); err != nil {
			return err
		}
		return meterDeploymentTx(ctx, tx, id, end, 1)
	})
}

// AppendDeploymentLog adds lines to a deployment's log, keeping its last 64 KiB.
func (s *Store) AppendDeploymentLog(ctx context.Context, id int64, lines []string) error {
	var b []byte
	for _, l := range lines {
		b = append(append(b, l...), '\n')
	}
	if _, err := s.w.ExecContext(ctx, "UPDATE deployments SET log = substr(log || ?, -65536) WHERE id = ?", string(b), id); err != nil {
		return fmt.Errorf("store: deployment log: %w", err)
	}
	return nil
}

// DeploymentSeconds is the GPU seconds the usage ledger holds for a deployment.
func (s *Store) DeploymentSeconds(ctx context.Context, id int64) (int64, error) {
	var n int64
	if err := s.r.QueryRowContext(ctx, "SELECT COALESCE(SUM(seconds), 0) FROM usage WHERE deployment_id = ?", id).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: deployment seconds: %w", err)
	}
	return n, nil
}

// DeploymentSnapshot is the snapshot a worker deployment serves with its run's base model
// and method; ErrNotFound once the snapshot or its run was deleted.
func (s *Store) DeploymentSnapshot(ctx context.Context, id int64) (PlaygroundSnapshot, string, error) {
	var method string
	var p PlaygroundSnapshot
	var created int64
	err := s.r.QueryRowContext(ctx, "SELECT "+playgroundSnapshotColumns+`, COALESCE(json_extract(r.config, '$.method'), '')
		FROM deployments d JOIN snapshots s ON s.id = d.snapshot_id JOIN runs r ON r.id = s.run_id
		WHERE d.id = ? AND s.deleted_at IS NULL AND r.deleted_at IS NULL`, id).
		Scan(&p.ID, &p.RunID, &p.Step, &p.Final, &p.FileID, &p.SizeBytes, &p.SHA256, &created, &p.RunName, &p.BaseModel, &method)
	if errors.Is(err, sql.ErrNoRows) {
		return p, "", ErrNotFound
	}
	if err != nil {
		return p, "", fmt.Errorf("store: deployment snapshot: %w", err)
	}
	p.CreatedAt = fromMS(created)
	return p, method, nil
}

// AskDeploymentStop asks a worker deployment's job to stop, for a reason its owner reads
// (a billing stop); false when a stop was already asked or the job ended.
func (s *Store) AskDeploymentStop(ctx context.Context, id int64, reason string, now time.Time) (bool, error) {
	res, err := s.w.ExecContext(ctx, `UPDATE deployments SET stopped_at = ?, reason = ? WHERE id = ? AND stopped_at IS NULL AND ended_at IS NULL`,
		ms(now), clip(reason, 500), id)
	if err != nil {
		return false, fmt.Errorf("store: ask deployment stop: %w", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// SetDeploymentServeKey stores the sealed serve key of a new worker deployment.
func (s *Store) SetDeploymentServeKey(ctx context.Context, id int64, sealed []byte) error {
	if _, err := s.w.ExecContext(ctx, "UPDATE deployments SET serve_key = ? WHERE id = ? AND ended_at IS NULL", sealed, id); err != nil {
		return fmt.Errorf("store: deployment serve key: %w", err)
	}
	return nil
}

// purgeDeploymentLogs removes the serve jobs' log files (deployment-<id>.log in the local
// backend's log directory) of deployments that no longer exist: purged with their
// snapshot or account.
func (s *Store) purgeDeploymentLogs(ctx context.Context, dir string) error {
	if dir == "" {
		return nil
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("store: purge deployment logs: %w", err)
	}
	for _, e := range entries {
		var id int64
		if _, err := fmt.Sscanf(e.Name(), "deployment-%d.log", &id); err != nil || e.Name() != fmt.Sprintf("deployment-%d.log", id) {
			continue
		}
		var exists bool
		if err := s.r.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM deployments WHERE id = ?)", id).Scan(&exists); err != nil {
			return fmt.Errorf("store: purge deployment logs: %w", err)
		}
		if !exists {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("store: purge deployment log %d: %w", id, err)
			}
		}
	}
	return nil
}

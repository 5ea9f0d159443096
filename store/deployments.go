package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Deployments: a person's snapshots of the built-in model served through the
// OpenAI-compatible API. A deployment is live until stopped, and only while its snapshot
// and run are not deleted.

// Deployment is one deployment with what the deployments page shows of its snapshot.
type Deployment struct {
	ID         int64
	UserID     int64
	SnapshotID int64
	Name       string // the model id clients send
	CreatedAt  time.Time
	StoppedAt  time.Time // zero while live
	RunID      int64
	RunName    string
	Step       int
	Gone       bool // the snapshot or its run was deleted
	// Worker deployments (deployments_worker.go): a job on a backend serves the snapshot.
	Worker bool
	Job    DeploymentJob
}

// Live says whether the deployment answers requests (a worker deployment: while its job
// has not ended and no stop was asked; see State for whether it is ready).
func (d Deployment) Live() bool { return d.StoppedAt.IsZero() && !d.Gone && d.Job.EndedAt.IsZero() }

const deploymentColumns = `d.id, d.user_id, d.snapshot_id, d.name, d.created_at, d.stopped_at, r.id, r.name, s.step,
	(s.deleted_at IS NOT NULL OR r.deleted_at IS NOT NULL), ` + deploymentJobColumns

const deploymentFrom = ` FROM deployments d JOIN snapshots s ON s.id = d.snapshot_id JOIN runs r ON r.id = s.run_id`

func scanDeployment(row interface{ Scan(...any) error }) (Deployment, error) {
	var d Deployment
	var created int64
	var stopped sql.NullInt64
	var j jobScan
	err := row.Scan(append([]any{&d.ID, &d.UserID, &d.SnapshotID, &d.Name, &created, &stopped, &d.RunID, &d.RunName, &d.Step, &d.Gone},
		j.dest()...)...)
	d.Worker, d.Job = j.fill()
	d.CreatedAt = fromMS(created)
	if stopped.Valid {
		d.StoppedAt = fromMS(stopped.Int64)
	}
	return d, err
}

// ErrDeploymentExists is returned when the person already has a live deployment by that name.
var ErrDeploymentExists = errors.New("store: a live deployment has that name")

// CreateDeployment records a live deployment of the person's snapshot.
func (s *Store) CreateDeployment(ctx context.Context, userID, snapshotID int64, name string, now time.Time) (Deployment, error) {
	var exists bool
	if err := s.w.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM deployments WHERE user_id = ? AND name = ? AND stopped_at IS NULL)",
		userID, name).Scan(&exists); err != nil {
		return Deployment{}, fmt.Errorf("store: create deployment: %w", err)
	}
	if exists {
		return Deployment{}, ErrDeploymentExists
	}
	res, err := s.w.ExecContext(ctx, "INSERT INTO deployments (user_id, snapshot_id, name, created_at) VALUES (?, ?, ?, ?)",
		userID, snapshotID, name, ms(now))
	if err != nil {
		return Deployment{}, fmt.Errorf("store: create deployment: %w", err)
	}
	id, _ := res.LastInsertId()
	return s.DeploymentByID(ctx, userID, id)
}

// Deployments lists the person's deployments, newest first.
func (s *Store) Deployments(ctx context.Context, userID int64) ([]Deployment, error) {
	rows, err := s.r.QueryContext(ctx, "SELECT "+deploymentColumns+deploymentFrom+" WHERE d.user_id = ? ORDER BY d.id DESC", userID)
	if err != nil {
		return nil, fmt.Errorf("store: deployments: %w", err)
	}
	defer rows.Close()
	var out []Deployment
	for rows.Next() {
		d, err := scanDeployment(rows)
		if err != nil {
			return nil, fmt.Errorf("store: deployments: %w", err)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// DeploymentByID returns one of the person's deployments; another person's is ErrNotFound.
func (s *Store) DeploymentByID(ctx context.Context, userID, id int64) (Deployment, error) {
	return s.oneDeployment(ctx, " WHERE d.user_id = ? AND d.id = ?", userID, id)
}

// LiveDeploymentByName returns the person's live deployment with that model id.
func (s *Store) LiveDeploymentByName(ctx context.Context, userID int64, name string) (Deployment, error) {
	return s.oneDeployment(ctx, ` WHERE d.user_id = ? AND d.name = ? AND d.stopped_at IS NULL
		AND s.deleted_at IS NULL AND r.deleted_at IS NULL`, userID, name)
}

func (s *Store) oneDeployment(ctx context.Context, where string, args ...any) (Deployment, error) {
	d, err := scanDeployment(s.r.QueryRowContext(ctx, "SELECT "+deploymentColumns+deploymentFrom+where, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return Deployment{}, ErrNotFound
	}
	if err != nil {
		return Deployment{}, fmt.Errorf("store: deployment: %w", err)
	}
	return d, nil
}

// StopDeployment stops the person's live deployment; an unknown, foreign or already
// stopped one is ErrNotFound.
func (s *Store) StopDeployment(ctx context.Context, userID, id int64, now time.Time) error {
	res, err := s.w.ExecContext(ctx, "UPDATE deployments SET stopped_at = ? WHERE id = ? AND user_id = ? AND stopped_at IS NULL",
		ms(now), id, userID)
	if err != nil {
		return fmt.Errorf("store: stop deployment: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

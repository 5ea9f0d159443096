package gpu

import (
	"context"
	"errors"
	"fmt"
	"time"

	"tunelab/store"
)

// Worker deployments: the dispatcher submits a serve job for each new one on its snapshot's
// run's backend and follows it like a run: a job that exits, goes silent or never starts
// ends the deployment as failed; a stop the worker does not obey within the grace is
// enforced by cancelling the job. Serve jobs take no training slot.

// followDeployments makes one pass over every worker deployment whose job has not ended.
func (d *Dispatcher) followDeployments(ctx context.Context) error {
	deps, err := d.c.Store.UnendedWorkerDeployments(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, dep := range deps {
		if err := d.followDeployment(ctx, dep); err != nil {
			errs = append(errs, fmt.Errorf("deployment %d: %w", dep.ID, err))
		}
	}
	return errors.Join(errs...)
}

func (d *Dispatcher) followDeployment(ctx context.Context, dep store.Deployment) error {
	now := d.c.Now()
	stopAsked := !dep.StoppedAt.IsZero() || dep.Gone
	b := d.byName[dep.Job.Backend]
	if dep.Job.JobID == "" {
		switch {
		case stopAsked:
			return d.endDeployment(ctx, dep.ID, false, "stopped before its job started", now)
		case b == nil:
			return d.endDeployment(ctx, dep.ID, true, fmt.Sprintf("the %s backend is not configured on this server", dep.Job.Backend), now)
		}
		return d.submitDeployment(ctx, b, dep)
	}
	if b == nil {
		return d.endDeployment(ctx, dep.ID, true, fmt.Sprintf("the %s backend is no longer configured on this server", dep.Job.Backend), now)
	}
	st, err := b.Status(ctx, dep.Job.JobID)
	if err != nil {
		d.log.Warn("could not get the serve job's status", "deployment", dep.ID, "job", dep.Job.JobID, "err", err)
	}
	if err == nil && (st.State == JobExited || st.State == JobUnknown) {
		if stopAsked {
			return d.endDeployment(ctx, dep.ID, false, "stopped", now)
		}
		detail := st.Detail
		if detail == "" {
			detail = "the backend no longer knows the job"
		}
		return d.endDeployment(ctx, dep.ID, true, "the inference server's job ended: "+detail, now)
	}
	var why string
	switch {
	case stopAsked && now.Sub(dep.StoppedAt) > d.c.StopGrace:
		why = "stopped (the job was cancelled: it did not stop within the grace)"
	case dep.Job.FirstHeartbeat.IsZero() && now.Sub(dep.CreatedAt) > d.c.StartTimeout:
		why = fmt.Sprintf("the inference server did not start within %s", d.c.StartTimeout)
	case !dep.Job.LastHeartbeat.IsZero() && now.Sub(dep.Job.LastHeartbeat) > d.c.HeartbeatTimeout:
		why = fmt.Sprintf("no heartbeat from the inference server for %s", d.c.HeartbeatTimeout)
	default:
		return nil
	}
	if err := b.Cancel(ctx, dep.Job.JobID); err != nil {
		return err
	}
	return d.endDeployment(ctx, dep.ID, !stopAsked, why, now)
}

// submitDeployment starts the serve job of a deployment that has none.
func (d *Dispatcher) submitDeployment(ctx context.Context, b Backend, dep store.Deployment) error {
	token, hash := NewRunToken()
	ok, err := d.c.Store.SetDeploymentToken(ctx, dep.ID, hash)
	if err != nil || !ok {
		return err
	}
	jobID, err := b.Submit(ctx, Job{RunID: dep.RunID, DeploymentID: dep.ID, ServerURL: d.c.ServerURL, Token: token,
		Config: store.RunConfig{GPUType: dep.Job.GPUType}})
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return d.endDeployment(ctx, dep.ID, true, fmt.Sprintf("the %s backend could not start the inference server: %v", b.Name(), err), d.c.Now())
	}
	if err := d.c.Store.SetDeploymentJob(ctx, dep.ID, jobID); err != nil {
		_ = b.Cancel(ctx, jobID)
		return err
	}
	d.log.Info("deployment submitted", "backend", b.Name(), "deployment", dep.ID, "job", jobID)
	return nil
}

// endDeployment ends a deployment unless it ended meanwhile (the worker's own finish stands).
func (d *Dispatcher) endDeployment(ctx context.Context, id int64, failed bool, reason string, now time.Time) error {
	err := d.c.Store.EndDeployment(ctx, id, failed, reason, now)
	if errors.Is(err, store.ErrRunFinished) {
		return nil
	}
	if err == nil {
		d.log.Info("deployment ended", "deployment", id, "failed", failed, "reason", reason)
	}
	return err
}

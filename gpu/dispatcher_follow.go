package gpu

import (
	"context"
	"errors"
	"fmt"
	"time"

	"tunelab/store"
)

// follow settles a backend's unfinished runs and returns those still unfinished (they
// hold a slot). One run's trouble does not stop the others.
func (d *Dispatcher) follow(ctx context.Context, b Backend, runs []store.Run) (live []store.Run, err error) {
	var errs []error
	for _, r := range runs {
		unfinished, err := d.followRun(ctx, b, r)
		if err != nil {
			errs = append(errs, fmt.Errorf("run %d: %w", r.ID, err))
		}
		if unfinished {
			live = append(live, r)
		}
	}
	return live, errors.Join(errs...)
}

// forgetCancels drops the cancel times of runs no longer unfinished.
func (d *Dispatcher) forgetCancels(unfinished map[int64]bool) {
	for id := range d.cancelSeen {
		if !unfinished[id] {
			delete(d.cancelSeen, id)
		}
	}
}

// followRun applies the first rule that fits one run and says whether it is still
// unfinished afterwards.
func (d *Dispatcher) followRun(ctx context.Context, b Backend, r store.Run) (bool, error) {
	now := d.c.Now()
	stopAsked := r.CancelRequested || r.Deleted
	if r.Status == store.RunStarting && r.JobID == "" {
		// Claimed, but the server stopped before Submit returned: there is no job.
		if stopAsked {
			return false, d.finish(ctx, r.ID, store.RunCancelled, stopReason(r), now)
		}
		if err := d.c.Store.RequeueRun(ctx, r.ID, "queued again: the server stopped before the worker started"); err != nil {
			return true, err
		}
		d.log.Info("run requeued: claimed but never submitted", "run", r.ID)
		d.publish(r.ID)
		return false, nil
	}

	st, err := b.Status(ctx, r.JobID)
	if err != nil {
		// The backend may be briefly unreachable; the timeouts below still apply.
		d.log.Warn("could not get the job's status", "run", r.ID, "job", r.JobID, "err", err)
	}

	switch {
	case err == nil && (st.State == JobExited || st.State == JobUnknown):
		return false, d.jobGone(ctx, b, r, st, stopAsked)

	case stopAsked && r.Status == store.RunStarting:
		// No worker is listening for the cancel yet.
		return false, d.stop(ctx, b, r, store.RunCancelled, stopReason(r), now)

	case r.Status == store.RunRunning && now.Sub(r.LastHeartbeat) > d.c.HeartbeatTimeout:
		// Bill only up to the last sign of life.
		reason := fmt.Sprintf("no heartbeat from the worker for %s", humanDuration(d.c.HeartbeatTimeout))
		return false, d.stop(ctx, b, r, store.RunFailed, reason, r.LastHeartbeat)

	case r.Status == store.RunStarting:
		since, err := d.startingSince(ctx, r)
		if err != nil {
			return true, err
		}
		if now.Sub(since) > d.c.StartTimeout {
			reason := fmt.Sprintf("the worker did not start within %s", humanDuration(d.c.StartTimeout))
			return false, d.stop(ctx, b, r, store.RunFailed, reason, now)
		}

	case r.StopReason != "" && !stopAsked && now.Sub(r.StopRequestedAt) >= d.c.StopGrace:
		// Asked to stop cleanly, the worker did not finish in time: cancel it plainly.
		note := fmt.Sprintf("the worker did not stop within %s; cancelling", humanDuration(d.c.StopGrace))
		if err := d.c.Store.EscalateStop(ctx, r.ID, note); err != nil {
			return true, err
		}
		d.log.Info("clean stop not finished in time; cancelling", "run", r.ID)
		d.publish(r.ID)

	case stopAsked:
		seen, ok := d.cancelSeen[r.ID]
		if !ok {
			d.cancelSeen[r.ID] = now
			seen = now
		}
		if now.Sub(seen) >= d.c.CancelGrace {
			// The worker heard the cancel on its heartbeats but did not finish.
			return false, d.stop(ctx, b, r, store.RunCancelled, stopReason(r), now)
		}
	}
	return true, nil
}

// jobGone ends a run whose job is over or forgotten. A worker that finished the run
// normally posted its finish before exiting, and FinishRun re-checks the run in its
// transaction, so such a run keeps its own status.
func (d *Dispatcher) jobGone(ctx context.Context, b Backend, r store.Run, st JobStatus, stopAsked bool) error {
	end := d.c.Now()
	if !r.LastHeartbeat.IsZero() {
		end = r.LastHeartbeat
	}
	if stopAsked {
		return d.finish(ctx, r.ID, store.RunCancelled, stopReason(r), end)
	}
	detail := st.Detail
	if detail == "" && st.State == JobUnknown {
		detail = fmt.Sprintf("the %s backend no longer knows job %s", b.Name(), r.JobID)
	} else if detail == "" {
		detail = "exited"
	}
	return d.finish(ctx, r.ID, store.RunFailed, fmt.Sprintf("the worker process stopped before the run finished (%s)", detail), end)
}

// stop cancels the run's job and ends the run. A failed cancel is logged only: the run's
// token dies with it, so the worker cannot report anything more and gives up.
func (d *Dispatcher) stop(ctx context.Context, b Backend, r store.Run, status store.RunStatus, reason string, end time.Time) error {
	if err := b.Cancel(ctx, r.JobID); err != nil {
		d.log.Warn("could not stop the job", "run", r.ID, "job", r.JobID, "err", err)
	} else {
		d.log.Info("job stopped", "run", r.ID, "job", r.JobID, "why", reason)
	}
	return d.finish(ctx, r.ID, status, reason, end)
}

// startingSince is when the run last entered starting (its timeline survives restarts).
func (d *Dispatcher) startingSince(ctx context.Context, r store.Run) (time.Time, error) {
	events, err := d.c.Store.RunEvents(ctx, r.ID)
	if err != nil {
		return time.Time{}, err
	}
	for i := len(events) - 1; i >= 0; i-- {
		if events[i].Status == store.RunStarting {
			return events[i].At, nil
		}
	}
	return r.CreatedAt, nil
}

func stopReason(r store.Run) string {
	if r.Deleted {
		return "deleted"
	}
	if r.StopReason != "" {
		return r.StopReason // a clean stop turned into a cancel still says why
	}
	return "cancelled"
}

// StopUploadAllowance is the part of the stop grace for uploading the final snapshot.
const StopUploadAllowance = 2 * time.Minute

// StopGraceFor is the time a worker asked to stop cleanly has before the stop becomes a
// plain cancel: two heartbeat intervals to hear it, plus StopUploadAllowance.
func StopGraceFor(heartbeat time.Duration) time.Duration {
	return 2*heartbeat + StopUploadAllowance
}

// humanDuration writes a timeout the way the docs do: "60 s", "10 min".
func humanDuration(d time.Duration) string {
	switch {
	case d >= 2*time.Minute && d%time.Minute == 0:
		return fmt.Sprintf("%d min", d/time.Minute)
	case d%time.Second == 0:
		return fmt.Sprintf("%d s", d/time.Second)
	}
	return d.String()
}

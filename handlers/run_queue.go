package handlers

import (
	"context"
	"fmt"
	"strings"
	"time"

	"tunelab/gpu"
	"tunelab/store"
	"tunelab/views"
)

// runQueue says where a queued run stands and when it should start; nil for other runs
// or without a dispatcher.
func (a *app) runQueue(ctx context.Context, run store.Run, now time.Time) (*views.RunQueue, error) {
	if run.Status != store.RunQueued || a.runs.Queue == nil {
		return nil, nil
	}
	spot, ok, err := a.runs.Queue.Spot(ctx, run.ID)
	if err != nil || !ok {
		return nil, err
	}
	q := &views.RunQueue{Position: "Next in the queue: it starts in the next free slot that offers " + run.Config.GPUType + "."}
	if spot.Position > 1 {
		q.Position = fmt.Sprintf("Position %d in the queue: %s before it.", spot.Position, plural(spot.Position-1, "run starts", "runs start"))
	}
	if spot.Start.IsZero() {
		q.Start = "No start estimate: no backend configured now offers " + run.Config.GPUType + "."
		return q, nil
	}
	if wait := spot.Start.Sub(now); wait <= 0 {
		q.Start = "Estimated start: now, as soon as the dispatcher's next pass claims it."
	} else {
		q.Start = fmt.Sprintf("Estimated start: in about %s (%s UTC).", roughDuration(wait), spot.Start.UTC().Format("15:04"))
	}
	typical := fmt.Sprintf("a typical run of %s (the median of the last %s that succeeded on this backend)",
		roughDuration(spot.Typical), plural(spot.Samples, "run", "runs"))
	if spot.Samples == 0 {
		typical = fmt.Sprintf("an assumed %s a run (no run has succeeded on this backend yet)", roughDuration(spot.Typical))
	}
	q.Basis = fmt.Sprintf("Estimated from the progress of the %s going now and %s for each run ahead; runs that stop early or take longer move it.",
		plural(spot.Running, "run", "runs"), typical)
	return q, nil
}

// roughDuration writes a wait the way people say it: "40 s", "12 min", "2 h 05 min".
func roughDuration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%d s", int(d.Round(time.Second)/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d.Round(time.Minute)/time.Minute))
	}
	return formatDuration(d.Round(time.Minute))
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// backendChoice names where a new run may go, for the run form: "local", or "local,
// slurm or http" when the dispatcher picks among several.
func backendChoice(c gpu.Catalogue) string {
	names := gpu.BackendNames(c)
	if len(names) <= 1 {
		return c.Name()
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

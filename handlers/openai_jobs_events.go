package handlers

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"tunelab/store"
)

// A job's events (the run's timeline and its log lines, newest first) and its checkpoints
// (the run's snapshots, newest first, with the loss the run reported at that step).

type openaiJobEvent struct {
	ID        string         `json:"id"`
	Object    string         `json:"object"`
	CreatedAt int64          `json:"created_at"`
	Level     string         `json:"level"`
	Message   string         `json:"message"`
	Data      map[string]any `json:"data"`
	Type      string         `json:"type"`
}

// eventID is "ftevent-s<n>" for a timeline entry, "ftevent-l<n>" for a log line;
// "ftevent-d<run id>" is the deploy on success of a job made through the API.
func eventID(e store.JobEvent) string {
	kind := "s"
	if e.FromLog {
		kind = "l"
	}
	return "ftevent-" + kind + strconv.FormatInt(e.ID, 10)
}

func parseEventID(s string) (fromLog bool, id int64, ok bool) {
	rest, found := strings.CutPrefix(s, "ftevent-")
	if !found || len(rest) < 2 || (rest[0] != 's' && rest[0] != 'l') {
		return false, 0, false
	}
	n, err := strconv.ParseInt(rest[1:], 10, 64)
	return rest[0] == 'l', n, err == nil && n > 0
}

// statusMessages say what each timeline status means for the job.
var statusMessages = map[store.RunStatus]string{
	store.RunQueued:    "Fine-tuning job queued",
	store.RunStarting:  "Starting the worker",
	store.RunRunning:   "Fine-tuning job started",
	store.RunSucceeded: "The job has successfully completed",
	store.RunFailed:    "The job failed",
	store.RunCancelled: "The job was cancelled",
}

func jobEventJSON(e store.JobEvent) openaiJobEvent {
	ev := openaiJobEvent{ID: eventID(e), Object: "fine_tuning.job.event", CreatedAt: e.At.Unix(), Level: "info",
		Message: e.Text, Data: map[string]any{}, Type: "message"}
	if e.FromLog {
		return ev
	}
	msg := statusMessages[e.Status]
	if msg == "" {
		msg = "Status: " + string(e.Status)
	}
	if e.Text != "" {
		msg += ": " + e.Text
	}
	ev.Message = msg
	ev.Data["status"] = string(e.Status)
	switch e.Status {
	case store.RunFailed:
		ev.Level = "error"
	case store.RunCancelled:
		ev.Level = "warn"
	}
	return ev
}

// openaiJobEvents answers GET /v1/fine_tuning/jobs/{id}/events: after (an event id) and
// limit (1 to 100, default 20).
func (a *app) openaiJobEvents(w http.ResponseWriter, r *http.Request) {
	run, ok := a.openaiJobByPath(w, r)
	if !ok {
		return
	}
	limit, ok := openaiLimit(w, r, 20, 100)
	if !ok {
		return
	}
	extras, err := a.store.FineTuneJobs(r.Context(), run.UserID, []int64{run.ID})
	if err != nil {
		a.openaiServerError(w, r, err)
		return
	}
	deployed := extras[run.ID]
	deployedID := "ftevent-d" + strconv.FormatInt(run.ID, 10)
	first := deployed.FineTunedModel != "" // the deploy on success leads the list
	var after *store.JobEventCursor
	if v := r.URL.Query().Get("after"); v == deployedID && first {
		first = false // the page after it starts with the run's own newest events
	} else if v != "" {
		first = false
		fromLog, id, ok := parseEventID(v)
		var c store.JobEventCursor
		var err error
		if ok {
			c, err = a.store.JobEventAt(r.Context(), run.ID, fromLog, id)
		}
		if !ok || errors.Is(err, store.ErrNotFound) {
			openaiBadParam(w, "after", "after must be the id of an event of this job from a previous page.")
			return
		}
		if err != nil {
			a.openaiServerError(w, r, err)
			return
		}
		after = &c
	}
	events, more, err := a.store.JobEvents(r.Context(), run.ID, after, limit)
	if err != nil {
		a.openaiServerError(w, r, err)
		return
	}
	out := make([]openaiJobEvent, 0, len(events)+1)
	if first {
		out = append(out, openaiJobEvent{ID: deployedID, Object: "fine_tuning.job.event", CreatedAt: deployed.DeployedAt.Unix(), Level: "info",
			Message: "New fine-tuned model created and deployed: " + deployed.FineTunedModel, Data: map[string]any{"fine_tuned_model": deployed.FineTunedModel},
			Type: "message"})
	}
	for _, e := range events {
		out = append(out, jobEventJSON(e))
	}
	if len(out) > limit {
		out, more = out[:limit], true
	}
	writeList(w, out, more)
}

type openaiCheckpoint struct {
	ID                       string             `json:"id"`
	Object                   string             `json:"object"`
	CreatedAt                int64              `json:"created_at"`
	FineTunedModelCheckpoint string             `json:"fine_tuned_model_checkpoint"`
	FineTuningJobID          string             `json:"fine_tuning_job_id"`
	Metrics                  map[string]float64 `json:"metrics"`
	StepNumber               int                `json:"step_number"`
}

func checkpointID(snapshotID int64) string { return "ftckpt-" + strconv.FormatInt(snapshotID, 10) }

// checkpointMetrics are the run's series a checkpoint reports, by OpenAI's names.
var checkpointMetrics = []struct{ series, name string }{{"loss", "train_loss"}, {"eval_loss", "valid_loss"}}

// openaiJobCheckpoints answers GET /v1/fine_tuning/jobs/{id}/checkpoints: the run's
// snapshots, newest first, after (a checkpoint id) and limit (1 to 100, default 10). The
// metrics are the run's last loss and eval loss reported at or before the step, when it
// reported any; fine_tuned_model_checkpoint is the model id Deploy on the run page gives it.
func (a *app) openaiJobCheckpoints(w http.ResponseWriter, r *http.Request) {
	run, ok := a.openaiJobByPath(w, r)
	if !ok {
		return
	}
	limit, ok := openaiLimit(w, r, 10, 100)
	if !ok {
		return
	}
	var after int64
	if v := r.URL.Query().Get("after"); v != "" {
		n, err := strconv.ParseInt(strings.TrimPrefix(v, "ftckpt-"), 10, 64)
		if err != nil || n <= 0 || !strings.HasPrefix(v, "ftckpt-") {
			openaiBadParam(w, "after", "after must be the id of a checkpoint from a previous page.")
			return
		}
		after = n
	}
	snaps, err := a.store.Snapshots(r.Context(), run.UserID, run.ID)
	if err != nil {
		a.openaiServerError(w, r, err)
		return
	}
	// Newest first; the page starts after the checkpoint named.
	out := []openaiCheckpoint{}
	started := after == 0
	more := false
	for i := len(snaps) - 1; i >= 0; i-- {
		s := snaps[i]
		if !started {
			started = s.ID == after
			continue
		}
		if len(out) == limit {
			more = true
			break
		}
		c := openaiCheckpoint{ID: checkpointID(s.ID), Object: "fine_tuning.job.checkpoint", CreatedAt: s.CreatedAt.Unix(),
			FineTunedModelCheckpoint: fmt.Sprintf("tl-%d-%d", run.ID, s.Step), FineTuningJobID: jobID(run.ID),
			Metrics: map[string]float64{"step": float64(s.Step)}, StepNumber: s.Step}
		for _, m := range checkpointMetrics {
			v, ok, err := a.store.MetricAtStep(r.Context(), run.ID, m.series, s.Step)
			if err != nil {
				a.openaiServerError(w, r, err)
				return
			}
			if ok {
				c.Metrics[m.name] = v
			}
		}
		out = append(out, c)
	}
	if !started {
		openaiBadParam(w, "after", "after must be the id of a checkpoint of this job from a previous page.")
		return
	}
	writeList(w, out, more)
}

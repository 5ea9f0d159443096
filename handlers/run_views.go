package handlers

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"tunelab/gpu"
	"tunelab/store"
	"tunelab/views"
)

// logTailLines is how many log lines the run page shows.
const logTailLines = 50

func statusEvent(runID int64) gpu.Event { return gpu.Event{RunID: runID, Kind: "status"} }

func statusLabel(s string) string {
	if s == "" {
		return ""
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func modelName(o gpu.Offer, id string) string {
	for _, m := range o.Models {
		if m.ID == id {
			return m.Name
		}
	}
	return id
}

// progress returns the bar's percent, its words, and an ETA from the pace so far.
func progress(run store.Run, now time.Time) (pct int, words, eta string) {
	if run.TotalSteps <= 0 {
		if run.Status == store.RunSucceeded {
			return 100, "", ""
		}
		return 0, "", ""
	}
	pct = min(100, run.Step*100/run.TotalSteps)
	words = fmt.Sprintf("%s / %s steps", formatCount(int64(run.Step)), formatCount(int64(run.TotalSteps)))
	if run.Status == store.RunRunning && run.Step > 0 && !run.FirstHeartbeat.IsZero() {
		elapsed := now.Sub(run.FirstHeartbeat)
		left := time.Duration(float64(elapsed) / float64(run.Step) * float64(run.TotalSteps-run.Step))
		eta = "about " + formatDuration(left) + " left"
	}
	return pct, words, eta
}

// formatDuration writes "45 s", "3 min 05 s", "2 h 04 min".
func formatDuration(d time.Duration) string {
	s := int64(d.Round(time.Second) / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%d s", s)
	case s < 3600:
		return fmt.Sprintf("%d min %02d s", s/60, s%60)
	default:
		return fmt.Sprintf("%d h %02d min", s/3600, (s%3600)/60)
	}
}

func runRow(run store.Run, o gpu.Offer, now time.Time) views.RunRow {
	pct, words, eta := progress(run, now)
	id := strconv.FormatInt(run.ID, 10)
	return views.RunRow{
		ID: id, DOMID: "run-row-" + id, URL: "/runs/" + id, Name: run.Name, Tags: run.Tags, Model: modelName(o, run.Config.BaseModel),
		Method: run.Config.Method, Dataset: run.DatasetName, LearningRate: formatFloat(run.Config.LearningRate),
		Epochs: strconv.Itoa(run.Config.Epochs), Status: run.Status, Label: statusLabel(run.Status),
		Percent: pct, Progress: words, ETA: eta, GPUTime: formatDuration(run.GPUTime(now)),
		Created: run.CreatedAt.Format("2 Jan 2006, 15:04"),
	}
}

// runLive gathers what the live panel shows; the SSE stream re-renders it on changes.
func (a *app) runLive(r *http.Request, run store.Run) (views.RunLive, error) {
	ctx := r.Context()
	events, err := a.store.RunEvents(ctx, run.ID)
	if err != nil {
		return views.RunLive{}, err
	}
	logs, err := a.store.LogTail(ctx, run.ID, logTailLines)
	if err != nil {
		return views.RunLive{}, err
	}
	snaps, err := a.store.Snapshots(ctx, run.UserID, run.ID)
	if err != nil {
		return views.RunLive{}, err
	}
	now := a.now()
	pct, words, eta := progress(run, now)
	l := views.RunLive{Status: run.Status, Label: statusLabel(run.Status), Reason: run.Reason, Percent: pct,
		Progress: words, ETA: eta, GPUTime: formatDuration(run.GPUTime(now)), Final: run.Final()}
	if run.Status == store.RunFailed {
		l.RetryURL = fmt.Sprintf("/runs/%d/retry", run.ID)
	}
	if run.CancelRequested && !run.Final() {
		l.Label = "Cancelling"
	}
	for _, e := range events {
		label := statusLabel(e.Status)
		note := e.Note
		if e.Note == "cancel requested" {
			label, note = "Cancel requested", ""
		}
		l.Timeline = append(l.Timeline, views.TimelineItem{Status: e.Status, Label: label, Note: note,
			At: e.At.Format("15:04:05"), When: e.At.Format(time.RFC3339)})
	}
	for _, line := range logs {
		l.Logs = append(l.Logs, line.Line)
	}
	for _, s := range snaps {
		l.Snapshots = append(l.Snapshots, views.SnapshotRow{
			Step: formatCount(int64(s.Step)), Final: s.Final, Size: formatBytes(s.SizeBytes), SHA256: s.SHA256,
			Created:     s.CreatedAt.Format("15:04:05"),
			DownloadURL: fmt.Sprintf("/runs/%d/snapshots/%d/download", run.ID, s.ID),
		})
	}
	return l, nil
}

func runDetail(run store.Run, live views.RunLive, o gpu.Offer) views.RunDetail {
	c := run.Config
	d := views.RunDetail{
		ID: run.ID, Name: run.Name, EventsURL: fmt.Sprintf("/runs/%d/events", run.ID), Live: live,
		DeleteURL: fmt.Sprintf("/runs/%d/delete", run.ID), ExportCSV: fmt.Sprintf("/runs/%d/metrics.csv", run.ID),
		APIURL: fmt.Sprintf("/runs/%d/api", run.ID),
	}
	d.SimilarURL = fmt.Sprintf("/runs/new?from=%d", run.ID)
	d.Labels = views.RunLabelsForm{Action: fmt.Sprintf("/runs/%d/edit", run.ID), Name: run.Name,
		Tags: strings.Join(run.Tags, ", "), Notes: run.Notes, Shown: run.Tags}
	if !run.Final() && !run.CancelRequested {
		d.CancelURL = fmt.Sprintf("/runs/%d/cancel", run.ID)
	}
	if run.Final() {
		d.RetryURL = fmt.Sprintf("/runs/%d/retry", run.ID)
	}
	if run.RetryOf != 0 {
		d.RetryOf = fmt.Sprintf("/runs/%d", run.RetryOf)
	}
	validation := fmt.Sprintf("%s %% of the rows held out", formatFloat(c.ValidationSplit))
	if run.EvalDatasetID != 0 {
		validation = run.EvalDatasetName
	}
	snapshots := "at the end"
	if c.SnapshotEvery > 0 {
		snapshots = fmt.Sprintf("every %s steps and at the end", formatCount(int64(c.SnapshotEvery)))
	}
	d.Config = []views.ConfigItem{
		{Label: "Dataset", Value: run.DatasetName},
		{Label: "Validation", Value: validation},
		{Label: "Base model", Value: modelName(o, c.BaseModel)},
		{Label: "Method", Value: methodLabel(c.Method)},
		{Label: "Epochs", Value: fmt.Sprint(c.Epochs)},
		{Label: "Learning rate", Value: formatFloat(c.LearningRate)},
		{Label: "Batch size", Value: fmt.Sprint(c.BatchSize)},
	}
	if c.UsesLoRA() {
		d.Config = append(d.Config, views.ConfigItem{Label: "LoRA rank / alpha", Value: fmt.Sprintf("%d / %s", c.LoRARank, formatFloat(c.LoRAAlpha))})
	}
	d.Config = append(d.Config,
		views.ConfigItem{Label: "Max sequence length", Value: fmt.Sprint(c.MaxSeqLen)},
		views.ConfigItem{Label: "Seed", Value: fmt.Sprint(c.Seed)},
		views.ConfigItem{Label: "Snapshots", Value: snapshots},
		views.ConfigItem{Label: "Hardware", Value: c.GPUType + " on " + run.Backend},
		views.ConfigItem{Label: "Created", Value: run.CreatedAt.Format("2 Jan 2006, 15:04:05 MST")},
	)
	return d
}

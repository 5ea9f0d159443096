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

func statusEvent(runID int64) gpu.Event { return gpu.Event{RunID: runID, Kind: gpu.EventStatus} }

// statusTones are the badge tones of the run statuses: queued and starting neutral,
// running accent, succeeded green, failed red; cancelled is neutral, and its
// run-status-cancelled class makes it a quieter grey.
var statusTones = map[store.RunStatus]string{
	store.RunQueued:    "neutral",
	store.RunStarting:  "neutral",
	store.RunRunning:   "accent",
	store.RunSucceeded: "success",
	store.RunFailed:    "danger",
	store.RunCancelled: "neutral",
}

// statusTone is a run status's badge tone (components.BadgeProps.Tone).
func statusTone(s store.RunStatus) string {
	if t, ok := statusTones[s]; ok {
		return t
	}
	return "neutral"
}

// liveSentences say in words what a run in each status is doing; an ended run that did
// not succeed has a callout instead.
var liveSentences = map[store.RunStatus]string{
	store.RunQueued:    "Waiting in the queue for a free training slot.",
	store.RunStarting:  "Starting: the worker is loading the model and the dataset.",
	store.RunRunning:   "Training. The charts below follow every step.",
	store.RunSucceeded: "Finished. The final snapshot is ready to download.",
}

func modelName(o gpu.Offer, id string) string {
	for _, m := range o.Models {
		if m.ID == id {
			return m.Name
		}
	}
	return id
}

// stepSeen is the newest step known of a run and when it was reported: from its last
// heartbeat, its newest metric point or a "step N/T" line of its log, whichever is ahead.
type stepSeen struct {
	Step int
	At   time.Time
}

// latestStep picks the furthest of the reports, never past the run's total.
func latestStep(run store.Run, reports ...stepSeen) stepSeen {
	best := stepSeen{Step: run.Step, At: run.LastHeartbeat}
	for _, r := range reports {
		if r.Step > best.Step || (r.Step == best.Step && r.At.After(best.At)) {
			best = r
		}
	}
	if run.TotalSteps > 0 {
		best.Step = min(best.Step, run.TotalSteps)
	}
	return best
}

// logStep reads the step of the newest "step N/T" line of a log tail.
func logStep(lines []store.LogLine) (stepSeen, bool) {
	for i := len(lines) - 1; i >= 0; i-- {
		var step, total int
		if n, _ := fmt.Sscanf(lines[i].Line, "step %d/%d", &step, &total); n == 2 {
			return stepSeen{Step: step, At: lines[i].At}, true
		}
	}
	return stepSeen{}, false
}

// estimateLeft is the time a run still needs, from its pace over the whole run so far:
// the steps done by the time the newest step was reported, divided by the time they took,
// counted down from that report. Between reports the estimate goes down with the clock
// instead of up (the old step over a longer time), and one slow or fast step barely moves
// it. ok is false until there is a pace to go by.
func estimateLeft(started time.Time, seen stepSeen, total int, now time.Time) (time.Duration, bool) {
	if started.IsZero() || seen.Step <= 0 || total <= seen.Step {
		return 0, false
	}
	at := seen.At
	if at.IsZero() || at.After(now) {
		at = now
	}
	took := at.Sub(started)
	if took <= 0 {
		return 0, false
	}
	perStep := float64(took) / float64(seen.Step)
	left := time.Duration(perStep*float64(total-seen.Step)) - now.Sub(at)
	return max(left, time.Second), true
}

// progress returns the bar's percent, its words, and an estimate of the time left.
func progress(run store.Run, seen stepSeen, now time.Time) (pct int, words, eta string) {
	if run.TotalSteps <= 0 {
		if run.Status == store.RunSucceeded {
			return 100, "", ""
		}
		return 0, "", ""
	}
	step := seen.Step
	if run.Status == store.RunSucceeded {
		step = run.TotalSteps
	}
	pct = min(100, step*100/run.TotalSteps)
	words = fmt.Sprintf("%s / %s steps", formatCount(int64(step)), formatCount(int64(run.TotalSteps)))
	if run.Status == store.RunRunning && !run.CancelRequested {
		if left, ok := estimateLeft(run.FirstHeartbeat, seen, run.TotalSteps, now); ok {
			eta = "about " + formatDuration(left) + " left"
		}
	}
	return pct, words, eta
}

// timeLabel names the metered time: GPU time where the backend has GPUs, else compute time.
func timeLabel(o gpu.Offer) string {
	for _, g := range o.GPUTypes {
		if g.ID != "cpu" {
			return "GPU time"
		}
	}
	return "Compute time"
}

// hasGPUs reports whether the backend trains on GPUs; the local backend offers only "cpu".
func hasGPUs(o gpu.Offer) bool { return timeLabel(o) == "GPU time" }

// methodWords names the methods a backend offers, for prose: "LoRA, DPO or full". With
// chatOnly it leaves out DPO, which trains on preference pairs, not chat or completions.
func methodWords(o gpu.Offer, chatOnly bool) string {
	var words []string
	for _, m := range o.Methods {
		switch {
		case m == store.MethodDPO && chatOnly:
		case m == store.MethodFull:
			words = append(words, "full")
		default:
			words = append(words, m.Label())
		}
	}
	switch len(words) {
	case 0:
		return "none on this server"
	case 1:
		return words[0]
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}

func runRow(run store.Run, o gpu.Offer, now time.Time) views.RunRow {
	pct, words, eta := progress(run, latestStep(run), now)
	id := strconv.FormatInt(run.ID, 10)
	return views.RunRow{
		ID: id, DOMID: "run-row-" + id, URL: "/runs/" + id, Name: run.Name, Tags: run.Tags, Model: modelName(o, run.Config.BaseModel),
		Method: run.Config.Method.ShortLabel(), Dataset: run.DatasetName, LearningRate: formatFloat(run.Config.LearningRate),
		Epochs: strconv.Itoa(run.Config.Epochs), Status: string(run.Status), Label: runLabel(run), Tone: statusTone(run.Status),
		Percent: pct, Progress: words, ETA: eta, GPUTime: formatDuration(run.GPUTime(now)), TimeLabel: timeLabel(o),
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
	seen := []stepSeen{}
	// The trainer's "loss" series, not every series: a person's own script may post its
	// metrics at steps of its own.
	if step, at, ok, err := a.store.LatestMetricStep(ctx, run.ID, "loss"); err != nil {
		return views.RunLive{}, err
	} else if ok {
		seen = append(seen, stepSeen{step, at})
	}
	if s, ok := logStep(logs); ok {
		seen = append(seen, s)
	}
	now := a.now()
	offer := a.runs.Backend.Offer()
	pct, words, eta := progress(run, latestStep(run, seen...), now)
	l := views.RunLive{Status: string(run.Status), Label: runLabel(run), Tone: statusTone(run.Status),
		Sentence: liveSentences[run.Status], Failed: run.Status == store.RunFailed, Cancelled: run.Status == store.RunCancelled,
		Reason: run.Reason, Percent: pct, Progress: words, ETA: eta, TimeLabel: timeLabel(offer),
		GPUTime: formatDuration(run.GPUTime(now)), Final: run.Final()}
	if run.Status == store.RunFailed {
		l.RetryURL = fmt.Sprintf("/runs/%d/retry", run.ID)
	}
	if l.Queue, err = a.runQueue(ctx, run, now); err != nil {
		return views.RunLive{}, err
	}
	l.CancelTitle = "This run was cancelled"
	if run.StopReason != "" {
		l.CancelTitle = "This run was stopped"
	}
	// Cost so far, and projected at the end from the steps done (the same count as /billing).
	book, err := a.billing.Costs(ctx, run.UserID, now)
	if err != nil {
		return views.RunLive{}, err
	}
	if book != nil {
		projected := projectedSeconds(run, latestStep(run, seen...).Step, now)
		l.Cost = costText(book.Run(run, projected))
		l.CostWarning = budgetWarning(book, run, projected)
	}
	if run.CancelRequested && !run.Final() {
		l.Label, l.Cancelling = "Cancelling", true
		l.Sentence = "Cancelling: waiting for the worker to stop training and confirm."
	} else if run.StopReason != "" && !run.Final() {
		l.Label, l.Cancelling = "Stopping", true
		l.Sentence = run.StopReason + ". The worker is saving a final snapshot of the weights, then the run ends."
	}
	l.Actions = views.RunActions{DeleteURL: fmt.Sprintf("/runs/%d/delete", run.ID), SimilarURL: fmt.Sprintf("/runs/new?from=%d", run.ID)}
	if !run.Final() && !run.CancelRequested {
		l.Actions.CancelURL = fmt.Sprintf("/runs/%d/cancel", run.ID)
	}
	if run.Final() {
		l.Actions.RetryURL = fmt.Sprintf("/runs/%d/retry", run.ID)
	}
	for _, e := range events {
		label := e.Status.Label()
		note := e.Note
		if e.Note == "cancel requested" {
			label, note = "Cancel requested", ""
		}
		l.Timeline = append(l.Timeline, views.TimelineItem{Status: string(e.Status), Label: label, Note: note,
			At: e.At.Format("15:04:05"), When: e.At.Format(time.RFC3339)})
	}
	for _, line := range logs {
		l.Logs = append(l.Logs, views.LogItem{ID: strconv.FormatInt(line.ID, 10), Text: line.Line})
	}
	for _, s := range snaps {
		l.Snapshots = append(l.Snapshots, snapshotRow(run, s))
	}
	if err := a.addLineage(ctx, run, &l); err != nil {
		return views.RunLive{}, err
	}
	return l, nil
}

func runDetail(run store.Run, live views.RunLive, o gpu.Offer) views.RunDetail {
	c := run.Config
	d := views.RunDetail{
		ID: run.ID, Name: run.Name, EventsURL: fmt.Sprintf("/runs/%d/events", run.ID), Live: live,
		ExportCSV: fmt.Sprintf("/runs/%d/metrics.csv", run.ID), APIURL: fmt.Sprintf("/runs/%d/api", run.ID),
	}
	d.Labels = views.RunLabelsForm{Action: fmt.Sprintf("/runs/%d/edit", run.ID), Name: run.Name,
		Tags: strings.Join(run.Tags, ", "), Notes: run.Notes, Shown: run.Tags}
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
		{Label: "Method", Value: c.Method.Label()},
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

// runLabel is the run's status in words; a run that billing or a rule stopped cleanly
// (it ended cancelled, with a final snapshot) says "Stopped", as its callout does.
func runLabel(run store.Run) string {
	if run.Status == store.RunCancelled && run.StopReason != "" {
		return "Stopped"
	}
	return run.Status.Label()
}

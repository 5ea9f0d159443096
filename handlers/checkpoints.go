package handlers

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"tunelab/store"
	"tunelab/trainer"
	"tunelab/views"
)

// The checkpoint leaderboard on the run page: every snapshot with its evaluation, the best
// one marked by the metric the person picks (?metric=, eval loss by default).

type leaderMetric struct {
	value, label string
	higher       bool // higher is better
	of           func(store.SnapshotEval) sql.NullFloat64
}

var leaderMetrics = []leaderMetric{
	{"eval_loss", "Eval loss", false, func(e store.SnapshotEval) sql.NullFloat64 { return e.EvalLoss }},
	{"perplexity", "Perplexity", false, func(e store.SnapshotEval) sql.NullFloat64 { return e.EvalLoss }}, // same order as the loss
	{"exact_match", "Exact match", true, func(e store.SnapshotEval) sql.NullFloat64 { return e.ExactMatch }},
	{"contains", "Contains", true, func(e store.SnapshotEval) sql.NullFloat64 { return e.Contains }},
}

const badMetricMessage = "Pick the metric to rank by: eval loss, perplexity, exact match or contains."

// leaderMetricFor returns the metric named by value ("" is eval loss); ok is false for
// any other value.
func leaderMetricFor(value string) (leaderMetric, bool) {
	if value == "" {
		return leaderMetrics[0], true
	}
	for _, m := range leaderMetrics {
		if m.value == value {
			return m, true
		}
	}
	return leaderMetrics[0], false
}

var evalStatusLabels = map[string]struct{ label, tone string }{
	store.EvalQueued:  {"Queued", "neutral"},
	store.EvalRunning: {"Evaluating", "accent"},
	store.EvalDone:    {"Evaluated", "success"},
	store.EvalFailed:  {"Failed", "danger"},
}

func validMetric(value string) bool { _, ok := leaderMetricFor(value); return ok }

// gpuEvalNote says how a GPU run's snapshots are evaluated, up front.
const gpuEvalNote = "GPU snapshots are scored by their live deployment's inference server: deploy a snapshot first (Snapshots card), then Evaluate appears on its row here; its GPU time counts as the deployment's. Eval loss is nats per token of the model's own tokenizer, on the answer tokens as training scores them; perplexity is exp of it."

const answersNote = "Exact match and contains compare the greedy answer with the reference answer, for chat data only."

// checkpoints builds the leaderboard of run on one eval set (setValue: "heldout" or a
// dataset id, "" for the held-out rows) ranked by metric value. A set or metric that
// cannot be shown sets Error, and the held-out set (or eval loss) is shown instead.
func (a *app) checkpoints(ctx context.Context, run store.Run, metricValue, setValue string) (views.Checkpoints, error) {
	m, ok := leaderMetricFor(metricValue)
	c := views.Checkpoints{Action: fmt.Sprintf("/runs/%d", run.ID), Metric: m.value,
		EvaluateAllURL: fmt.Sprintf("/runs/%d/evaluate", run.ID),
		Note:           fmt.Sprintf("Scored on the run's held-out rows (its validation dataset, or the validation split the trainer held out), at most %d of them. %s", evalMaxRows, answersNote)}
	if !ok {
		c.Error = badMetricMessage
	}
	set, err := a.evalSet(ctx, run, setValue, false)
	var refused *evalSetProblem
	if errors.As(err, &refused) {
		c.Error, set = refused.msg, store.EvalDataset{}
	} else if err != nil {
		return c, err
	}
	c.Set = evalSetValue(set.ID)
	if set.ID != 0 {
		c.Note = fmt.Sprintf("Scored on all %s of your dataset %s. %s", plural(set.Rows, "row", "rows"), evalSetName(set), answersNote)
		if set.Rows > evalMaxRows {
			c.Note = fmt.Sprintf("Scored on the first %d of the %s rows of your dataset %s. %s", evalMaxRows, formatCount(int64(set.Rows)), evalSetName(set), answersNote)
		}
		if set.Deleted {
			c.Note = fmt.Sprintf("Scores kept from %s, deleted since: it cannot be scored on again.", evalSetName(set))
			c.EvaluateAllURL = ""
		}
	}
	if c.Sets, err = a.evalSetOptions(ctx, run, set.ID); err != nil {
		return c, err
	}
	for _, lm := range leaderMetrics {
		c.Metrics = append(c.Metrics, views.MetricOption{Value: lm.value, Label: lm.label, Selected: lm.value == m.value})
	}
	c.LossLabel = "Eval loss (per byte)"
	var deployed map[int64]bool // for a GPU run: the snapshots that can be evaluated now
	if _, builtIn := trainer.BaseModelByID(run.Config.BaseModel); !builtIn {
		c.LossLabel = "Eval loss (per token)"
		c.GPUNote = gpuEvalNote
		if deployed, err = a.deployedSnapshots(ctx, run.UserID); err != nil {
			return c, err
		}
	}
	snaps, err := a.store.Snapshots(ctx, run.UserID, run.ID)
	if err != nil {
		return c, err
	}
	evals, err := a.store.SnapshotEvals(ctx, run.UserID, run.ID, set.ID)
	if err != nil {
		return c, err
	}
	best, bestIdx, pending, anyDeployed := 0.0, -1, false, false
	for i, s := range snaps {
		e, has := evals[s.ID]
		ref := "snapshot:" + fmt.Sprint(s.ID)
		row := views.CheckpointRow{Step: formatCount(int64(s.Step)), Final: s.Final, Ref: ref,
			Label: "Step " + formatCount(int64(s.Step)), Loss: "—", Perplexity: "—", ExactMatch: "—", Contains: "—",
			PlaygroundURL: "/playground?a=" + url.QueryEscape(ref), MarkStep: s.Step, MarkAt: s.CreatedAt.UnixMilli()}
		if c.EvaluateAllURL != "" && (deployed == nil || deployed[s.ID]) {
			row.EvaluateURL = fmt.Sprintf("/runs/%d/snapshots/%d/evaluate", run.ID, s.ID)
			anyDeployed = true
		}
		if has {
			st := evalStatusLabels[e.Status]
			row.Status, row.Tone, row.Error = st.label, st.tone, e.Error
			if e.Status == store.EvalQueued || e.Status == store.EvalRunning {
				pending = true
				row.EvaluateURL = ""
			}
			if e.Status == store.EvalRunning && e.Rows > 0 {
				row.Rows = fmt.Sprintf("%d rows so far", e.Rows)
			}
			if e.Status == store.EvalDone {
				row.Rows = fmt.Sprintf("%d rows", e.Rows)
				row.Loss = fmt.Sprintf("%.4f", e.EvalLoss.Float64)
				row.Perplexity = fmt.Sprintf("%.3f", perplexity(e.EvalLoss.Float64))
				if e.ExactMatch.Valid {
					row.ExactMatch = percent(e.ExactMatch.Float64)
					row.Contains = percent(e.Contains.Float64)
				}
				if v := m.of(e); v.Valid && (bestIdx < 0 || (m.higher && v.Float64 > best) || (!m.higher && v.Float64 < best)) {
					best, bestIdx = v.Float64, i
				}
			}
		}
		c.Rows = append(c.Rows, row)
	}
	if bestIdx >= 0 {
		c.Rows[bestIdx].Best = true
	}
	if deployed != nil && !anyDeployed {
		c.EvaluateAllURL = ""
	}
	c.Count = strconv.Itoa(len(c.Rows))
	// The view a live update can rebuild: the held-out rows ranked by the first metric.
	c.DefaultView = c.Error == "" && set.ID == 0 && m.value == leaderMetrics[0].value
	if pending {
		c.PollURL = fmt.Sprintf("/runs/%d/checkpoints?%s", run.ID, url.Values{"metric": {m.value}, "set": {c.Set}}.Encode())
	}
	return c, nil
}

// liveCheckpoints is the leaderboard for a live update, in its default view: the page
// morphs it into a card showing that view, so new snapshots appear without a reload (a
// card showing another metric or eval set is the person's choice, and stays).
func (a *app) liveCheckpoints(r *http.Request, run store.Run) (*views.Checkpoints, error) {
	c, err := a.checkpoints(r.Context(), run, "", "")
	if err != nil {
		return nil, err
	}
	return &c, nil
}

func percent(v float64) string {
	return strings.TrimSuffix(strings.TrimSuffix(fmt.Sprintf("%.1f", v*100), "0"), ".") + "%"
}

// showCheckpoints renders the leaderboard alone: the card polls it while jobs are pending.
func (a *app) showCheckpoints(w http.ResponseWriter, r *http.Request) {
	run, ok := a.runByPath(w, r)
	if !ok {
		return
	}
	metric := r.URL.Query().Get("metric")
	if _, ok := leaderMetricFor(metric); !ok {
		a.badRequest(w, r, badMetricMessage)
		return
	}
	c, err := a.checkpoints(r.Context(), run, metric, r.URL.Query().Get("set"))
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	if c.Error != "" {
		a.badRequest(w, r, c.Error)
		return
	}
	a.render(w, r, http.StatusOK, a.page(r, "Checkpoints", "runs"), views.CheckpointsCard(c))
}

func nullFloat(v float64) sql.NullFloat64 { return sql.NullFloat64{Float64: v, Valid: true} }

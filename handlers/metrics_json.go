package handlers

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"

	"tunelab/store"
)

// JSON shapes the charts read (static/js/run-chart.js): the run page's data island, the
// history endpoint and the SSE "metrics" events.

// maxChartPoints is how many points one series may draw per request; the envelope keeps
// every spike visible at any zoom.
const maxChartPoints = 2000

// islandPoints is the drawn points the run page embeds over all its series.
const islandPoints = 20_000

// seriesJSON is one metric's drawn history: "line" rows are [step, value, at_ms],
// "envelope" rows [step_lo, step_hi, min, max], "nonfinite" rows [step, kind, at_ms].
type seriesJSON struct {
	Name        string  `json:"name"`
	PointsTotal int64   `json:"points_total"`
	FromStep    int     `json:"from_step"`
	ToStep      int     `json:"to_step"`
	Level       int     `json:"level"`
	Line        [][]any `json:"line"`
	Envelope    [][]any `json:"envelope"`
	NonFinite   [][]any `json:"nonfinite"`
	Last        []any   `json:"last"`
	Best        []any   `json:"best"`
	BestIs      string  `json:"best_is"`
}

func historyJSON(h store.History) seriesJSON {
	out := seriesJSON{Name: h.Name, PointsTotal: h.Points, FromStep: h.From, ToStep: h.To, Level: h.Level,
		Line: make([][]any, 0, len(h.Line)), Envelope: make([][]any, 0, len(h.Envelope)), NonFinite: make([][]any, 0, len(h.NonFinite))}
	for _, p := range h.Line {
		out.Line = append(out.Line, []any{p.Step, p.Value, p.At.UnixMilli()})
	}
	for _, b := range h.Envelope {
		out.Envelope = append(out.Envelope, []any{b.StepLo, b.StepHi, b.Min, b.Max})
	}
	for _, n := range h.NonFinite {
		out.NonFinite = append(out.NonFinite, []any{n.Step, n.Kind, n.At.UnixMilli()})
	}
	if h.Last != nil {
		out.Last = []any{h.LastStep, *h.Last}
	}
	if h.Best != nil {
		out.Best = []any{h.Best.Step, h.Best.Value}
		out.BestIs = "min"
		if h.BestIsMax {
			out.BestIs = "max"
		}
	}
	return out
}

// runMetricsJSON is the run page's data island.
type runMetricsJSON struct {
	RunID       int64        `json:"run_id"`
	AfterSeq    int64        `json:"after_seq"`
	HistoryURL  string       `json:"history_url"`
	CreatedAtMS int64        `json:"created_at_ms"`
	StartedAtMS *int64       `json:"started_at_ms"`
	Series      []seriesJSON `json:"series"`
}

// runMetrics builds the island: every series downsampled, and the sequence number the
// live stream continues from (read first, so no point falls between the two).
func (a *app) runMetrics(ctx context.Context, run store.Run) (runMetricsJSON, error) {
	seq, err := a.store.RunMetricSeq(ctx, run.ID)
	if err != nil {
		return runMetricsJSON{}, err
	}
	out := runMetricsJSON{RunID: run.ID, HistoryURL: fmt.Sprintf("/runs/%d/metrics/history", run.ID),
		CreatedAtMS: run.CreatedAt.UnixMilli(), Series: []seriesJSON{}}
	if !run.FirstHeartbeat.IsZero() {
		ms := run.FirstHeartbeat.UnixMilli()
		out.StartedAtMS = &ms
	}
	series, err := a.store.MetricSeries(ctx, run.ID)
	if err != nil {
		return runMetricsJSON{}, err
	}
	// The page stays light with many metrics: the first view shares a budget of points
	// (zooming fetches finer data anyway).
	perSeries := maxChartPoints
	if len(series) > 0 {
		perSeries = min(maxChartPoints, max(500, islandPoints/len(series)))
	}
	for _, s := range series {
		h, err := a.store.MetricHistory(ctx, run.ID, s.Name, nil, nil, perSeries)
		if errors.Is(err, store.ErrNoSeries) {
			continue
		}
		if err != nil {
			return runMetricsJSON{}, err
		}
		out.Series = append(out.Series, historyJSON(h))
	}
	// Points stored after seq was read arrive over the stream; any the history already
	// holds are skipped by the page (it keeps the highest seq it has seen per metric).
	out.AfterSeq = seq
	return out, nil
}

// livePointJSON is one point of an SSE "metrics" event; value is null when not finite.
type livePointJSON struct {
	Seq   int64    `json:"seq"`
	Name  string   `json:"name"`
	Step  int      `json:"step"`
	Value *float64 `json:"value"`
	Kind  string   `json:"kind,omitempty"`
	At    int64    `json:"at"`
}

func livePoints(pts []store.MetricPoint) []livePointJSON {
	out := make([]livePointJSON, len(pts))
	for i, p := range pts {
		out[i] = livePointJSON{Seq: p.Seq, Name: p.Name, Step: p.Step, Kind: p.Kind, At: p.At.UnixMilli()}
		if p.Kind == store.KindFinite && !math.IsNaN(p.Value) {
			v := p.Value
			out[i].Value = &v
		}
	}
	return out
}

// metricHistory answers a chart's zoom: one metric between two steps, at most
// maxChartPoints drawn points (GET /runs/{id}/metrics/history?name=&from=&to=).
func (a *app) metricHistory(w http.ResponseWriter, r *http.Request) {
	run, ok := a.runByPath(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	name := q.Get("name")
	if !metricName.MatchString(name) {
		apiError(w, http.StatusBadRequest, "invalid_field", "name must be one of the run's metric names.")
		return
	}
	var bounds [2]*int
	for i, key := range []string{"from", "to"} {
		if v := q.Get(key); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > maxStep {
				apiError(w, http.StatusBadRequest, "invalid_field", key+" must be a step from 0 to 1000000000.")
				return
			}
			bounds[i] = &n
		}
	}
	h, err := a.store.MetricHistory(r.Context(), run.ID, name, bounds[0], bounds[1], maxChartPoints)
	if errors.Is(err, store.ErrNoSeries) {
		apiError(w, http.StatusNotFound, "not_found", "This run has not logged "+name+".")
		return
	}
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	w.Header().Set("Vary", "Cookie")
	writeJSON(w, http.StatusOK, historyJSON(h))
}

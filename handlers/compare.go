package handlers

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"tunelab/gpu"
	"tunelab/store"
	"tunelab/views"
)

// maxCompared bounds how many runs one compare chart overlays.
const maxCompared = 8

// compareRunJSON is one run in the compare page's data island.
type compareRunJSON struct {
	RunID      int64       `json:"run_id"`
	Label      string      `json:"label"`
	URL        string      `json:"url"`
	HistoryURL string      `json:"history_url"`
	StartedAt  *int64      `json:"started_at_ms"` // first heartbeat: relative time counts from it
	Series     *seriesJSON `json:"series"`        // null: a live run that has not logged the metric yet
	// A run that has not ended: its status in words, and its event stream (the run page's),
	// which continues after the last point the island was built from.
	Live      string `json:"live,omitempty"`
	EventsURL string `json:"events_url,omitempty"`
}

type compareJSON struct {
	Metric string           `json:"metric"`
	Runs   []compareRunJSON `json:"runs"`
}

// showCompare overlays one metric of several of the person's runs
// (GET /compare?run=1&run=3&metric=loss), each line labelled by the run's name, with a
// table of their configurations that marks the settings that differ. The form offers the
// chosen runs and the 50 newest. Runs that have not ended are followed live: the island
// gives each its event stream (the run page's), and the page adds their new points.
func (a *app) showCompare(w http.ResponseWriter, r *http.Request) {
	u, _ := userFrom(r.Context())
	q := r.URL.Query()
	var ids []int64
	chosen := map[int64]bool{}
	for _, v := range q["run"] {
		if id, err := strconv.ParseInt(v, 10, 64); err == nil && len(chosen) < maxCompared && !chosen[id] {
			chosen[id] = true
			ids = append(ids, id)
		}
	}
	// The chosen runs in full (the configuration table shows every setting); at most
	// maxCompared of them.
	var picked []store.Run
	for _, id := range ids {
		run, err := a.store.Run(r.Context(), u.ID, id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			a.serverError(w, r, err)
			return
		}
		picked = append(picked, run)
	}
	recent, err := a.store.ListRuns(r.Context(), u.ID, store.RunFilter{Limit: runsPerPage})
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	runs := picked
	for _, run := range recent.Runs {
		if !chosen[run.ID] {
			runs = append(runs, run)
		}
	}
	metric := q.Get("metric")
	if metric == "" {
		metric = "loss"
	}
	c := views.Compare{Metric: metric, Action: "/compare"}
	data := compareJSON{Metric: metric, Runs: []compareRunJSON{}}
	names := map[string]bool{}
	offer := a.runs.Backend.Offer()
	for _, run := range runs {
		label := run.Name
		c.Runs = append(c.Runs, views.CompareRun{ID: strconv.FormatInt(run.ID, 10), Label: label,
			URL: fmt.Sprintf("/runs/%d", run.ID), Checked: chosen[run.ID]})
		if !chosen[run.ID] {
			continue
		}
		series, err := a.store.MetricSeries(r.Context(), run.ID)
		if err != nil {
			a.serverError(w, r, err)
			return
		}
		for _, s := range series {
			names[s.Name] = true
		}
		if !metricName.MatchString(metric) {
			continue
		}
		cr := compareRunJSON{RunID: run.ID, Label: label, URL: fmt.Sprintf("/runs/%d", run.ID),
			HistoryURL: fmt.Sprintf("/runs/%d/metrics/history", run.ID)}
		if !run.Final() {
			// The stream continues after the sequence read before the history, so no point
			// falls between the two (one in both is drawn once: the page keys points by step).
			seq, err := a.store.RunMetricSeq(r.Context(), run.ID)
			if err != nil {
				a.serverError(w, r, err)
				return
			}
			cr.Live = run.Status.Label()
			cr.EventsURL = fmt.Sprintf("/runs/%d/events?after=%d", run.ID, seq)
		}
		h, err := a.store.MetricHistory(r.Context(), run.ID, metric, nil, nil, maxChartPoints)
		switch {
		case errors.Is(err, store.ErrNoSeries) && cr.Live == "":
			c.Missing = append(c.Missing, label) // ended without this metric: named, not drawn
			continue
		case errors.Is(err, store.ErrNoSeries):
			// A live run gets a line (and a legend row) for the points still to come.
		case err != nil:
			a.serverError(w, r, err)
			return
		default:
			sj := historyJSON(h)
			cr.Series = &sj
		}
		if !run.FirstHeartbeat.IsZero() {
			ms := run.FirstHeartbeat.UnixMilli()
			cr.StartedAt = &ms
		}
		data.Runs = append(data.Runs, cr)
	}
	if len(names) == 0 {
		names["loss"] = true
	}
	for n := range names {
		c.Metrics = append(c.Metrics, n)
	}
	slices.Sort(c.Metrics)
	c.Data = data
	c.Configs = configTable(picked, offer)
	p := a.page(r, "Compare runs", "runs")
	p.Charts = true
	a.render(w, r, http.StatusOK, p, views.ComparePage(c))
}

// configTable lays the runs' settings side by side and marks the rows that differ.
func configTable(runs []store.Run, o gpu.Offer) views.ConfigTable {
	var t views.ConfigTable
	if len(runs) < 2 {
		return t
	}
	fields := []struct {
		label string
		value func(store.Run) string
	}{
		{"Dataset", func(r store.Run) string { return r.DatasetName }},
		{"Validation", func(r store.Run) string {
			if r.EvalDatasetID != 0 {
				return r.EvalDatasetName
			}
			return formatFloat(r.Config.ValidationSplit) + " % held out"
		}},
		{"Base model", func(r store.Run) string { return modelName(o, r.Config.BaseModel) }},
		{"Method", func(r store.Run) string { return r.Config.Method.Label() }},
		{"Epochs", func(r store.Run) string { return strconv.Itoa(r.Config.Epochs) }},
		{"Learning rate", func(r store.Run) string { return formatFloat(r.Config.LearningRate) }},
		{"Batch size", func(r store.Run) string { return strconv.Itoa(r.Config.BatchSize) }},
		{"LoRA rank / alpha", func(r store.Run) string {
			if !r.Config.UsesLoRA() {
				return "—"
			}
			return fmt.Sprintf("%d / %s", r.Config.LoRARank, formatFloat(r.Config.LoRAAlpha))
		}},
		{"Max sequence length", func(r store.Run) string { return strconv.Itoa(r.Config.MaxSeqLen) }},
		{"Seed", func(r store.Run) string { return strconv.FormatInt(r.Config.Seed, 10) }},
		{"Hardware", func(r store.Run) string { return r.Config.GPUType + " on " + r.Backend }},
		{"Tags", func(r store.Run) string {
			if len(r.Tags) == 0 {
				return "—"
			}
			return strings.Join(r.Tags, ", ")
		}},
	}
	if hasGPUs(o) {
		fields[len(fields)-2].label = "GPU type"
	}
	for _, r := range runs {
		col := views.ConfigRun{ID: strconv.FormatInt(r.ID, 10), Name: r.Name}
		if !r.Final() {
			col.Live = r.Status.Label()
		}
		t.Runs = append(t.Runs, col)
	}
	for _, f := range fields {
		row := views.ConfigRow{Label: f.label}
		for i, r := range runs {
			v := f.value(r)
			row.Values = append(row.Values, v)
			if i > 0 && v != row.Values[0] {
				row.Differs = true
			}
		}
		t.Rows = append(t.Rows, row)
	}
	return t
}

func formatMetric(v *float64) string {
	if v == nil {
		return "—"
	}
	return strconv.FormatFloat(*v, 'g', 4, 64)
}

package handlers

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"tunelab/store"
	"tunelab/views"
)

// maxCompared bounds how many runs one compare chart overlays.
const maxCompared = 8

// compareRunJSON is one run in the compare page's data island.
type compareRunJSON struct {
	RunID      int64      `json:"run_id"`
	Label      string     `json:"label"`
	URL        string     `json:"url"`
	HistoryURL string     `json:"history_url"`
	StartedAt  *int64     `json:"started_at_ms"` // first heartbeat: relative time counts from it
	Series     seriesJSON `json:"series"`
}

type compareJSON struct {
	Metric string           `json:"metric"`
	Runs   []compareRunJSON `json:"runs"`
}

// showCompare overlays one metric of several of the person's runs
// (GET /compare?run=1&run=3&metric=loss).
func (a *app) showCompare(w http.ResponseWriter, r *http.Request) {
	u, _ := userFrom(r.Context())
	runs, err := a.store.Runs(r.Context(), u.ID)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	q := r.URL.Query()
	chosen := map[int64]bool{}
	for _, v := range q["run"] {
		if id, err := strconv.ParseInt(v, 10, 64); err == nil && len(chosen) < maxCompared {
			chosen[id] = true
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
		label := fmt.Sprintf("Run %d · %s · %s", run.ID, methodLabel(run.Config.Method), modelName(offer, run.Config.BaseModel))
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
		h, err := a.store.MetricHistory(r.Context(), run.ID, metric, nil, nil, maxChartPoints)
		if errors.Is(err, store.ErrNoSeries) {
			continue
		}
		if err != nil {
			a.serverError(w, r, err)
			return
		}
		cr := compareRunJSON{RunID: run.ID, Label: label, URL: fmt.Sprintf("/runs/%d", run.ID),
			HistoryURL: fmt.Sprintf("/runs/%d/metrics/history", run.ID), Series: historyJSON(h)}
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
	p := a.page(r, "Compare runs", "runs")
	p.Charts = true
	a.render(w, r, http.StatusOK, p, views.ComparePage(c))
}

// runListMetric adds the last, min and max of the chosen metric to the run rows.
func (a *app) runListMetric(r *http.Request, l *views.RunList, runs []store.Run) error {
	metric := r.URL.Query().Get("metric")
	if metric != "" && !metricName.MatchString(metric) {
		metric = ""
	}
	l.Metric = metric
	names := map[string]bool{}
	for i, run := range runs {
		l.Items[i].ID = strconv.FormatInt(run.ID, 10)
		series, err := a.store.MetricSeries(r.Context(), run.ID)
		if err != nil {
			return err
		}
		l.Items[i].MetricLast, l.Items[i].MetricMin, l.Items[i].MetricMax = "—", "—", "—"
		for _, s := range series {
			names[s.Name] = true
			if s.Name != metric {
				continue
			}
			l.Items[i].MetricLast, l.Items[i].MetricMin, l.Items[i].MetricMax = formatMetric(s.Last), formatMetric(s.Min), formatMetric(s.Max)
		}
	}
	for n := range names {
		l.Metrics = append(l.Metrics, n)
	}
	slices.Sort(l.Metrics)
	if metric != "" {
		l.RefreshURL = "/runs?" + url.Values{"metric": {metric}}.Encode()
	}
	return nil
}

func formatMetric(v *float64) string {
	if v == nil {
		return "—"
	}
	return strconv.FormatFloat(*v, 'g', 4, 64)
}

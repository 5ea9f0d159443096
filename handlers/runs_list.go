package handlers

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/a-h/templ"

	"tunelab/store"
	"tunelab/views"
)

// runsPerPage is how many runs one page of the run list shows.
const runsPerPage = 50

// maxLiveRows bounds the runs one poll of the run list asks about (a page's worth).
const maxLiveRows = runsPerPage

// runListQuery reads the list's GET parameters (status, dataset, method, q, metric,
// before, after); unknown values are ignored rather than refused, as a stale bookmark
// should still show a list. keep is the query that the page's links carry on.
func runListQuery(r *http.Request) (f store.RunFilter, metric string, keep url.Values) {
	q := r.URL.Query()
	keep = url.Values{}
	if s := store.RunStatus(q.Get("status")); s.Valid() {
		f.Status = s
		keep.Set("status", string(s))
	}
	if id, err := strconv.ParseInt(q.Get("dataset"), 10, 64); err == nil && id > 0 {
		f.DatasetID = id
		keep.Set("dataset", strconv.FormatInt(id, 10))
	}
	if m := store.Method(q.Get("method")); m.Valid() {
		f.Method = m
		keep.Set("method", string(m))
	}
	if name := strings.TrimSpace(q.Get("q")); name != "" && utf8.ValidString(name) {
		if utf8.RuneCountInString(name) > store.MaxRunNameLen {
			name = string([]rune(name)[:store.MaxRunNameLen])
		}
		f.Name = name
		keep.Set("q", name)
	}
	if m := q.Get("metric"); m != "" && metricName.MatchString(m) {
		metric = m
		keep.Set("metric", m)
	}
	if c, ok := store.ParseRunCursor(q.Get("after")); ok {
		f.After = &c
	} else if c, ok := store.ParseRunCursor(q.Get("before")); ok {
		f.Before = &c
	}
	f.Limit = runsPerPage
	return f, metric, keep
}

// withParam is "/path?keep&key=value".
func withParam(path string, keep url.Values, key, value string) string {
	v := url.Values{}
	for k, vs := range keep {
		v[k] = vs
	}
	if key != "" {
		v.Set(key, value)
	}
	if len(v) == 0 {
		return path
	}
	return path + "?" + v.Encode()
}

// listRuns shows one page of the person's runs (GET /runs): 50 at a time by keyset
// pagination, filtered by status, dataset and method, searched by name prefix.
func (a *app) listRuns(w http.ResponseWriter, r *http.Request) {
	u, _ := userFrom(r.Context())
	f, metric, keep := runListQuery(r)
	ctx := r.Context()
	page, err := a.store.ListRuns(ctx, u.ID, f)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	offer := a.runs.Backend.Offer()
	l := views.RunList{Metric: metric, TimeLabel: timeLabel(offer), Methods: methodWords(offer, false), Filtered: f.Status != "" || f.DatasetID != 0 || f.Method != "" || f.Name != ""}
	l.Filter = views.RunListFilter{Status: string(f.Status), Method: string(f.Method), Query: f.Name}
	if f.DatasetID != 0 {
		l.Filter.Dataset = strconv.FormatInt(f.DatasetID, 10)
	}
	if len(page.Runs) > 0 {
		if page.HasOlder {
			l.OlderURL = withParam("/runs", keep, "before", page.Runs[len(page.Runs)-1].Cursor().String())
		}
		if page.HasNewer {
			l.NewerURL = withParam("/runs", keep, "after", page.Runs[0].Cursor().String())
		}
	}
	if f.Before != nil || f.After != nil {
		l.FirstURL = withParam("/runs", keep, "", "")
		if len(page.Runs) == 0 {
			l.NewerURL = l.FirstURL // an emptied page still leads back
		}
	}
	rows, liveURL, err := a.runRows(r, page.Runs, metric, nil)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	l.Items, l.LiveURL, l.Live = rows, liveURL, liveURL != ""
	ids := make([]int64, len(page.Runs))
	for i, run := range page.Runs {
		ids[i] = run.ID
	}
	if l.Metrics, err = a.store.MetricNamesOf(ctx, ids); err != nil {
		a.serverError(w, r, err)
		return
	}
	if wantsFragment(r) {
		// Only the table is swapped: the filters and choices are already on the page.
		a.renderWith(w, r, http.StatusOK, views.Page{}, nil, views.RunTable(l))
		return
	}
	if len(page.Runs) == 0 && !l.Filtered {
		n, err := a.store.DatasetCount(ctx, u.ID)
		if err != nil {
			a.serverError(w, r, err)
			return
		}
		l.HasDatasets = n > 0
	}
	choices, err := a.store.DatasetChoices(ctx, u.ID, 500)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	for _, d := range choices {
		l.Filter.Datasets = append(l.Filter.Datasets, views.Option{Value: strconv.FormatInt(d.ID, 10), Label: d.Name})
	}
	for _, s := range store.RunStatuses {
		l.Filter.Statuses = append(l.Filter.Statuses, views.Option{Value: string(s), Label: s.Label()})
	}
	for _, m := range offer.Methods {
		l.Filter.Methods = append(l.Filter.Methods, views.Option{Value: string(m), Label: m.Label()})
	}
	a.renderWith(w, r, http.StatusOK, a.page(r, "Runs", "runs"), views.RunsPage(l), views.RunTable(l))
}

// liveState is how a live row looked when it was last sent: "id:status:step".
func liveState(run store.Run) string {
	return fmt.Sprintf("%d:%s:%d", run.ID, run.Status, run.Step)
}

// runRows turns runs into table rows (with the chosen metric, in one query) and returns
// the poll URL of those still live; sent, when set, keeps only the rows that changed
// since the states the poll carried (a running run always changes: its GPU time ticks).
func (a *app) runRows(r *http.Request, runs []store.Run, metric string, sent map[int64]string) ([]views.RunRow, string, error) {
	var metrics map[int64]store.RunMetricSummary
	if metric != "" {
		ids := make([]int64, len(runs))
		for i, run := range runs {
			ids[i] = run.ID
		}
		var err error
		if metrics, err = a.store.RunsMetric(r.Context(), ids, metric); err != nil {
			return nil, "", err
		}
	}
	now := a.now()
	offer := a.runs.Backend.Offer()
	book, gpuTypes, err := a.liveCosts(r, runs, now)
	if err != nil {
		return nil, "", err
	}
	live := url.Values{}
	rows := make([]views.RunRow, 0, len(runs))
	for _, run := range runs {
		if !run.Final() {
			live.Add("run", liveState(run))
		}
		if sent != nil && sent[run.ID] == liveState(run) && run.Status != store.RunRunning {
			continue
		}
		row := runRow(run, offer, now)
		if gt, ok := gpuTypes[run.ID]; ok {
			run.Config.GPUType = gt
			row.Cost = costText(book.Run(run, projectedSeconds(run, run.Step, now)))
		}
		row.MetricLast, row.MetricMin, row.MetricMax = "—", "—", "—"
		if m, ok := metrics[run.ID]; ok {
			row.MetricLast, row.MetricMin, row.MetricMax = formatMetric(m.Last), formatMetric(m.Min), formatMetric(m.Max)
		}
		rows = append(rows, row)
	}
	if len(live) == 0 {
		return rows, "", nil
	}
	if metric != "" {
		live.Set("metric", metric)
	}
	return rows, "/runs/live?" + live.Encode(), nil
}

// liveRuns answers the run list's poll (GET /runs/live?run=id:status:step&metric=):
// only the rows of the page's live runs that changed, each in a partial that replaces it, and a
// fresh poller for those still live.
func (a *app) liveRuns(w http.ResponseWriter, r *http.Request) {
	u, _ := userFrom(r.Context())
	q := r.URL.Query()
	sent := map[int64]string{}
	var ids []int64
	for _, v := range q["run"] {
		idText, _, _ := strings.Cut(v, ":")
		id, err := strconv.ParseInt(idText, 10, 64)
		if err != nil || id <= 0 || len(ids) == maxLiveRows {
			continue
		}
		if _, dup := sent[id]; !dup {
			ids = append(ids, id)
		}
		sent[id] = v
	}
	metric := q.Get("metric")
	if metric != "" && !metricName.MatchString(metric) {
		metric = ""
	}
	runs, err := a.store.RunsByID(r.Context(), u.ID, ids)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	rows, liveURL, err := a.runRows(r, runs, metric, sent)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	a.renderBare(w, r, views.RunLiveRowsView(views.RunLiveRows{Metric: metric, Rows: rows, LiveURL: liveURL}))
}

// renderBare writes a fragment that is never a page of its own (a poll's answer).
func (a *app) renderBare(w http.ResponseWriter, r *http.Request, c templ.Component) {
	var buf bytes.Buffer
	if err := c.Render(r.Context(), &buf); err != nil {
		a.serverError(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	buf.WriteTo(w)
}

// editRun renames a run and sets its tags and notes (POST /runs/{id}/edit, fields name,
// tags, notes); bad input comes back 422 on the run page with messages beside the fields.
func (a *app) editRun(w http.ResponseWriter, r *http.Request) {
	run, ok := a.runByPath(w, r)
	if !ok {
		return
	}
	if err := r.ParseForm(); err != nil {
		a.badRequest(w, r, "The form could not be read; reload the page and try again.")
		return
	}
	typedTags := r.PostFormValue("tags")
	labels := store.RunLabels{Name: strings.TrimSpace(r.PostFormValue("name")), Tags: store.ParseTags(typedTags),
		Notes: strings.TrimSpace(strings.ReplaceAll(r.PostFormValue("notes"), "\r\n", "\n"))}
	errs := labels.Validate()
	if len(errs) == 0 {
		err := a.store.SetRunLabels(r.Context(), run.UserID, run.ID, labels)
		if errors.Is(err, store.ErrNotFound) {
			a.notFound(w, r)
			return
		}
		if err != nil {
			a.serverError(w, r, err)
			return
		}
		redirect(w, r, fmt.Sprintf("/runs/%d", run.ID))
		return
	}
	a.renderRunPage(w, r, run, http.StatusUnprocessableEntity, func(d *views.RunDetail) {
		d.Labels.Name, d.Labels.Tags, d.Labels.Notes, d.Labels.Errors = labels.Name, typedTags, labels.Notes, errs
	})
}

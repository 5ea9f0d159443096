package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"

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

// metricHistory answers a chart's zoom: one metric between two steps, at most
// maxChartPoints drawn points (GET /runs/{id}/metrics/history?name=&from=&to=).
func (a *app) metricHistory(w http.ResponseWriter, r *http.Request) {
	run, ok := a.runByPath(w, r)
	if !ok {
		return
	}
	w.Header().Set("Vary", "Cookie")
	a.writeMetricHistory(w, r, run.ID, a.serverError)
}

// writeMetricHistory answers ?name=&from=&to= of one run's metric as JSON (the chart's
// history and the API's); failed reports an unexpected error.
func (a *app) writeMetricHistory(w http.ResponseWriter, r *http.Request, runID int64, failed func(http.ResponseWriter, *http.Request, error)) {
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
	h, err := a.store.MetricHistory(r.Context(), runID, name, bounds[0], bounds[1], maxChartPoints)
	if errors.Is(err, store.ErrNoSeries) {
		apiError(w, http.StatusNotFound, "not_found", "This run has not logged "+name+".")
		return
	}
	if err != nil {
		failed(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, historyJSON(h))
}

// Metric batches in and live frames out, without reflection: a batch of the usual shape
// ({"points":[{"name":..,"step":..,"value":..},...]}, no escapes, each key once) is read by
// a small strict scanner; anything else (or anything odd) goes through encoding/json, which
// also words the error. Both give the same points.

// metricInput is one point as sent, before validation.
type metricInput struct {
	Name    string
	Step    int
	HasStep bool
	Value   float64
	Kind    string
	ValueOK bool
}

// scanMetricsBatch reads a body of the usual shape; ok is false when it is not one (the
// caller then decodes it with encoding/json). names interns metric names across points.
func scanMetricsBatch(body []byte) (in []metricInput, ok bool) {
	s := jsonScanner{b: body}
	names := map[string]string{}
	if !s.lit('{') || !s.key("points") || !s.lit('[') {
		return nil, false
	}
	in = make([]metricInput, 0, len(body)/40)
	if !s.peek(']') {
		for {
			p, ok := s.point(names)
			if !ok {
				return nil, false
			}
			in = append(in, p)
			if s.lit(',') {
				continue
			}
			break
		}
	}
	if !s.lit(']') || !s.lit('}') {
		return nil, false
	}
	s.ws()
	return in, s.i == len(s.b)
}

type jsonScanner struct {
	b []byte
	i int
}

func (s *jsonScanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *jsonScanner) peek(c byte) bool { s.ws(); return s.i < len(s.b) && s.b[s.i] == c }

func (s *jsonScanner) lit(c byte) bool {
	if s.peek(c) {
		s.i++
		return true
	}
	return false
}

// str reads a string without escapes or control characters and returns its bytes.
func (s *jsonScanner) str() ([]byte, bool) {
	if !s.lit('"') {
		return nil, false
	}
	start := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return s.b[start : s.i-1], true
		case c == '\\' || c < 0x20 || c >= 0x80:
			return nil, false
		}
		s.i++
	}
	return nil, false
}

// key reads "name": (the exact lower-case key; encoding/json would also match others).
func (s *jsonScanner) key(name string) bool {
	k, ok := s.str()
	return ok && string(k) == name && s.lit(':')
}

// number reads a JSON number's bytes (strict grammar).
func (s *jsonScanner) number() ([]byte, bool) {
	s.ws()
	start, b := s.i, s.b
	i := s.i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return nil, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return nil, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return nil, false
		}
	}
	s.i = i
	return b[start:i], true
}

// point reads {"name":..,"step":..,"value":..} with each key exactly once, in any order.
func (s *jsonScanner) point(names map[string]string) (metricInput, bool) {
	var p metricInput
	if !s.lit('{') {
		return p, false
	}
	var seen [3]bool
	for f := 0; f < 3; f++ {
		if f > 0 && !s.lit(',') {
			return p, false
		}
		k, ok := s.str()
		if !ok || !s.lit(':') {
			return p, false
		}
		switch string(k) {
		case "name":
			if seen[0] {
				return p, false
			}
			seen[0] = true
			v, ok := s.str()
			if !ok {
				return p, false
			}
			name, found := names[string(v)]
			if !found {
				name = string(v)
				names[name] = name
			}
			p.Name = name
		case "step":
			if seen[1] {
				return p, false
			}
			seen[1] = true
			v, ok := s.number()
			if !ok || len(v) > 12 {
				return p, false
			}
			n, err := strconv.Atoi(string(v))
			if err != nil {
				return p, false // 1.5 or 1e3: encoding/json words the refusal
			}
			p.Step, p.HasStep = n, true
		case "value":
			if seen[2] {
				return p, false
			}
			seen[2] = true
			if s.peek('"') {
				v, ok := s.str()
				if !ok {
					return p, false
				}
				p.Kind, p.ValueOK = nonFiniteKind(string(v))
				if !p.ValueOK {
					return p, false
				}
				break
			}
			v, ok := s.number()
			if !ok {
				return p, false
			}
			f, err := strconv.ParseFloat(string(v), 64)
			if err != nil {
				return p, false
			}
			p.Value, p.ValueOK = f, true
		default:
			return p, false
		}
	}
	return p, s.lit('}')
}

// nonFiniteKind reads "NaN", "Infinity" or "-Infinity" (any case, "inf" too).
func nonFiniteKind(s string) (string, bool) {
	switch strings.ToLower(s) {
	case "nan":
		return store.KindNaN, true
	case "infinity", "inf", "+infinity", "+inf":
		return store.KindPosInf, true
	case "-infinity", "-inf":
		return store.KindNegInf, true
	}
	return "", false
}

// validMetricName is metricName.MatchString without the regexp machinery.
func validMetricName(s string) bool {
	if len(s) == 0 || len(s) > 64 || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '/' || c == '-') {
			return false
		}
	}
	return true
}

// appendLivePoints writes what json.Marshal(metricsMessage{livePoints(pts)}) writes.
func appendLivePoints(b []byte, pts []store.MetricPoint) []byte {
	b = append(b, `{"points":[`...)
	for i, p := range pts {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"seq":`...)
		b = strconv.AppendInt(b, p.Seq, 10)
		b = append(b, `,"name":`...)
		b = appendJSONString(b, p.Name)
		b = append(b, `,"step":`...)
		b = strconv.AppendInt(b, int64(p.Step), 10)
		b = append(b, `,"value":`...)
		if p.Kind == store.KindFinite && !math.IsNaN(p.Value) && !math.IsInf(p.Value, 0) {
			b = appendJSONFloat(b, p.Value)
		} else {
			b = append(b, "null"...)
		}
		if p.Kind != "" {
			b = append(b, `,"kind":`...)
			b = appendJSONString(b, p.Kind)
		}
		b = append(b, `,"at":`...)
		b = strconv.AppendInt(b, p.At.UnixMilli(), 10)
		b = append(b, '}')
	}
	return append(b, "]}"...)
}

// appendJSONString quotes s as encoding/json does; metric names and kinds need no escapes,
// anything else goes through encoding/json.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendJSONFloat formats a finite float64 as encoding/json does (ES6 number form).
func appendJSONFloat(b []byte, f float64) []byte {
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

package handlers

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"tunelab/store"
)

// exportMetrics streams every point of a run at full resolution, in the order stored.
func (a *app) exportMetrics(w http.ResponseWriter, r *http.Request, format string) {
	run, ok := a.runByPath(w, r)
	if !ok {
		return
	}
	a.recordEvent(r, store.EventMetricsExported, run.UserID, fmt.Sprintf("run %d, %s", run.ID, format))
	a.audit(r, store.AuditMetricsExported, run.UserID, run.UserID, fmt.Sprintf("run %d, %s", run.ID, format))
	h := w.Header()
	h.Set("Cache-Control", "private, no-store")
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="run-%d-metrics.%s"`, run.ID, format))
	bw := bufio.NewWriterSize(w, 64<<10)
	defer bw.Flush() // runs after the CSV writer's own flush below
	var write func(store.MetricPoint) error
	switch format {
	case "csv":
		h.Set("Content-Type", "text/csv; charset=utf-8")
		cw := csv.NewWriter(bw)
		cw.Write([]string{"name", "step", "value", "time"})
		write = func(p store.MetricPoint) error {
			return cw.Write([]string{p.Name, strconv.Itoa(p.Step), exportValue(p), p.At.Format(time.RFC3339Nano)})
		}
		defer cw.Flush()
	default:
		h.Set("Content-Type", "application/x-ndjson")
		enc := json.NewEncoder(bw)
		write = func(p store.MetricPoint) error {
			// JSON has no NaN: a non-finite value is null with its kind beside it.
			row := struct {
				Name  string   `json:"name"`
				Step  int      `json:"step"`
				Value *float64 `json:"value"`
				Kind  string   `json:"kind,omitempty"`
				Time  string   `json:"time"`
			}{Name: p.Name, Step: p.Step, Kind: p.Kind, Time: p.At.Format(time.RFC3339Nano)}
			if p.Kind == store.KindFinite {
				row.Value = &p.Value
			}
			return enc.Encode(row)
		}
	}
	err := a.store.ExportMetrics(r.Context(), run.ID, write)
	if err != nil && r.Context().Err() == nil {
		a.log.ErrorContext(r.Context(), "metrics export", "run", run.ID, "err", err)
	}
}

func (a *app) exportMetricsCSV(w http.ResponseWriter, r *http.Request) { a.exportMetrics(w, r, "csv") }
func (a *app) exportMetricsJSONL(w http.ResponseWriter, r *http.Request) {
	a.exportMetrics(w, r, "jsonl")
}

// exportValue writes a value as CSV readers expect: NaN, +Inf, -Inf for non-finite ones.
func exportValue(p store.MetricPoint) string {
	switch p.Kind {
	case store.KindNaN:
		return "NaN"
	case store.KindPosInf:
		return "+Inf"
	case store.KindNegInf:
		return "-Inf"
	}
	return strconv.FormatFloat(p.Value, 'g', -1, 64)
}

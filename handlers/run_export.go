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

// exportPage is how many points one store read brings; the export streams page by page,
// so memory stays flat for runs of millions of points.
const exportPage = 10_000

// exportMetrics streams every point of a run at full resolution, in the order stored.
func (a *app) exportMetrics(w http.ResponseWriter, r *http.Request, format string) {
	run, ok := a.runByPath(w, r)
	if !ok {
		return
	}
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
			return cw.Write([]string{p.Name, strconv.Itoa(p.Step), strconv.FormatFloat(p.Value, 'g', -1, 64), p.At.Format(time.RFC3339Nano)})
		}
		defer cw.Flush()
	default:
		h.Set("Content-Type", "application/x-ndjson")
		enc := json.NewEncoder(bw)
		write = func(p store.MetricPoint) error {
			return enc.Encode(struct {
				Name  string  `json:"name"`
				Step  int     `json:"step"`
				Value float64 `json:"value"`
				Time  string  `json:"time"`
			}{p.Name, p.Step, p.Value, p.At.Format(time.RFC3339Nano)})
		}
	}
	var after int64
	for {
		pts, err := a.store.Metrics(r.Context(), run.ID, after, exportPage)
		if err != nil {
			a.log.ErrorContext(r.Context(), "metrics export", "run", run.ID, "err", err)
			return
		}
		for _, p := range pts {
			if err := write(p); err != nil {
				return
			}
		}
		if len(pts) < exportPage {
			return
		}
		after = pts[len(pts)-1].ID
	}
}

func (a *app) exportMetricsCSV(w http.ResponseWriter, r *http.Request) { a.exportMetrics(w, r, "csv") }
func (a *app) exportMetricsJSONL(w http.ResponseWriter, r *http.Request) {
	a.exportMetrics(w, r, "jsonl")
}

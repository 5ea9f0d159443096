package handlers

import (
	"bufio"
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"time"

	"tunelab/store"
	"tunelab/views"
)

// SSE stream of one run: unnamed messages carry the re-rendered live panel (htmx swaps
// them in); "metrics" events carry chart points as JSON with id = the run's sequence
// number of the last point, so a reconnecting browser's Last-Event-ID resumes exactly
// after what it already has. A first connection starts after ?after= (the sequence the
// page's data island was built at).

const (
	// panelEvery limits panel re-renders per viewer; bursts of log lines coalesce.
	panelEvery = 500 * time.Millisecond
	// keepAliveEvery keeps proxies from closing an idle stream.
	keepAliveEvery = 15 * time.Second
	// historyChunk is how many stored points one history event carries.
	historyChunk = 2000
)

func (a *app) runEvents(w http.ResponseWriter, r *http.Request) {
	run, ok := a.runByPath(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	rc := http.NewResponseController(w)
	rc.SetWriteDeadline(time.Time{}) // the server's WriteTimeout must not cut a live stream
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 256) // w buffers too; a 4 KB buffer here is held by every idle viewer
	flush := func() bool { return bw.Flush() == nil && rc.Flush() == nil }

	// Subscribe before reading history so nothing falls between the two; ids dedupe.
	events, unsubscribe := a.runs.Hub.Subscribe(run.ID)
	defer unsubscribe()
	a.ops.viewers.Inc()
	defer a.ops.viewers.Dec()

	// Where to start: the browser's Last-Event-ID on a reconnect, else ?after= from the
	// page's data island, else now (history comes from the island, not the stream).
	var lastSent int64
	switch after, id := r.URL.Query().Get("after"), r.Header.Get("Last-Event-ID"); {
	case id != "":
		lastSent, _ = strconv.ParseInt(id, 10, 64)
	case after != "":
		lastSent, _ = strconv.ParseInt(after, 10, 64)
	default:
		seq, err := a.store.RunMetricSeq(ctx, run.ID)
		if err != nil {
			a.log.ErrorContext(ctx, "run events", "run", run.ID, "err", err)
			return
		}
		lastSent = seq
	}
	ok, final := a.sendPanel(bw, r, run.ID)
	if !ok {
		return
	}
	for {
		pts, err := a.store.MetricsAfter(ctx, run.ID, lastSent, historyChunk)
		if err != nil {
			a.log.ErrorContext(ctx, "run events history", "run", run.ID, "err", err)
			return
		}
		if len(pts) == 0 {
			break
		}
		lastSent = writeMetrics(bw, pts)
		if len(pts) < historyChunk {
			break
		}
	}
	if final {
		// Everything is sent; "done" tells the page to close the stream, not reconnect.
		bw.WriteString("event: done\ndata: {}\n\n")
		flush()
		return
	}
	if !flush() {
		return
	}

	keepAlive := time.NewTicker(keepAliveEvery)
	defer keepAlive.Stop()
	var panelDue <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.stopping:
			return // the browser reconnects to the next server with Last-Event-ID
		case e, open := <-events:
			if !open {
				return // too slow: the browser reconnects with Last-Event-ID
			}
			switch e.Kind {
			case "metrics":
				if len(e.Metrics) > 0 && e.Metrics[0].Seq > lastSent && e.Frame != nil {
					// The common case: everything is new; send the shared frame as is.
					bw.Write(e.Frame)
					lastSent = e.Metrics[len(e.Metrics)-1].Seq
					break
				}
				fresh := e.Metrics[:0:0]
				for _, p := range e.Metrics {
					if p.Seq > lastSent {
						fresh = append(fresh, p)
					}
				}
				if len(fresh) > 0 {
					lastSent = writeMetrics(bw, fresh)
				}
			default:
				if panelDue == nil {
					panelDue = time.After(panelEvery)
				}
			}
		case <-panelDue:
			panelDue = nil
			ok, final := a.sendPanel(bw, r, run.ID)
			if !ok {
				return
			}
			if final {
				// Points the worker sent before finishing may still be on their way
				// through the hub; the store has them all.
				if pts, err := a.store.MetricsAfter(ctx, run.ID, lastSent, historyChunk); err == nil && len(pts) > 0 {
					lastSent = writeMetrics(bw, pts)
				}
				bw.WriteString("event: done\ndata: {}\n\n")
				flush()
				return
			}
		case <-keepAlive.C:
			bw.WriteString(": keep-alive\n\n")
		}
		if !flush() {
			return
		}
	}
}

func writeMetrics(bw *bufio.Writer, pts []store.MetricPoint) (lastID int64) {
	bw.Write(metricsFrame(pts))
	return pts[len(pts)-1].Seq
}

// metricsFrame encodes points (in seq order) as one SSE "metrics" event.
func metricsFrame(pts []store.MetricPoint) []byte {
	b := make([]byte, 0, 64+80*len(pts))
	b = append(b, "id: "...)
	b = strconv.AppendInt(b, pts[len(pts)-1].Seq, 10)
	b = append(b, "\nevent: metrics\ndata: "...)
	b = appendLivePoints(b, pts)
	return append(b, "\n\n"...)
}

// sendPanel renders the live panel and writes it as an unnamed SSE message; final says
// the run has ended. A run that was deleted (or vanished) ends the stream.
func (a *app) sendPanel(bw *bufio.Writer, r *http.Request, runID int64) (ok, final bool) {
	u, _ := userFrom(r.Context())
	run, err := a.store.Run(r.Context(), u.ID, runID)
	if err != nil {
		return false, false
	}
	live, err := a.runLive(r, run)
	if err != nil {
		a.log.ErrorContext(r.Context(), "run events panel", "run", runID, "err", err)
		return false, false
	}
	var buf bytes.Buffer
	if err := views.RunLivePanel(live).Render(r.Context(), &buf); err != nil {
		a.log.ErrorContext(r.Context(), "run events panel", "run", runID, "err", err)
		return false, false
	}
	for _, line := range strings.Split(strings.TrimRight(buf.String(), "\n"), "\n") {
		bw.WriteString("data: ")
		bw.WriteString(strings.TrimRight(line, "\r"))
		bw.WriteByte('\n')
	}
	bw.WriteByte('\n')
	return true, run.Final()
}

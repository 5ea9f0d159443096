package handlers

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"tunelab/gpu"
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

// runEvents serves the stream: it subscribes, finds where the browser's copy ends
// (resumePoint), catches it up from the store (replayRunEvents), and then follows the hub
// until the run ends or the viewer leaves (liveRunEvents).
//
// The request's goroutine lives as long as the viewer and keeps the biggest stack it ever
// grew to (the garbage collector halves an idle stack only when three quarters of it are
// unused). So everything deep runs on short-lived goroutines (onShortStack): the route's
// session and user look-ups and the opening (liveStream hands the open stream back to the
// request's goroutine), and the live loop's panel renders and session checks.
func (a *app) runEvents(w http.ResponseWriter, r *http.Request) {
	var s *runStream
	onShortStack(func() { s = a.openRunEvents(w, r) })
	if s == nil {
		return
	}
	if hand, ok := r.Context().Value(streamHandoffKey{}).(*streamHandoff); ok {
		hand.stream, hand.r = s, r // liveStream follows it on the request's goroutine
		return
	}
	defer s.close()
	a.liveRunEvents(s, r)
}

// liveStream wraps a live stream's route (middleware and all): the route runs on a
// short-lived goroutine up to the open stream, which the request's own goroutine then
// follows with a small stack.
//
// Over HTTP/1.x the open stream then leaves net/http altogether (detach): net/http keeps a
// 4 KB reader, a 4 KB writer, a 2 KB chunking buffer and a reading goroutine for every
// connection while its handler runs, which were most of an idle viewer's memory. The
// stream is answered unchunked, ended by closing the connection (as the Server-Sent Events
// specification suggests), so once open, the connection is taken over (Hijack), the
// handler returns, and a goroutine of its own follows the run with a 256-byte buffer.
// HTTP/2 cannot be taken over; such a stream stays on its request's goroutine.
func (a *app) liveStream(route http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hand := &streamHandoff{detach: r.ProtoMajor == 1}
		r = r.WithContext(context.WithValue(r.Context(), streamHandoffKey{}, hand))
		onShortStack(func() { route.ServeHTTP(w, r) })
		if hand.stream == nil {
			return
		}
		if hand.detach && a.detach(hand.stream, hand.r) {
			return
		}
		defer hand.stream.close()
		a.liveRunEvents(hand.stream, hand.r)
	})
}

type streamHandoffKey struct{}

// streamHandoff carries an open stream, and the request as the route's middleware made it
// (session, user), from the route back to liveStream. detach asks the route to answer so
// that the connection can be taken over.
type streamHandoff struct {
	stream *runStream
	r      *http.Request
	detach bool
}

// streamWriteTimeout bounds one write to a taken-over connection: a viewer that stopped
// reading is let go instead of holding its goroutine.
const streamWriteTimeout = time.Minute

// detach takes the open stream's connection over from net/http and follows the run on a
// goroutine of its own. It reports false (nothing changed) when the connection cannot be
// taken over; the caller then follows the stream itself.
func (a *app) detach(s *runStream, r *http.Request) bool {
	conn, _, err := s.rc.Hijack()
	if err != nil {
		return false
	}
	// Everything is flushed (openRunEvents ends with a flush), so the buffered reader and
	// writer net/http hands over hold nothing and are dropped with the handler.
	s.bw.Reset(conn)
	s.rc, s.conn = nil, conn
	// The request's context ends when its handler returns; the stream's ends when the
	// viewer closes the connection (or sends anything: an event stream's client never
	// does), keeping the request's values (session, user).
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	r = r.WithContext(ctx)
	a.detached.Add(1)
	go func() {
		defer a.detached.Done()
		defer conn.Close()
		defer cancel()
		defer s.close()
		go func() {
			var b [1]byte
			conn.Read(b[:])
			cancel()
		}()
		a.liveRunEvents(s, r)
	}()
	return true
}

// runStream is an open stream of one run, following the hub.
type runStream struct {
	runID    int64
	bw       *bufio.Writer
	rc       *http.ResponseController // nil once detached
	conn     net.Conn                 // the taken-over connection, once detached
	events   <-chan *gpu.Event
	lastSent int64
	closers  []func() // in the order to call them
}

func (s *runStream) flush() bool {
	if s.conn != nil {
		s.conn.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		return s.bw.Flush() == nil
	}
	return s.bw.Flush() == nil && s.rc.Flush() == nil
}

func (s *runStream) close() {
	for _, c := range s.closers {
		c()
	}
}

// openRunEvents answers the stream's head, subscribes and catches the viewer up. It returns
// nil when the stream is already over (refused, the run ended and everything is sent, the
// viewer left, or the store failed).
func (a *app) openRunEvents(w http.ResponseWriter, r *http.Request) (open *runStream) {
	run, ok := a.runByPath(w, r)
	if !ok {
		return nil
	}
	release, ok := a.streams.acquire(run.UserID, a.cfg.StreamsQuota)
	if !ok {
		a.refuseStream(w, r)
		return nil
	}
	s := &runStream{runID: run.ID, rc: http.NewResponseController(w), closers: []func(){release}}
	defer func() {
		if open == nil { // over already, or a panic
			s.close()
		}
	}()
	s.rc.SetWriteDeadline(time.Time{}) // the server's WriteTimeout must not cut a live stream
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	if hand, ok := r.Context().Value(streamHandoffKey{}).(*streamHandoff); ok && hand.detach {
		// Unchunked, ended by closing the connection (net/http sends Connection: close),
		// so the connection can be taken over once open (liveStream).
		h.Set("Transfer-Encoding", "identity")
	}
	w.WriteHeader(http.StatusOK)
	s.bw = bufio.NewWriterSize(w, 256) // w buffers too; a 4 KB buffer here is held by every idle viewer

	// Subscribe before reading history so nothing falls between the two; ids dedupe.
	events, unsubscribe := a.runs.Hub.Subscribe(run.ID)
	s.events = events
	a.ops.viewers.Inc()
	s.closers = append(s.closers, unsubscribe, a.ops.viewers.Dec)
	slices.Reverse(s.closers)

	after, err := a.resumePoint(r, run.ID)
	if err != nil {
		a.log.ErrorContext(r.Context(), "run events", "run", run.ID, "err", err)
		return nil
	}
	lastSent, final, ok := a.replayRunEvents(s.bw, r, run.ID, after)
	s.lastSent = lastSent
	if !ok {
		return nil
	}
	if final {
		// Everything is sent; "done" tells the page to close the stream, not reconnect.
		s.bw.WriteString("event: done\ndata: {}\n\n")
		s.flush()
		return nil
	}
	if !s.flush() {
		return nil
	}
	return s
}

// resumePoint is the sequence number the stream continues after: the browser's
// Last-Event-ID on a reconnect, else ?after= from the page's data island, else the run's
// latest (history then comes from the island, not the stream).
func (a *app) resumePoint(r *http.Request, runID int64) (int64, error) {
	switch after, id := r.URL.Query().Get("after"), r.Header.Get("Last-Event-ID"); {
	case id != "":
		seq, _ := strconv.ParseInt(id, 10, 64)
		return seq, nil
	case after != "":
		seq, _ := strconv.ParseInt(after, 10, 64)
		return seq, nil
	}
	return a.store.RunMetricSeq(r.Context(), runID)
}

// replayRunEvents catches a viewer up: the live panel as it is now, then every stored point
// after the resume point, in chunks. It returns the last sequence number sent, whether the
// run has ended, and false when the stream should end (the run is gone or the store failed).
func (a *app) replayRunEvents(bw *bufio.Writer, r *http.Request, runID, after int64) (lastSent int64, final, ok bool) {
	lastSent = after
	ok, final = a.sendPanel(bw, r, runID)
	if !ok {
		return lastSent, false, false
	}
	for {
		pts, err := a.store.MetricsAfter(r.Context(), runID, lastSent, historyChunk)
		if err != nil {
			a.log.ErrorContext(r.Context(), "run events history", "run", runID, "err", err)
			return lastSent, false, false
		}
		if len(pts) == 0 {
			return lastSent, final, true
		}
		lastSent = writeMetrics(bw, pts)
		if len(pts) < historyChunk {
			return lastSent, final, true
		}
	}
}

// liveRunEvents follows the run's hub topic: new points as they come (each sent once, by
// sequence number), the panel re-rendered at most every panelEvery, and a keep-alive comment
// every keepAliveEvery. It ends when the viewer leaves, the server stops, the viewer is too
// slow for the hub, the run ends ("done" after the last points), or the viewer's session
// does: a sign-out (here or elsewhere) at once, any other revocation by the next keep-alive.
func (a *app) liveRunEvents(s *runStream, r *http.Request) {
	ctx := r.Context()
	u, _ := userFrom(ctx)
	signedOut, stopWatching := a.signOuts.watch(u.ID)
	defer stopWatching()
	keepAlive := time.NewTicker(keepAliveEvery)
	defer keepAlive.Stop()
	var panelDue <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.stopping:
			return // the browser reconnects to the next server with Last-Event-ID
		case e, open := <-s.events:
			if !open {
				return // too slow: the browser reconnects with Last-Event-ID
			}
			if e.Kind == gpu.EventMetrics {
				s.sendMetrics(e)
			} else if panelDue == nil {
				panelDue = time.After(panelEvery)
			}
		case <-panelDue:
			panelDue = nil
			var ok, final bool
			onLiveWorkStack(func() { ok, final = a.sendLivePanel(s, r) })
			if !ok || final {
				return
			}
		case <-signedOut:
			if !a.sessionAliveShortStack(r) {
				return
			}
			continue
		case <-keepAlive.C:
			if !a.sessionAliveShortStack(r) {
				return
			}
			s.bw.WriteString(": keep-alive\n\n")
		}
		if !s.flush() {
			return
		}
	}
}

// sendMetrics writes the points of e the viewer has not had yet.
func (s *runStream) sendMetrics(e *gpu.Event) {
	if len(e.Metrics) > 0 && e.Metrics[0].Seq > s.lastSent && e.Frame != nil {
		// The common case: everything is new; send the shared frame as is.
		s.bw.Write(e.Frame)
		s.lastSent = e.Metrics[len(e.Metrics)-1].Seq
		return
	}
	fresh := e.Metrics[:0:0]
	for _, p := range e.Metrics {
		if p.Seq > s.lastSent {
			fresh = append(fresh, p)
		}
	}
	if len(fresh) > 0 {
		s.lastSent = writeMetrics(s.bw, fresh)
	}
}

// sendLivePanel re-renders the panel; once the run has ended it sends the points still on
// their way and "done" (final).
func (a *app) sendLivePanel(s *runStream, r *http.Request) (ok, final bool) {
	ok, final = a.sendPanel(s.bw, r, s.runID)
	if !ok || !final {
		return ok, final
	}
	// Points the worker sent before finishing may still be on their way through the hub;
	// the store has them all.
	if pts, err := a.store.MetricsAfter(r.Context(), s.runID, s.lastSent, historyChunk); err == nil && len(pts) > 0 {
		s.lastSent = writeMetrics(s.bw, pts)
	}
	s.bw.WriteString("event: done\ndata: {}\n\n")
	s.flush()
	return true, true
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
	if err == nil {
		live.Rules, err = a.liveRulesPanel(r, run) // the metric-rule banner, once a rule fired
	}
	if err == nil && len(live.Snapshots) > 0 {
		live.Checkpoints, err = a.liveCheckpoints(r, run)
	}
	if err != nil {
		a.log.ErrorContext(r.Context(), "run events panel", "run", runID, "err", err)
		return false, false
	}
	// Sized like the last panel, so rendering does not regrow it a dozen times (every
	// viewer renders one as its stream opens).
	var buf bytes.Buffer
	buf.Grow(int(panelSize.Load()))
	if err := views.RunLiveMessage(live).Render(r.Context(), &buf); err != nil {
		a.log.ErrorContext(r.Context(), "run events panel", "run", runID, "err", err)
		return false, false
	}
	panelSize.Store(int64(min(buf.Len()+buf.Len()/8, 1<<20)))
	for line := range strings.Lines(strings.TrimRight(buf.String(), "\n")) {
		bw.WriteString("data: ")
		bw.WriteString(stripControl(strings.TrimSuffix(line, "\n")))
		bw.WriteByte('\n')
	}
	bw.WriteByte('\n')
	return true, run.Final()
}

// panelSize is a little over the size of the last panel rendered.
var panelSize atomic.Int64

// stripControl drops control characters (tab aside) from one line of an SSE frame: a
// carriage return in a worker's log line or reason would otherwise end the line early and
// let the rest pose as a field of its own, and escapes have no place in a page.
func stripControl(line string) string {
	isControl := func(r rune) bool { return r != '\t' && (r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0)) }
	if !strings.ContainsFunc(line, isControl) {
		return line
	}
	return strings.Map(func(r rune) rune {
		if isControl(r) {
			return -1
		}
		return r
	}, line)
}

// sessionAliveShortStack is sessionAlive on a short-lived goroutine (see runEvents).
func (a *app) sessionAliveShortStack(r *http.Request) (alive bool) {
	onLiveWorkStack(func() { alive = a.sessionAlive(r) })
	return alive
}

// liveWork bounds how many live streams do their periodic work (a session check, a panel
// render) at once. Viewers that opened together tick together: thousands of short-lived
// goroutines at once would each take a stack, kept by the process long after, while their
// store reads queue for a few connections anyway.
var liveWork = make(chan struct{}, 8)

// onLiveWorkStack is onShortStack within liveWork's bound.
func onLiveWorkStack(fn func()) {
	liveWork <- struct{}{}
	defer func() { <-liveWork }()
	onShortStack(fn)
}

// onShortStack runs fn on a goroutine of its own and waits for it; a panic in fn is raised
// again here, so the server's recovery still answers it. A goroutine that ends gives its
// stack back at once.
func onShortStack(fn func()) {
	var panicked any
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() { panicked = recover() }()
		fn()
	}()
	<-done
	if panicked != nil {
		panic(panicked)
	}
}

// sessionAlive reports whether the request's session is still stored (not signed out,
// revoked or expired). A failed look-up counts as alive; the next one decides.
func (a *app) sessionAlive(r *http.Request) bool {
	_, found, err := a.sessions.Store.Find(a.sessions.Token(r.Context()))
	if err != nil {
		a.log.WarnContext(r.Context(), "run events: session check", "err", err)
		return true
	}
	return found
}

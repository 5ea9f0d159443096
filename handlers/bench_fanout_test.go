package handlers

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Benchmark 2: fan-out latency. N viewers hold /runs/{id}/events open on raw HTTP/1.1
// connections (one signed-in session cookie for all); a worker posts a batch of one step's
// metrics; each viewer's latency is the time from the worker's POST returning to the
// "metrics" event arriving whole at that viewer (negative when it arrived before the
// worker read its answer). Baseline: a bare Go SSE server (a goroutine and a channel per
// client, as a hand-written fan-out has) sending the very same event bytes to the same
// number of clients, triggered the same way by a POST. Target: p99 <= 1.5 x bare p99.

const (
	fanoutWarmup = 3 // rounds not measured
	fanoutDial   = 50
)

func fanoutRounds(viewers int) int {
	if viewers >= 1000 {
		return 100
	}
	return 300
}

// fanoutPoints is one step's report of a worker: the body of round r.
func fanoutPoints(r int) string {
	return fmt.Sprintf(`{"points":[{"name":"loss","step":%d,"value":%g},{"name":"learning_rate","step":%d,"value":0.0003},`+
		`{"name":"grad_norm","step":%d,"value":%g},{"name":"tokens_per_sec","step":%d,"value":%d}]}`,
		r, 2.5/float64(r+1)+1, r, r, 0.5+float64(r%13)/10, r, 41000+r*17)
}

// arrival is one viewer receiving one event.
type arrival struct {
	viewer int
	id     string
	at     time.Time
	raw    []byte
}

// connectViewers connects n raw SSE clients to addr+path and returns them once each has read its
// first event (it is subscribed by then); events after that are reported on arrivals.
func connectViewers(b *testing.B, n int, addr, path, cookie string, arrivals chan<- arrival) []*sseConn {
	b.Helper()
	conns := make([]*sseConn, n)
	ready := make(chan error, n)
	sem := make(chan struct{}, fanoutDial)
	for i := range n {
		sem <- struct{}{}
		go func() {
			c, err := dialSSE(addr, path, cookie)
			<-sem
			if err != nil {
				ready <- err
				return
			}
			conns[i] = c
			if _, err := c.next(false); err != nil {
				ready <- err
				return
			}
			ready <- nil
			for {
				ev, err := c.next(i == 0)
				if err != nil {
					return // closed at the end
				}
				if ev.event == "metrics" {
					arrivals <- arrival{viewer: i, id: ev.id, at: time.Now(), raw: ev.raw}
				}
			}
		}()
	}
	for range n {
		if err := <-ready; err != nil {
			b.Fatalf("viewer: %v", err)
		}
	}
	return conns
}

// fanoutRound posts one batch and collects every viewer's arrival; it returns the
// latencies from the POST's answer and viewer 0's raw event.
func fanoutRound(b *testing.B, post func() error, n int, arrivals <-chan arrival) ([]time.Duration, []byte) {
	b.Helper()
	if err := post(); err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	lat := make([]time.Duration, 0, n)
	var raw []byte
	timeout := time.After(30 * time.Second)
	id := ""
	for range n {
		select {
		case a := <-arrivals:
			if id == "" {
				id = a.id
			} else if a.id != id {
				b.Fatalf("viewer %d got event %s in a round of event %s", a.viewer, a.id, id)
			}
			lat = append(lat, a.at.Sub(t0))
			if a.viewer == 0 {
				raw = a.raw
			}
		case <-timeout:
			b.Fatalf("only %d of %d viewers got the event", len(lat), n)
		}
	}
	return lat, raw
}

func closeViewers(conns []*sseConn) {
	for _, c := range conns {
		if c != nil {
			c.conn.Close()
		}
	}
}

func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("viewers=%d", n), func(b *testing.B) {
			rounds := fanoutRounds(n)
			total := fanoutWarmup + rounds

			// tunelab: the real handler, hub and store.
			br := newBenchRuns(b, 1)
			run, token := br.runs[0], br.tokens[0]
			if r := br.ts.post(run, "heartbeat", token, `{"step":0,"total_steps":100000}`); r.status != 200 {
				b.Fatalf("heartbeat: %d %s", r.status, r.body)
			}
			addr := strings.TrimPrefix(br.ts.URL, "http://")
			arrivals := make(chan arrival, n)
			conns := connectViewers(b, n, addr, fmt.Sprintf("/runs/%d/events", run), br.cookie, arrivals)
			if got := br.ts.hub.Viewers(run); got != n {
				b.Fatalf("%d viewers subscribed, want %d", got, n)
			}
			// Bare: the same event bytes to the same number of clients. Both sets of
			// viewers stay connected and the rounds alternate, so a slow moment of the
			// machine (GC, a neighbour) falls on both alike.
			bare := newBareSSE()
			bs := httptest.NewServer(bare)
			defer bs.Close()
			defer bare.closeAll()
			barrivals := make(chan arrival, n)
			bconns := connectViewers(b, n, strings.TrimPrefix(bs.URL, "http://"), "/events", "", barrivals)
			defer closeViewers(bconns)
			defer closeViewers(conns)

			client := &http.Client{}
			url := fmt.Sprintf("%s/api/v1/worker/runs/%d/metrics", br.ts.URL, run)
			var lat, blat []time.Duration
			var event []byte
			for r := range total {
				body := fanoutPoints(r)
				post := func() error {
					req, _ := http.NewRequest("POST", url, strings.NewReader(body))
					req.Header.Set("Authorization", "Bearer "+token)
					req.Header.Set("Content-Type", "application/json")
					return doPost(client, req)
				}
				l, raw := fanoutRound(b, post, n, arrivals)
				event = raw
				barePost := func() error {
					req, _ := http.NewRequest("POST", bs.URL+"/publish", bytes.NewReader(raw))
					return doPost(client, req)
				}
				time.Sleep(time.Millisecond)
				bl, braw := fanoutRound(b, barePost, n, barrivals)
				if !bytes.Equal(raw, braw) {
					b.Fatalf("bare round %d sent %q, tunelab %q", r, braw, raw)
				}
				time.Sleep(time.Millisecond) // let both servers settle between rounds
				if r >= fanoutWarmup {
					lat, blat = append(lat, l...), append(blat, bl...)
				}
			}
			p50, p99, worst := latencySummary(lat)
			bp50, bp99, bworst := latencySummary(blat)
			ratio := float64(p99) / float64(bp99)

			hideNsPerOp(b)
			b.ReportMetric(ms(p50), "p50-ms")
			b.ReportMetric(ms(p99), "p99-ms")
			b.ReportMetric(ms(bp50), "bare-p50-ms")
			b.ReportMetric(ms(bp99), "bare-p99-ms")
			b.ReportMetric(ratio, "p99/bare")
			benchResult(b, "2 fan-out   %4d viewers: p50 %.2f ms, p99 %.2f ms (max %.2f) | bare Go SSE p50 %.2f ms, p99 %.2f ms (max %.2f) | p99 %.2fx bare (target <= 1.5x) %s   [%d rounds, %d-byte events]",
				n, ms(p50), ms(p99), ms(worst), ms(bp50), ms(bp99), ms(bworst), ratio, verdict(ratio <= 1.5), rounds, len(event))
		})
	}
}

func doPost(c *http.Client, req *http.Request) error {
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s: %s", req.URL.Path, resp.Status)
	}
	return nil
}

// bareSSE is the baseline: the least a Go SSE fan-out does. POST /publish hands the body
// to every connected client's channel; each client's handler writes and flushes it.
type bareSSE struct {
	mu      sync.Mutex
	clients map[chan []byte]struct{}
	done    chan struct{}
	once    sync.Once
}

func newBareSSE() *bareSSE {
	return &bareSSE{clients: map[chan []byte]struct{}{}, done: make(chan struct{})}
}

func (s *bareSSE) closeAll() { s.once.Do(func() { close(s.done) }) }

func (s *bareSSE) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/publish":
		msg, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		for ch := range s.clients {
			select {
			case ch <- msg:
			default:
			}
		}
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"accepted":`+strconv.Itoa(len(msg))+"}\n")
	case "/events":
		ch := make(chan []byte, 256)
		s.mu.Lock()
		s.clients[ch] = struct{}{}
		s.mu.Unlock()
		defer func() {
			s.mu.Lock()
			delete(s.clients, ch)
			s.mu.Unlock()
		}()
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, "event: hello\ndata: {}\n\n")
		fl := w.(http.Flusher)
		fl.Flush()
		for {
			select {
			case msg := <-ch:
				w.Write(msg)
				fl.Flush()
			case <-r.Context().Done():
				return
			case <-s.done:
				return
			}
		}
	default:
		http.NotFound(w, r)
	}
}

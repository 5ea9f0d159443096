package handlers

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// The performance benchmarks (`go tool task bench`; README "Benchmarks"). Each one measures
// its figure and a baseline in the same call and prints a RESULT line with both, the
// target and whether it is met. They do their own bounded amount of work once per call:
// run them with -benchtime 1x. All load goes to 127.0.0.1.

// benchResult prints one summary line; the task collects the lines that start RESULT.
func benchResult(b *testing.B, format string, args ...any) {
	b.Helper()
	b.Logf("RESULT "+format, args...)
}

// verdict says whether a target is met.
func verdict(ok bool) string {
	if ok {
		return "MET"
	}
	return "NOT MET"
}

// hideNsPerOp drops the meaningless ns/op of a one-shot benchmark from its result line.
func hideNsPerOp(b *testing.B) { b.ReportMetric(0, "ns/op") }

// percentile of sorted durations (nearest rank).
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// thousands writes 1234567 as 1,234,567.
func thousands(v float64) string {
	s := fmt.Sprintf("%.0f", v)
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 && s[i-1] != '-' {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}

// benchRun is a signed-in person with runs claimed by a worker, on the test server.
type benchRun struct {
	ts     *testServer
	client *http.Client
	cookie string // "tunelab_session=..." for raw connections
	runs   []int64
	tokens []string
}

func newBenchRuns(b testing.TB, n int) *benchRun {
	b.Helper()
	ts := newTestServer(b, Config{})
	br := &benchRun{ts: ts, client: ts.signUp("bench@example.com")}
	br.cookie = sessionCookieName(false) + "=" + sessionCookie(br.client, ts.URL)
	ds := ts.datasetFor(br.client, completionLines(20))
	for range n {
		ts.startRun(br.client, runValues(ds))
		id, tok := ts.claim(b)
		br.runs, br.tokens = append(br.runs, id), append(br.tokens, tok)
	}
	return br
}

// sseConn is a raw HTTP/1.1 connection reading an event stream, as a browser holds one.
type sseConn struct {
	conn net.Conn
	r    *bufio.Reader // the decoded (de-chunked) body
}

// dialSSE opens GET path on addr with the cookie and reads the response head.
func dialSSE(addr, path, cookie string) (*sseConn, error) {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	req := "GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n"
	if cookie != "" {
		req += "Cookie: " + cookie + "\r\n"
	}
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(conn, req+"\r\n"); err != nil {
		conn.Close()
		return nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		conn.Close()
		return nil, err
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		conn.Close()
		return nil, fmt.Errorf("GET %s: %s, %s", path, resp.Status, resp.Header.Get("Content-Type"))
	}
	conn.SetDeadline(time.Time{})
	return &sseConn{conn: conn, r: bufio.NewReaderSize(resp.Body, 8<<10)}, nil
}

// rawEvent is one server-sent event; raw (the bytes as sent) only when asked for.
type rawEvent struct {
	id, event string
	raw       []byte
}

// next reads the next event, skipping comments (keep-alives).
func (c *sseConn) next(keep bool) (rawEvent, error) {
	var ev rawEvent
	var data, partial bool
	for {
		line, err := c.r.ReadSlice('\n')
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return ev, err
		}
		continued := partial
		partial = err != nil // a long line (a big panel or history event) comes in pieces
		if keep {
			ev.raw = append(ev.raw, line...)
		}
		if continued {
			continue
		}
		body := bytes.TrimRight(line, "\n")
		switch {
		case !partial && len(body) == 0:
			if data || ev.event != "" {
				return ev, nil
			}
			ev.raw = ev.raw[:0]
		case bytes.HasPrefix(body, []byte("id: ")):
			ev.id = string(body[4:])
		case bytes.HasPrefix(body, []byte("event: ")):
			ev.event = string(body[7:])
		case bytes.HasPrefix(body, []byte("data: ")):
			data = true
		}
	}
}

// latencySummary sorts samples and returns p50, p99 and max.
func latencySummary(samples []time.Duration) (p50, p99, worst time.Duration) {
	slices.Sort(samples)
	return percentile(samples, 50), percentile(samples, 99), samples[len(samples)-1]
}

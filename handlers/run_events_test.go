package handlers

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// waitClosed fails the test unless the stream ends within d.
func waitClosed(t *testing.T, stream *bufio.Reader, d time.Duration) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		for {
			if _, err := stream.ReadString('\n'); err != nil {
				done <- err
				return
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("the stream was still open %s after its session ended", d)
	}
}

func TestRunEventsEndWhenTheSessionEnds(t *testing.T) {
	ts, laptop, run, tok, _, _ := workerSetup(t)
	ts.post(run, "heartbeat", tok, `{"step":0,"total_steps":100}`)
	signIn := func() *http.Client {
		c := ts.client()
		if r := ts.do(c, "POST", "/signin", url.Values{"email": {"worker@example.com"}, "password": {testPassword}}, nil); r.status != http.StatusSeeOther {
			t.Fatalf("sign in: %d", r.status)
		}
		return c
	}
	phone, tablet := signIn(), signIn()
	laptopStream, closeLaptop := openEvents(t, ts, laptop, run, "")
	defer closeLaptop()
	phoneStream, closePhone := openEvents(t, ts, phone, run, "")
	defer closePhone()
	panel := func(e sseEvent) bool { return e.event == "" }
	readEvents(t, laptopStream, panel)
	readEvents(t, phoneStream, panel)

	// The phone signs out in another request: its stream ends, the laptop's goes on.
	if r := ts.do(phone, "POST", "/signout", nil, nil); r.status != http.StatusSeeOther {
		t.Fatalf("sign out: %d", r.status)
	}
	waitClosed(t, phoneStream, 5*time.Second)
	ts.post(run, "metrics", tok, `{"points":[{"name":"loss","step":1,"value":3}]}`)
	got := readEvents(t, laptopStream, func(e sseEvent) bool { return e.event == "metrics" })
	if !strings.Contains(got[len(got)-1].data, `"step":1`) {
		t.Fatalf("the laptop's stream: %+v", got)
	}
	// A password change on the tablet signs the laptop out everywhere else: its stream ends.
	if r := ts.do(tablet, "POST", "/settings/password", url.Values{"current_password": {testPassword}, "new_password": {"a brand new passphrase"}}, nil); r.status != http.StatusOK {
		t.Fatalf("password change: %d", r.status)
	}
	waitClosed(t, laptopStream, 5*time.Second)
}

// openRunStream opens a run's event stream as the page does and returns the whole response;
// it is closed when the test ends.
func openRunStream(t *testing.T, ts *testServer, c *http.Client, run int64) *http.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s/runs/%d/events?after=0", ts.URL, run), nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestRunEventsStripControlCharacters(t *testing.T) {
	ts, c, run, tok, _, _ := workerSetup(t)
	ts.post(run, "heartbeat", tok, `{"step":0,"total_steps":100}`)
	resp := openRunStream(t, ts, c, run)
	var raw strings.Builder
	stream := bufio.NewReader(io.TeeReader(resp.Body, &raw))
	readEvents(t, stream, func(e sseEvent) bool { return e.event == "" })

	if r := ts.post(run, "logs", tok, `{"lines":["tick\revent: done\rid: 999","\u001b[31mred alert\u001b[0m"]}`); r.status != http.StatusOK {
		t.Fatalf("logs: %d %s", r.status, r.body)
	}
	readEvents(t, stream, func(e sseEvent) bool { return strings.Contains(e.data, "red alert") })
	if r := ts.post(run, "finish", tok, `{"status":"failed","reason":"out of memory\r\u001b[1mevent: done\u0007"}`); r.status != http.StatusOK {
		t.Fatalf("finish: %d %s", r.status, r.body)
	}
	end := readEvents(t, stream, func(e sseEvent) bool { return e.event == "done" })
	if !strings.Contains(end[len(end)-2].data, "out of memory") {
		t.Fatalf("the reason is missing from the final panel: %+v", end)
	}
	for _, c := range []string{"\r", "\x1b", "\x07"} {
		if strings.Contains(raw.String(), c) {
			t.Fatalf("a frame carries the control character %q:\n%q", c, raw.String())
		}
	}
	if !strings.Contains(raw.String(), "tickevent: doneid: 999") || !strings.Contains(raw.String(), "[31mred alert[0m") {
		t.Fatalf("the text around the control characters is gone:\n%s", raw.String())
	}
}

// Over HTTP/1.1 an open stream is taken over from net/http (liveStream): it is answered
// unchunked with Connection: close, events still arrive after the take-over, and the end
// of the run ends the stream by closing the connection.
func TestRunEventsTakenOverFromNetHTTP(t *testing.T) {
	ts, c, run, tok, _, _ := workerSetup(t)
	ts.post(run, "heartbeat", tok, `{"step":0,"total_steps":100}`)
	resp := openRunStream(t, ts, c, run)
	if resp.StatusCode != http.StatusOK || len(resp.TransferEncoding) != 0 || !resp.Close || resp.ContentLength != -1 {
		t.Fatalf("status %d, transfer encoding %v, close %v, length %d: want 200, unchunked, closed at the end",
			resp.StatusCode, resp.TransferEncoding, resp.Close, resp.ContentLength)
	}
	if resp.Header.Get("Content-Security-Policy") == "" || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("the middleware's headers are missing: %v", resp.Header)
	}
	stream := bufio.NewReader(resp.Body)
	readEvents(t, stream, func(e sseEvent) bool { return e.event == "" }) // the panel: open, taken over
	ts.post(run, "metrics", tok, `{"points":[{"name":"loss","step":7,"value":1.5}]}`)
	got := readEvents(t, stream, func(e sseEvent) bool { return e.event == "metrics" })
	if !strings.Contains(got[len(got)-1].data, `"step":7`) {
		t.Fatalf("metrics after the take-over: %+v", got)
	}
	if r := ts.post(run, "finish", tok, `{"status":"succeeded"}`); r.status != http.StatusOK {
		t.Fatalf("finish: %d %s", r.status, r.body)
	}
	readEvents(t, stream, func(e sseEvent) bool { return e.event == "done" })
	if rest, err := io.ReadAll(stream); err != nil || len(rest) != 0 {
		t.Fatalf("after done: %q %v, want the connection closed", rest, err)
	}
}

// Over HTTP/2 a connection cannot be taken over: the stream stays on net/http, chunked by
// HTTP/2's own framing, and works the same.
func TestRunEventsOverHTTP2StayOnNetHTTP(t *testing.T) {
	ts, c, run, tok, _, _ := workerSetup(t)
	ts.post(run, "heartbeat", tok, `{"step":0,"total_steps":100}`)
	h2 := httptest.NewUnstartedServer(ts.Config.Handler)
	h2.EnableHTTP2 = true
	h2.StartTLS()
	defer h2.Close()
	client := h2.Client()
	client.Jar = c.Jar // the session cookie: same host, another port
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s/runs/%d/events?after=0", h2.URL, run), nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
		t.Fatalf("status %d over %s, want 200 over HTTP/2", resp.StatusCode, resp.Proto)
	}
	stream := bufio.NewReader(resp.Body)
	readEvents(t, stream, func(e sseEvent) bool { return e.event == "" })
	ts.post(run, "metrics", tok, `{"points":[{"name":"loss","step":3,"value":2.5}]}`)
	got := readEvents(t, stream, func(e sseEvent) bool { return e.event == "metrics" })
	if !strings.Contains(got[len(got)-1].data, `"step":3`) {
		t.Fatalf("metrics over HTTP/2: %+v", got)
	}
	ts.post(run, "finish", tok, `{"status":"succeeded"}`)
	readEvents(t, stream, func(e sseEvent) bool { return e.event == "done" })
	if rest, err := io.ReadAll(stream); err != nil || len(rest) != 0 {
		t.Fatalf("after done: %q %v, want the stream ended", rest, err)
	}
}

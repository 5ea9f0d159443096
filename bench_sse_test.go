package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The SSE memory benchmark (`go tool task bench`): memory per idle SSE viewer, server side
// only. The built binary serves in a child process; its VmRSS (from /proc) is read before
// and after 2,000 idle viewers open /runs/{id}/events on raw HTTP/1.1 connections, and
// again after 130 s of idling.
// Baseline, measured the same way in the same call: a bare Go SSE server (a goroutine, a
// channel and a keep-alive ticker per client), run as a child process of this test binary.
// Target: <= 40 KB per viewer.

const (
	memViewers = 2000
	memWarm    = 50 // viewers opened before the first reading, so one-time costs are out
	memDial    = 50
	memIdle    = 130 * time.Second
)

func BenchmarkViewerMemory(b *testing.B) {
	// tunelab serve, with a run held by a sleeping stand-in worker so nothing else moves.
	fw := newFakeWorker(b)
	srv := newServerProc(b, b.TempDir(), map[string]string{
		"TUNELAB_LOCAL_WORKER":      fw.script,
		"TUNELAB_HEARTBEAT_TIMEOUT": "10m",
		"TUNELAB_LOG_LEVEL":         "warn",
		// One account holds every viewer here; the per-person stream quota would refuse them.
		"TUNELAB_QUOTA_STREAMS": "0",
	})
	srv.start()
	web := newWebClient(b, srv.url())
	run := web.setUpRun("memory@example.com")
	token := fw.token(b)
	if st, body := workerPost(&http.Client{Timeout: 10 * time.Second}, srv.url(), run, "heartbeat", token, []byte(`{"step":0,"total_steps":1000}`)); st != http.StatusOK {
		b.Fatalf("heartbeat: %d %s", st, body)
	}
	// A little history, so each viewer's first answer is what a real page gets.
	if st, body := workerPost(&http.Client{Timeout: 10 * time.Second}, srv.url(), run, "metrics", token,
		[]byte(`{"points":[{"name":"loss","step":1,"value":2.5},{"name":"loss","step":2,"value":2.4}]}`)); st != http.StatusOK {
		b.Fatalf("metrics: %d %s", st, body)
	}
	u, _ := url.Parse(srv.url())
	cookie := ""
	for _, c := range web.c.Jar.Cookies(u) {
		cookie = c.Name + "=" + c.Value
	}
	tl := openViewers(b, srv.pid(), srv.addr, fmt.Sprintf("/runs/%d/events", run), cookie)
	defer tl.close()

	// The bare baseline.
	bare := startBareSSEProcess(b)
	bl := openViewers(b, bare.pid, bare.addr, "/events", "")
	defer bl.close()

	// Idle past the runtime's periodic GC (every 2 minutes at the latest) in both, so the
	// second figure is what an idle viewer keeps costing, keep-alives and GC included.
	time.Sleep(time.Until(tl.opened.Add(memIdle)))
	tl.readIdle(b)
	bl.readIdle(b)

	hideNsPerOp(b)
	b.ReportMetric(tl.perViewer(tl.after), "KB/viewer")
	b.ReportMetric(tl.perViewer(tl.idle), "idle-KB/viewer")
	b.ReportMetric(bl.perViewer(bl.after), "bare-KB/viewer")
	b.ReportMetric(bl.perViewer(bl.idle), "bare-idle-KB/viewer")
	for _, at := range []struct {
		label    string
		tun, bar memReading
	}{{"just opened", tl.after, bl.after}, {fmt.Sprintf("idle %.0f s", memIdle.Seconds()), tl.idle, bl.idle}} {
		kb := tl.perViewer(at.tun)
		benchResult(b, "3 memory    %d SSE viewers, %-11s tunelab serve %5.1f KB each (VmRSS %s -> %s KB) | bare Go SSE %5.1f KB each (VmRSS %s -> %s KB) | target <= 40 KB %s",
			memViewers, at.label+":", kb, thousands(tl.before.rss), thousands(at.tun.rss),
			bl.perViewer(at.bar), thousands(bl.before.rss), thousands(at.bar.rss), verdict(kb <= 40))
	}
}

type memReading struct{ rss float64 } // VmRSS, KB

// readMem reads the VmRSS of a process.
func readMem(b *testing.B, pid int) memReading {
	b.Helper()
	s, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	var m memReading
	for _, line := range strings.Split(string(s), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		if f[0] == "VmRSS:" {
			m.rss, _ = strconv.ParseFloat(f[1], 64)
		}
	}
	if m.rss == 0 {
		b.Fatalf("no VmRSS for pid %d", pid)
	}
	return m
}

// memProbe is a server with memViewers idle viewers and its memory readings.
type memProbe struct {
	pid                 int
	conns               []net.Conn
	before, after, idle memReading
	opened              time.Time
}

func (p *memProbe) perViewer(m memReading) float64 { return (m.rss - p.before.rss) / memViewers }

func (p *memProbe) readIdle(b *testing.B) { p.idle = readMem(b, p.pid) }

func (p *memProbe) close() {
	for _, c := range p.conns {
		c.Close()
	}
}

// openViewers opens memWarm viewers, reads the server's memory, opens memViewers more,
// lets it settle for a moment and reads it again.
func openViewers(b *testing.B, pid int, addr, path, cookie string) *memProbe {
	b.Helper()
	p := &memProbe{pid: pid}
	p.conns = append(p.conns, openIdleViewers(b, memWarm, addr, path, cookie)...)
	time.Sleep(time.Second)
	p.before = readMem(b, pid)
	p.conns = append(p.conns, openIdleViewers(b, memViewers, addr, path, cookie)...)
	time.Sleep(2 * time.Second)
	p.after = readMem(b, pid)
	p.opened = time.Now()
	return p
}

// openIdleViewers opens n event streams and returns once each has read its first event;
// a goroutine per connection then reads (and drops) whatever else comes.
func openIdleViewers(b *testing.B, n int, addr, path, cookie string) []net.Conn {
	b.Helper()
	conns := make([]net.Conn, n)
	errs := make(chan error, n)
	sem := make(chan struct{}, memDial)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, r, err := dialEvents(addr, path, cookie)
			if err != nil {
				errs <- err
				return
			}
			conns[i] = c
			go io.Copy(io.Discard, r)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatalf("viewer: %v", err)
	}
	return conns
}

// dialEvents opens GET path as a browser's EventSource does and reads until the first
// event is complete; it returns the connection and the reader of the rest.
func dialEvents(addr, path, cookie string) (net.Conn, *bufio.Reader, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, nil, err
	}
	req := "GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n"
	if cookie != "" {
		req += "Cookie: " + cookie + "\r\n"
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c, req+"\r\n"); err != nil {
		c.Close()
		return nil, nil, err
	}
	r := bufio.NewReader(c)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		c.Close()
		return nil, nil, fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	body := bufio.NewReader(resp.Body)
	data := false
	for {
		line, err := body.ReadString('\n')
		if err != nil {
			c.Close()
			return nil, nil, err
		}
		if strings.HasPrefix(line, "data: ") {
			data = true
		}
		if line == "\n" && data {
			break
		}
	}
	c.SetDeadline(time.Time{})
	return c, body, nil
}

// bareProc is the baseline server: this test binary re-run with TUNELAB_TEST_BARE_SSE=1,
// which TestMain turns into serveBareSSE.
type bareProc struct {
	pid  int
	addr string
}

func startBareSSEProcess(b *testing.B) bareProc {
	b.Helper()
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), "TUNELAB_TEST_BARE_SSE=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Signal(syscall.SIGKILL); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "bare sse listening on ")
	if err != nil || !ok {
		b.Fatalf("bare server: %q %v", line, err)
	}
	return bareProc{pid: cmd.Process.Pid, addr: addr}
}

// serveBareSSE is the baseline server of BenchmarkViewerMemory: a minimal Go SSE
// fan-out, run in a child process of the benchmark (see TestMain).
func serveBareSSE() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("bare sse listening on %s\n", ln.Addr())
	var mu sync.Mutex
	clients := map[chan []byte]struct{}{}
	http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ch := make(chan []byte, 256)
		mu.Lock()
		clients[ch] = struct{}{}
		mu.Unlock()
		defer func() {
			mu.Lock()
			delete(clients, ch)
			mu.Unlock()
		}()
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "event: hello\ndata: {}\n\n")
		w.(http.Flusher).Flush()
		keepAlive := time.NewTicker(15 * time.Second)
		defer keepAlive.Stop()
		for {
			select {
			case msg := <-ch:
				w.Write(msg)
			case <-keepAlive.C:
				io.WriteString(w, ": keep-alive\n\n")
			case <-r.Context().Done():
				return
			}
			w.(http.Flusher).Flush()
		}
	}))
}

// Shared with the handlers benchmarks' output style.

func benchResult(b *testing.B, format string, args ...any) {
	b.Helper()
	b.Logf("RESULT "+format, args...)
}

func verdict(ok bool) string {
	if ok {
		return "MET"
	}
	return "NOT MET"
}

func hideNsPerOp(b *testing.B) { b.ReportMetric(0, "ns/op") }

func thousands(v float64) string {
	s := strconv.FormatFloat(v, 'f', 0, 64)
	var out bytes.Buffer
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 && s[i-1] != '-' {
			out.WriteByte(',')
		}
		out.WriteByte(s[i])
	}
	return out.String()
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"tunelab/store"
)

// The crash-safety test of metric ingest: the built binary serves in a child process while
// workers post metric batches; the server is killed with SIGKILL at random moments and
// restarted on the same port and data directory. After every restart each acknowledged
// point must be there, none twice, and the run's sequence numbers must be 1..n exactly.

// serverProc is `tunelab serve` running as a child process of the test.
type serverProc struct {
	t       testing.TB
	bin     string
	addr    string // 127.0.0.1:port, the same on every start
	dataDir string
	env     []string
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{}
}

// freePort finds a port of 127.0.0.1 nobody listens on.
func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// newServerProc prepares a server on a fixed free port; extra is added to the environment
// (the test's own TUNELAB_* settings are left out).
func newServerProc(t testing.TB, dataDir string, extra map[string]string) *serverProc {
	t.Helper()
	p := &serverProc{t: t, bin: workerBinary(t), addr: freePort(t), dataDir: dataDir,
		logPath: filepath.Join(t.TempDir(), "server.log")}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TUNELAB_") {
			p.env = append(p.env, kv)
		}
	}
	for k, v := range extra {
		p.env = append(p.env, k+"="+v)
	}
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			if b, err := os.ReadFile(p.logPath); err == nil {
				t.Logf("server log (last 4 KB):\n%s", tail(b, 4096))
			}
		}
	})
	return p
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

func (p *serverProc) url() string { return "http://" + p.addr }

// start runs the binary and waits until /healthz answers.
func (p *serverProc) start() {
	p.t.Helper()
	logf, err := os.OpenFile(p.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		p.t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(p.bin, "serve", "--addr", p.addr, "--data", p.dataDir)
	cmd.Env, cmd.Stdout, cmd.Stderr = p.env, logf, logf
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.cmd, p.exited = cmd, make(chan struct{})
	go func(done chan struct{}) { cmd.Wait(); close(done) }(p.exited)
	c := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := c.Get(p.url() + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-p.exited:
			p.t.Fatalf("the server exited at start: %v", cmd.ProcessState)
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("the server did not answer /healthz within 30 s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill ends the server with SIGKILL, as a power cut or the OOM killer would.
func (p *serverProc) kill() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		p.t.Fatalf("kill: %v", err)
	}
	<-p.exited
	p.cmd = nil
}

// stop ends a running server gracefully (SIGTERM, then SIGKILL after 20 s).
func (p *serverProc) stop() {
	if p.cmd == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
	}
	p.cmd = nil
}

// pid of the running server.
func (p *serverProc) pid() int { return p.cmd.Process.Pid }

// fakeWorker writes a script for TUNELAB_LOCAL_WORKER that keeps the run token the server
// hands its worker and then sleeps, so the test can act as the worker. The test ends it
// (and its process group) when done.
type fakeWorker struct {
	dir, script string
}

func newFakeWorker(t testing.TB) *fakeWorker {
	t.Helper()
	dir := t.TempDir()
	fw := &fakeWorker{dir: dir, script: filepath.Join(dir, "tunelab-fake-worker.sh")}
	script := fmt.Sprintf(`#!/bin/sh
# A stand-in worker for tests: it keeps its run token and sleeps until killed.
# Arguments: --server URL --run ID.
echo "$TUNELAB_RUN_TOKEN" > %[1]s/token.tmp && mv %[1]s/token.tmp %[1]s/token
echo $$ > %[1]s/pid
exec sleep 600
`, dir)
	if err := os.WriteFile(fw.script, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fw.kill)
	return fw
}

// token waits for the worker to start and returns its run token.
func (fw *fakeWorker) token(t testing.TB) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if b, err := os.ReadFile(filepath.Join(fw.dir, "token")); err == nil && len(bytes.TrimSpace(b)) > 0 {
			return string(bytes.TrimSpace(b))
		}
		if time.Now().After(deadline) {
			t.Fatal("the server did not start the worker within 30 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill ends the sleeping worker: it leads its own process group (the local backend
// starts workers with Setpgid).
func (fw *fakeWorker) kill() {
	b, err := os.ReadFile(filepath.Join(fw.dir, "pid"))
	if err != nil {
		return
	}
	if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 {
		syscall.Kill(-pid, syscall.SIGKILL)
	}
}

// webClient is a signed-in person talking to a server by HTTP.
type webClient struct {
	t    testing.TB
	base string
	c    *http.Client
}

func newWebClient(t testing.TB, base string) *webClient {
	jar, _ := cookiejar.New(nil)
	return &webClient{t: t, base: base, c: &http.Client{Jar: jar, Timeout: 60 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// form posts a form and expects a redirect; it returns the id at the end of Location.
func (w *webClient) form(path string, v url.Values) int64 {
	w.t.Helper()
	resp, err := w.c.PostForm(w.base+path, v)
	if err != nil {
		w.t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		w.t.Fatalf("POST %s: %d\n%.1000s", path, resp.StatusCode, body)
	}
	loc := resp.Header.Get("Location")
	id, _ := strconv.ParseInt(loc[strings.LastIndexByte(loc, '/')+1:], 10, 64)
	return id
}

// setUpRun signs up, adds the sample dataset and starts a run; it returns the run id.
func (w *webClient) setUpRun(email string) int64 {
	w.t.Helper()
	w.form("/signup", url.Values{"email": {email}, "password": {"a long reliable passphrase"}, "accept_terms": {"yes"}})
	ds := w.form("/datasets/samples", url.Values{"format": {"chat"}})
	return w.form("/runs", url.Values{
		"dataset_id": {fmt.Sprint(ds)}, "base_model": {"tunelab/byte-mlp-small"}, "method": {"lora"},
		"epochs": {"1"}, "learning_rate": {"0.003"}, "batch_size": {"16"}, "lora_rank": {"8"},
		"lora_alpha": {"16"}, "max_seq_len": {"256"}, "seed": {"3"}, "gpu_type": {"cpu"}, "validation_split": {"10"},
		"snapshot_every": {"0"},
	})
}

// workerPost sends one worker API request; status 0 means no answer came.
func workerPost(c *http.Client, base string, run int64, endpoint, token string, body []byte) (int, []byte) {
	req, err := http.NewRequest("POST", fmt.Sprintf("%s/api/v1/worker/runs/%d/%s", base, run, endpoint), bytes.NewReader(body))
	if err != nil {
		return 0, nil
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	reply, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil
	}
	return resp.StatusCode, reply
}

const (
	relPosters     = 4
	relSteps       = 25                     // steps a batch, for each of the poster's two metrics
	relBatchPoints = 2 * relSteps           // points a batch
	relMaxBatches  = 3000                   // per poster: bounds the data the checks read
	relKills       = 12                     // SIGKILLs, at least 10
	relPace        = 15 * time.Millisecond  // between a poster's batches
	relRetry       = 25 * time.Millisecond  // before sending a batch again
	relUptime      = 700 * time.Millisecond // the longest a server lives between kills
	relDowntime    = 200 * time.Millisecond // the longest it stays dead
)

// relBatch is batch k of poster g: its two metrics at steps [k*relSteps, (k+1)*relSteps).
func relBatch(g, k int) []byte {
	var b strings.Builder
	b.WriteString(`{"points":[`)
	for i, name := range relMetricNames(g) {
		for s := k * relSteps; s < (k+1)*relSteps; s++ {
			if i > 0 || s > k*relSteps {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"name":%q,"step":%d,"value":%d.5}`, name, s, g*1_000_000+s)
		}
	}
	b.WriteString("]}")
	return []byte(b.String())
}

// relMetricNames are poster g's two metrics.
func relMetricNames(g int) []string {
	return []string{fmt.Sprintf("w%d/loss", g), fmt.Sprintf("w%d/tokens_per_sec", g)}
}

// poster is one worker thread's progress: batches [0, acked) were answered 200.
type poster struct {
	acked     atomic.Int64
	failures  atomic.Int64 // sends that got no answer or not 200
	resentDup atomic.Int64 // batches found already stored when sent again (the answer had been lost)
}

func TestReliabilityServerKilledWhileIngesting(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts a server a dozen times")
	}
	began := time.Now()
	fw := newFakeWorker(t)
	dataDir := t.TempDir()
	srv := newServerProc(t, dataDir, map[string]string{
		"TUNELAB_LOCAL_WORKER":      fw.script,
		"TUNELAB_HEARTBEAT_TIMEOUT": "10m", // the test is the worker; it sends one heartbeat
		"TUNELAB_LOG_LEVEL":         "warn",
	})
	srv.start()
	web := newWebClient(t, srv.url())
	run := web.setUpRun("reliability@example.com")
	token := fw.token(t)
	wc := &http.Client{Timeout: 10 * time.Second}
	if st, body := workerPost(wc, srv.url(), run, "heartbeat", token, []byte(`{"step":0,"total_steps":1000000}`)); st != http.StatusOK {
		t.Fatalf("heartbeat: %d %s", st, body)
	}

	seed := uint64(time.Now().UnixNano())
	t.Logf("random seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 4))

	ctx, stopPosting := context.WithCancel(context.Background())
	posters := make([]*poster, relPosters)
	var wg sync.WaitGroup
	// The checks hold gate, so the data they read grows with the servers' uptime only.
	var gate sync.RWMutex
	fatal := make(chan string, relPosters)
	for g := range posters {
		p := &poster{}
		posters[g] = p
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Timeout: 10 * time.Second}
			for k := 0; k < relMaxBatches && ctx.Err() == nil; {
				gate.RLock()
				st, reply := workerPost(c, srv.url(), run, "metrics", token, relBatch(g, k))
				gate.RUnlock()
				switch {
				case st == http.StatusOK:
					var out struct{ Accepted, Duplicates int }
					if err := json.Unmarshal(reply, &out); err != nil || out.Accepted+out.Duplicates != relBatchPoints {
						fatal <- fmt.Sprintf("poster %d batch %d: answer %s", g, k, reply)
						return
					}
					if out.Duplicates > 0 {
						p.resentDup.Add(1)
					}
					p.acked.Store(int64(k + 1))
					k++
					time.Sleep(relPace)
				case st == 0 || st == http.StatusTooManyRequests || st >= 500:
					p.failures.Add(1) // the server is down or busy: the same batch again
					time.Sleep(relRetry)
				default:
					fatal <- fmt.Sprintf("poster %d batch %d: %d %s", g, k, st, reply)
					return
				}
			}
		}()
	}
	defer func() { stopPosting(); wg.Wait() }()

	checks := 0
	check := func(final bool) {
		t.Helper()
		gate.Lock()
		defer gate.Unlock()
		select {
		case msg := <-fatal:
			t.Fatal(msg)
		default:
		}
		// What was acknowledged before the reads began must be in what they read.
		acked := make([]int64, relPosters)
		for g, p := range posters {
			acked[g] = p.acked.Load()
		}
		exported := web.exportedPoints(run)
		stored, metricSeq := storedPoints(t, dataDir, run)
		for _, got := range []struct {
			what   string
			points map[pointKey]int
		}{{"the JSONL export", exported}, {"the database", stored}} {
			for key, n := range got.points {
				if n != 1 {
					t.Fatalf("check %d: %s has %s %d times", checks, got.what, key, n)
				}
			}
			for g := range posters {
				for _, name := range relMetricNames(g) {
					for s := 0; s < int(acked[g])*relSteps; s++ {
						if got.points[pointKey{name, s}] != 1 {
							t.Fatalf("check %d: %s lacks acknowledged point %s at step %d (poster %d had %d batches acknowledged)",
								checks, got.what, name, s, g, acked[g])
						}
					}
				}
			}
		}
		if final && len(stored) != len(exported) {
			t.Fatalf("at the end the database holds %d points, the export %d", len(stored), len(exported))
		}
		if metricSeq != int64(len(stored)) {
			t.Fatalf("check %d: runs.metric_seq is %d for %d points", checks, metricSeq, len(stored))
		}
		checks++
	}

	for i := range relKills {
		time.Sleep(time.Duration(rng.Int64N(int64(relUptime))))
		pid := srv.pid()
		srv.kill()
		time.Sleep(time.Duration(rng.Int64N(int64(relDowntime))))
		restart := time.Now()
		srv.start()
		up := time.Since(restart)
		check(false)
		t.Logf("kill %d: pid %d killed, restarted as pid %d (up in %s), check in %s", i+1, pid, srv.pid(),
			up.Round(time.Millisecond), (time.Since(restart) - up).Round(time.Millisecond))
	}
	stopPosting()
	wg.Wait()
	check(true)

	var acked, failures, dups int64
	for _, p := range posters {
		acked, failures, dups = acked+p.acked.Load(), failures+p.failures.Load(), dups+p.resentDup.Load()
	}
	t.Logf("%d SIGKILLs in %s: %d batches (%d points) acknowledged, %d sends unanswered or refused and sent again, %d batches found already stored when resent; %d checks passed",
		relKills, time.Since(began).Round(time.Millisecond), acked, acked*relBatchPoints, failures, dups, checks)
	if acked == 0 {
		t.Fatal("no batch was acknowledged")
	}
}

// pointKey names a point: a metric at a step.
type pointKey struct {
	name string
	step int
}

func (k pointKey) String() string { return fmt.Sprintf("%s at step %d", k.name, k.step) }

// exportedPoints reads /runs/{id}/metrics.jsonl and counts each point.
func (w *webClient) exportedPoints(run int64) map[pointKey]int {
	w.t.Helper()
	resp, err := w.c.Get(fmt.Sprintf("%s/runs/%d/metrics.jsonl", w.base, run))
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		w.t.Fatalf("export: %d", resp.StatusCode)
	}
	out := map[pointKey]int{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var p struct {
			Name string
			Step int
		}
		if err := json.Unmarshal(sc.Bytes(), &p); err != nil {
			w.t.Fatalf("export line %q: %v", sc.Text(), err)
		}
		out[pointKey{p.Name, p.Step}]++
	}
	if err := sc.Err(); err != nil {
		w.t.Fatal(err)
	}
	return out
}

// storedPoints reads a run's points from the database file beside the running server,
// through the store (one statement, one snapshot): each point counted, the sequence numbers
// checked to be 1..n exactly, and the run's metric_seq.
func storedPoints(t *testing.T, dataDir string, run int64) (map[pointKey]int, int64) {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(dataDir, "tunelab.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	metricSeq, err := st.RunMetricSeq(context.Background(), run)
	if err != nil {
		t.Fatal(err)
	}
	pts, err := st.MetricsAfter(context.Background(), run, 0, 10_000_000)
	if err != nil {
		t.Fatal(err)
	}
	out := map[pointKey]int{}
	for i, p := range pts {
		if p.Seq != int64(i+1) {
			t.Fatalf("sequence numbers: %d where %d was due (a gap or a duplicate)", p.Seq, i+1)
		}
		out[pointKey{p.Name, p.Step}]++
	}
	return out, metricSeq
}

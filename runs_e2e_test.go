package main

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"tunelab/store"
	"tunelab/store/storetest"
)

// These tests run the real server in this process with the real local backend: its
// workers are `tunelab worker` processes built from this tree (workerBinary), training for
// real with the built-in CPU trainer.

// runEnv makes workers report often so the tests see progress quickly, and runs the
// worker binary built from this tree.
func runEnv(t *testing.T) map[string]string {
	return map[string]string{"TUNELAB_HEARTBEAT_INTERVAL": "1s", "TUNELAB_HEARTBEAT_TIMEOUT": "20s",
		"TUNELAB_LOCAL_WORKER": workerBinary(t) + " worker"}
}

type appClient struct {
	t    *testing.T
	base string
	c    *http.Client
}

func newAppClient(t *testing.T, base string) *appClient {
	jar, _ := cookiejar.New(nil)
	return &appClient{t: t, base: base, c: &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// post sends a form and returns the status and the redirect target.
func (a *appClient) post(path string, form url.Values) (int, string) {
	a.t.Helper()
	resp, err := a.c.PostForm(a.base+path, form)
	if err != nil {
		a.t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode >= 400 {
		a.t.Logf("POST %s: %d\n%.2000s", path, resp.StatusCode, body)
	}
	return resp.StatusCode, resp.Header.Get("Location")
}

func (a *appClient) get(path string) (int, []byte, http.Header) {
	a.t.Helper()
	resp, err := a.c.Get(a.base + path)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body, resp.Header
}

var trailingID = regexp.MustCompile(`/(\d+)$`)

func idFrom(t *testing.T, location string) int64 {
	t.Helper()
	m := trailingID.FindStringSubmatch(location)
	if m == nil {
		t.Fatalf("no id in %q", location)
	}
	id, _ := strconv.ParseInt(m[1], 10, 64)
	return id
}

// signUpWithSample creates an account, adds the sample chat dataset and returns its id.
func (a *appClient) signUpWithSample(email string) int64 {
	a.t.Helper()
	if st, _ := a.post("/signup", url.Values{"email": {email}, "password": {"a long training passphrase"}, "accept_terms": {"yes"}}); st != http.StatusSeeOther {
		a.t.Fatalf("sign up: %d", st)
	}
	st, loc := a.post("/datasets/samples", url.Values{"format": {"chat"}})
	if st != http.StatusSeeOther {
		a.t.Fatalf("sample: %d", st)
	}
	return idFrom(a.t, loc)
}

// startRun posts the run form: the small model, so tests under -race stay quick.
func (a *appClient) startRun(dataset int64, method string, epochs int) int64 {
	a.t.Helper()
	st, loc := a.post("/runs", url.Values{
		"dataset_id": {fmt.Sprint(dataset)}, "base_model": {"tunelab/byte-mlp-small"}, "method": {method},
		"epochs": {fmt.Sprint(epochs)}, "learning_rate": {"0.003"}, "batch_size": {"16"}, "lora_rank": {"8"},
		"lora_alpha": {"16"}, "max_seq_len": {"256"}, "seed": {"3"}, "gpu_type": {"cpu"}, "validation_split": {"10"},
		"snapshot_every": {"40"},
	})
	if st != http.StatusSeeOther {
		a.t.Fatalf("start run: %d", st)
	}
	return idFrom(a.t, loc)
}

// openStore opens the server's database beside it (WAL allows a second connection).
// openStore opens a server's database beside it, as the server opens it.
func openStore(t *testing.T, dataDir string) *store.Store {
	t.Helper()
	return storetest.Open(t, filepath.Join(dataDir, "tunelab.db"), store.Options{})
}

// waitRun polls until ok(run) or the deadline, and fails the test with the last state.
func waitRun(t *testing.T, st *store.Store, id int64, what string, within time.Duration, ok func(store.Run) bool) store.Run {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		r, err := st.RunByID(context.Background(), id)
		if err == nil && ok(r) {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %d: %s did not happen within %s; last state %+v (err %v)", id, what, within, r, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func metricSeries(t *testing.T, st *store.Store, run int64) map[string][]store.MetricPoint {
	t.Helper()
	pts, err := st.MetricsAfter(context.Background(), run, 0, 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]store.MetricPoint{}
	for _, p := range pts {
		out[p.Name] = append(out[p.Name], p)
	}
	return out
}

func TestRunEndToEnd(t *testing.T) {
	dir, env := t.TempDir(), runEnv(t)
	addr, _ := startServerWith(t, env, dir)
	app := newAppClient(t, "http://"+addr)
	st := openStore(t, dir)
	dataset := app.signUpWithSample("e2e@example.com")
	id := app.startRun(dataset, "lora", 10)

	run := waitRun(t, st, id, "success", 4*time.Minute, func(r store.Run) bool { return r.Final() })
	if run.Status != store.RunSucceeded {
		t.Fatalf("run ended %s: %s", run.Status, run.Reason)
	}
	series := metricSeries(t, st, id)
	for _, name := range []string{"loss", "eval_loss", "learning_rate", "grad_norm", "tokens_per_sec"} {
		if len(series[name]) == 0 {
			t.Errorf("no %s points", name)
		}
	}
	eval := series["eval_loss"]
	if len(eval) < 2 || !(eval[len(eval)-1].Value < eval[0].Value*0.8) {
		t.Fatalf("eval loss did not fall clearly: %+v", eval)
	}
	logs, _ := st.LogTail(context.Background(), id, 500)
	if len(logs) < 3 {
		t.Fatalf("only %d log lines", len(logs))
	}
	usage, _ := st.RunUsage(context.Background(), id)
	wall := run.FinishedAt.Sub(run.CreatedAt)
	if len(usage) != 1 || time.Duration(usage[0].Seconds)*time.Second > wall {
		t.Fatalf("usage %+v for a run of %s", usage, wall)
	}

	// Snapshots: every 40 steps and the final one, each downloadable and intact.
	snaps, _ := st.Snapshots(context.Background(), run.UserID, id)
	if len(snaps) < 2 || !snaps[len(snaps)-1].Final {
		t.Fatalf("snapshots = %+v", snaps)
	}
	final := snaps[len(snaps)-1]
	code, body, hdr := app.get(fmt.Sprintf("/runs/%d/snapshots/%d/download", id, final.ID))
	sum := sha256.Sum256(body)
	if code != 200 || hex.EncodeToString(sum[:]) != final.SHA256 || !strings.Contains(hdr.Get("Content-Disposition"), ".safetensors") {
		t.Fatalf("download: %d, %d bytes, sha256 match %v", code, len(body), hex.EncodeToString(sum[:]) == final.SHA256)
	}
	checkSafetensors(t, body)

	_, page, _ := app.get(fmt.Sprintf("/runs/%d", id))
	for _, want := range []string{"Succeeded", "download", "lora"} {
		if !strings.Contains(strings.ToLower(string(page)), strings.ToLower(want)) {
			t.Errorf("run page lacks %q", want)
		}
	}
}

// checkSafetensors reads the header: 8 bytes of little-endian length, then JSON naming
// tensors with dtype, shape and offsets.
func checkSafetensors(t *testing.T, b []byte) {
	t.Helper()
	if len(b) < 8 {
		t.Fatal("snapshot shorter than a safetensors header")
	}
	n := binary.LittleEndian.Uint64(b)
	if n == 0 || 8+n > uint64(len(b)) {
		t.Fatalf("safetensors header length %d of %d bytes", n, len(b))
	}
	var header map[string]json.RawMessage
	if err := json.Unmarshal(b[8:8+n], &header); err != nil {
		t.Fatalf("safetensors header: %v", err)
	}
	tensors := 0
	for name, raw := range header {
		if name == "__metadata__" {
			continue
		}
		var info struct {
			Dtype   string
			Shape   []int
			Offsets []uint64 `json:"data_offsets"`
		}
		if err := json.Unmarshal(raw, &info); err != nil || info.Dtype == "" || len(info.Offsets) != 2 {
			t.Fatalf("tensor %s: %s", name, raw)
		}
		tensors++
	}
	if tensors == 0 {
		t.Fatal("the snapshot holds no tensors")
	}
}

func TestRunCancelMidRun(t *testing.T) {
	dir, env := t.TempDir(), runEnv(t)
	addr, _ := startServerWith(t, env, dir)
	app := newAppClient(t, "http://"+addr)
	st := openStore(t, dir)
	id := app.startRun(app.signUpWithSample("cancel@example.com"), "full", 500)
	waitRun(t, st, id, "training", 2*time.Minute, func(r store.Run) bool { return r.Status == store.RunRunning && r.Step > 0 })

	asked := time.Now()
	if code, _ := app.post(fmt.Sprintf("/runs/%d/cancel", id), url.Values{}); code != http.StatusSeeOther {
		t.Fatalf("cancel: %d", code)
	}
	run := waitRun(t, st, id, "cancel", 30*time.Second, func(r store.Run) bool { return r.Final() })
	if run.Status != store.RunCancelled {
		t.Fatalf("run ended %s (%s), want cancelled", run.Status, run.Reason)
	}
	t.Logf("cancelled %s after the request (heartbeat interval 1 s)", time.Since(asked).Round(time.Millisecond))
	if run.Step >= run.TotalSteps {
		t.Fatalf("the run trained to the end (%d/%d) instead of stopping", run.Step, run.TotalSteps)
	}
	usage, _ := st.RunUsage(context.Background(), id)
	if len(usage) != 1 {
		t.Fatalf("usage rows = %+v", usage)
	}
	// The job's process is gone.
	waitGone(t, jobPID(t, run.JobID))
}

// TestRunCancelStopsTrainingWithinAStep cancels just after a heartbeat, with the default
// 5 s interval: a worker that heard cancels only on its next heartbeat would train on for
// the whole interval. The held ("wait") heartbeat answers at once, so training stops within
// a few steps of the step the worker last reported.
func TestRunCancelStopsTrainingWithinAStep(t *testing.T) {
	dir, env := t.TempDir(), runEnv(t)
	env["TUNELAB_HEARTBEAT_INTERVAL"] = "5s"
	addr, _ := startServerWith(t, env, dir)
	app := newAppClient(t, "http://"+addr)
	st := openStore(t, dir)
	id := app.startRun(app.signUpWithSample("cancel-fast@example.com"), "full", 500)
	first := waitRun(t, st, id, "training", 2*time.Minute, func(r store.Run) bool { return r.Status == store.RunRunning && r.Step > 0 })
	// The next heartbeat: its step is where the worker was a moment ago, and the steps
	// between two heartbeats are what a worker that heard cancels only at its next
	// heartbeat would train on for.
	run := waitRun(t, st, id, "a heartbeat", 20*time.Second, func(r store.Run) bool { return r.LastHeartbeat.After(first.LastHeartbeat) })
	asked, perInterval := run.Step, run.Step-first.Step
	if code, _ := app.post(fmt.Sprintf("/runs/%d/cancel", id), url.Values{}); code != http.StatusSeeOther {
		t.Fatalf("cancel: %d", code)
	}
	run = waitRun(t, st, id, "cancel", 30*time.Second, func(r store.Run) bool { return r.Final() })
	if run.Status != store.RunCancelled {
		t.Fatalf("run ended %s (%s), want cancelled", run.Status, run.Reason)
	}
	logs, _ := st.LogTail(context.Background(), id, 500)
	stoppedAt := -1
	for _, l := range logs {
		var step, total int
		if n, _ := fmt.Sscanf(l.Line, "cancelled at step %d of %d", &step, &total); n == 2 {
			stoppedAt = step
		}
	}
	if stoppedAt < 0 {
		t.Fatalf("no \"cancelled at step\" line in the log: %+v", logs)
	}
	t.Logf("cancel asked at step %d (last heartbeat), training stopped at step %d; %d steps between heartbeats", asked, stoppedAt, perInterval)
	// Steps, not seconds (the machine may be busy): the worker stops long before its next
	// heartbeat would have carried the cancel.
	if perInterval < 6 {
		t.Fatalf("only %d steps between heartbeats: too few to tell a held heartbeat from a plain one", perInterval)
	}
	if stoppedAt-asked > perInterval/3 {
		t.Fatalf("training ran %d steps past the cancel request (step %d -> %d), want at most a third of the %d steps between heartbeats",
			stoppedAt-asked, asked, stoppedAt, perInterval)
	}
}

// jobPID reads the worker's pid from a local job id ("pid:start time").
func jobPID(t *testing.T, jobID string) int {
	t.Helper()
	pid, _, _ := strings.Cut(jobID, ":")
	n, err := strconv.Atoi(pid)
	if err != nil || n <= 0 {
		t.Fatalf("job id %q does not start with a pid", jobID)
	}
	return n
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	if pid <= 0 {
		t.Fatalf("no worker pid")
	}
	deadline := time.Now().Add(15 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("worker %d still running", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestRunWorkerKilledMidRun(t *testing.T) {
	dir, env := t.TempDir(), runEnv(t)
	addr, _ := startServerWith(t, env, dir)
	app := newAppClient(t, "http://"+addr)
	st := openStore(t, dir)
	id := app.startRun(app.signUpWithSample("killed@example.com"), "lora", 500)
	run := waitRun(t, st, id, "training", 2*time.Minute, func(r store.Run) bool { return r.Status == store.RunRunning && r.Step > 0 })
	if err := syscall.Kill(jobPID(t, run.JobID), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	run = waitRun(t, st, id, "failure", 30*time.Second, func(r store.Run) bool { return r.Final() })
	if run.Status != store.RunFailed || !strings.Contains(run.Reason, "killed") {
		t.Fatalf("run ended %s: %q, want failed naming the kill", run.Status, run.Reason)
	}
	// Metering stopped at the worker's last heartbeat, not when the server noticed.
	usage, _ := st.RunUsage(context.Background(), id)
	billedEnd := run.FirstHeartbeat.Add(time.Duration(usage[0].Seconds) * time.Second)
	if billedEnd.After(killed) {
		t.Fatalf("billed until %s, the worker died at %s", billedEnd, killed)
	}
	if code, _ := app.post(fmt.Sprintf("/runs/%d/retry", id), url.Values{}); code != http.StatusSeeOther {
		t.Fatalf("retry after a failure: %d", code)
	}
}

func TestRunSurvivesServerRestart(t *testing.T) {
	dir, env := t.TempDir(), runEnv(t)
	addr, stop := startServerWith(t, env, dir)
	app := newAppClient(t, "http://"+addr)
	st := openStore(t, dir)
	id := app.startRun(app.signUpWithSample("restart@example.com"), "lora", 40)
	waitRun(t, st, id, "training", 2*time.Minute, func(r store.Run) bool { return r.Status == store.RunRunning && r.Step > 10 })

	if err := stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	time.Sleep(2 * time.Second) // the worker keeps training and retries its reports
	startServerAt(t, env, dir, addr)

	run := waitRun(t, st, id, "success after the restart", 4*time.Minute, func(r store.Run) bool { return r.Final() })
	if run.Status != store.RunSucceeded {
		t.Fatalf("run ended %s: %s", run.Status, run.Reason)
	}
	// Nothing the worker reported was lost while the server was away: a loss point for
	// every logging step, each once.
	loss := metricSeries(t, st, id)["loss"]
	for i, p := range loss {
		if want := (i + 1) * 10; p.Step != want && !(i == len(loss)-1 && p.Step == run.TotalSteps) {
			t.Fatalf("loss point %d is step %d, want %d (a gap or duplicate)", i, p.Step, want)
		}
	}
	if last := loss[len(loss)-1].Step; last != run.TotalSteps {
		t.Fatalf("last loss point at step %d of %d", last, run.TotalSteps)
	}
}

func TestRunSucceedsWhileBadTokensFloodTheWorkerAPI(t *testing.T) {
	dir, env := t.TempDir(), runEnv(t)
	addr, _ := startServerWith(t, env, dir)
	app := newAppClient(t, "http://"+addr)
	st := openStore(t, dir)
	id := app.startRun(app.signUpWithSample("flood@example.com"), "lora", 3)

	// A stranger on the workers' own address (127.0.0.1) sends bad tokens to the run's
	// heartbeat endpoint, far past every limit, for as long as the run trains.
	stop := make(chan struct{})
	flooded := make(chan map[int]int)
	go func() {
		seen := map[int]int{}
		defer func() { flooded <- seen }()
		client := &http.Client{Timeout: 5 * time.Second}
		url := fmt.Sprintf("http://%s/api/v1/worker/runs/%d/heartbeat", addr, id)
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			req, _ := http.NewRequest("POST", url, strings.NewReader(`{"step":0,"total_steps":1}`))
			req.Header.Set("Authorization", "Bearer "+strings.Repeat("0f", 16))
			if resp, err := client.Do(req); err == nil {
				seen[resp.StatusCode]++
				resp.Body.Close()
			}
		}
	}()
	run := waitRun(t, st, id, "the end", 4*time.Minute, func(r store.Run) bool { return r.Final() })
	close(stop)
	seen := <-flooded
	if run.Status != store.RunSucceeded {
		t.Fatalf("run ended %s (%s) under a flood of bad tokens %v", run.Status, run.Reason, seen)
	}
	if seen[http.StatusTooManyRequests] == 0 || seen[http.StatusOK] != 0 {
		t.Fatalf("the flood was answered %v, want 401s then 429s", seen)
	}
	t.Logf("bad tokens answered %v while the run trained", seen)
}

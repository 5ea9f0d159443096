package trainer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// testJob is a job spec as the server sends it, for a run of a couple of
// seconds on the small model.
func testJob(format string, rows int, change func(cfg map[string]any)) map[string]any {
	cfg := map[string]any{
		"base_model": "tunelab/byte-mlp-small", "method": "lora", "epochs": 4, "learning_rate": 0.01,
		"batch_size": 8, "lora_rank": 4, "lora_alpha": 8, "max_seq_len": 64, "seed": 1,
		"gpu_type": "cpu", "validation_split": 10, "snapshot_every": 0,
	}
	if change != nil {
		change(cfg)
	}
	return map[string]any{
		"run_id":                     12,
		"config":                     cfg,
		"dataset":                    map[string]any{"format": format, "rows": rows, "url": "/api/v1/worker/runs/12/dataset"},
		"eval_dataset":               nil,
		"heartbeat_interval_seconds": 0.05,
		"max_snapshot_bytes":         1 << 30,
	}
}

// additionChatJSONL is n chat rows, written the way some editors save
// files: a byte order mark, CRLF endings, a blank line.
func additionChatJSONL(n int) string {
	var b strings.Builder
	b.WriteString("\xef\xbb\xbf")
	for i := range n {
		a, c := i%10, (i/10)%10
		row, _ := json.Marshal(map[string]any{"messages": []map[string]string{
			{"role": "user", "content": fmt.Sprintf("What is %d plus %d?", a, c)},
			{"role": "assistant", "content": fmt.Sprintf("%d", a+c)},
		}})
		b.Write(row)
		b.WriteString("\r\n")
		if i == n/2 {
			b.WriteString("\r\n")
		}
	}
	return b.String()
}

// syncBuffer is a bytes.Buffer the worker's goroutines may share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func runWorkerFor(t *testing.T, f *fakeWorkerServer, log *syncBuffer) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := RunWorker(ctx, f.options(log))
	if strings.Contains(log.String(), f.token) {
		t.Error("the token appears in the worker's log")
	}
	for _, l := range f.state().logs {
		if strings.Contains(l, f.token) {
			t.Error("the token appears in the run's log on the server")
		}
	}
	return err
}

// expectedPoints are the (name, step) pairs an sft run with an eval set
// reports: eval_loss for the starting weights, then every LogEvery steps
// and at the last step the five training metrics.
func expectedPoints(total, logEvery int) []fakePointKey {
	keys := []fakePointKey{{"eval_loss", 0}}
	for step := 1; step <= total; step++ {
		if step%logEvery == 0 || step == total {
			for _, name := range []string{"eval_loss", "grad_norm", "learning_rate", "loss", "tokens_per_sec"} {
				keys = append(keys, fakePointKey{name, step})
			}
		}
	}
	return keys
}

func sortedKeys(m map[fakePointKey]float64) []fakePointKey {
	return slices.SortedFunc(maps.Keys(m), func(a, b fakePointKey) int {
		if a.step != b.step {
			return a.step - b.step
		}
		return strings.Compare(a.name, b.name)
	})
}

func TestRunWorkerTrainsAndFinishes(t *testing.T) {
	f := newFakeWorkerServer(t, testJob("chat", 40, nil), additionChatJSONL(40), "")
	var log syncBuffer
	if err := runWorkerFor(t, f, &log); err != nil {
		t.Fatalf("RunWorker: %v\n%s", err, log.String())
	}
	s := f.state()
	if len(s.finishes) != 1 || s.finishes[0] != (fakeFinish{"succeeded", ""}) {
		t.Fatalf("finishes %v, want one succeeded", s.finishes)
	}

	// 40 rows, 4 held out: 36 in batches of 8 is 5 steps an epoch, 20 in all.
	const total = 20
	if len(s.heartbeats) == 0 || s.heartbeats[0].step != 0 {
		t.Fatalf("heartbeats %v: want the first at step 0", s.heartbeats)
	}
	if !slices.ContainsFunc(s.heartbeats, func(h fakeHeartbeat) bool { return h.total == total }) {
		t.Errorf("no heartbeat reported the %d steps to come: %v", total, s.heartbeats)
	}

	if got, want := sortedKeys(s.points), expectedPoints(total, 10); !slices.Equal(got, want) {
		t.Errorf("metric points\n got %v\nwant %v", got, want)
	}
	first, last := s.points[fakePointKey{"eval_loss", 0}], s.points[fakePointKey{"eval_loss", total}]
	if !(last < first) {
		t.Errorf("eval loss did not fall: %.4f -> %.4f", first, last)
	}

	snap, ok := s.snapshots[total]
	if len(s.snapshots) != 1 || !ok || !snap.final {
		t.Fatalf("snapshots %v: want one final at step %d", slices.Collect(maps.Keys(s.snapshots)), total)
	}
	sum := sha256.Sum256(snap.data)
	if hex.EncodeToString(sum[:]) != snap.sha256 {
		t.Error("the stored snapshot's sha256 differs from the announced one")
	}
	m, err := ReadModel(bytes.NewReader(snap.data), nil)
	if err != nil {
		t.Fatalf("ReadModel on the uploaded snapshot: %v", err)
	}
	if m.Size() != (ModelSize{Context: 16, Embed: 16, Hidden: 128}) {
		t.Errorf("snapshot model size %+v, want byte-mlp-small's", m.Size())
	}

	for _, prefix := range []string{
		"loaded 40 rows (chat): 36 for training, 4 for eval",
		"training: lora on tunelab/byte-mlp-small",
		"step 10/20 loss ",
		"saved snapshot at step 20 (",
		"finished: eval loss ",
	} {
		if !s.hasLog(prefix) {
			t.Errorf("no log line starting %q in %q", prefix, s.logs)
		}
	}
	t.Logf("eval loss %.3f -> %.3f; %d heartbeats; %d log lines", first, last, len(s.heartbeats), len(s.logs))
}

func TestRunWorkerDPOWithEvalDataset(t *testing.T) {
	pairs := func(n int) string {
		var b strings.Builder
		for _, p := range colourPairs(n) {
			row, _ := json.Marshal(map[string]string{"prompt": p.Prompt, "chosen": p.Chosen, "rejected": p.Rejected})
			b.Write(row)
			b.WriteByte('\n')
		}
		return b.String()
	}
	job := testJob("preference", 8, func(cfg map[string]any) { cfg["method"] = "dpo"; cfg["epochs"] = 1; cfg["max_seq_len"] = 32 })
	job["eval_dataset"] = map[string]any{"format": "preference", "rows": 4, "url": "/api/v1/worker/runs/12/dataset?which=eval"}
	f := newFakeWorkerServer(t, job, pairs(8), pairs(4))
	var log syncBuffer
	if err := runWorkerFor(t, f, &log); err != nil {
		t.Fatalf("RunWorker: %v\n%s", err, log.String())
	}
	s := f.state()
	if len(s.finishes) != 1 || s.finishes[0].status != "succeeded" {
		t.Fatalf("finishes %v", s.finishes)
	}
	if s.requests["dataset"] != 2 {
		t.Errorf("%d dataset downloads, want the training and the eval set", s.requests["dataset"])
	}
	// 8 pairs in batches of 8, one epoch: 1 step.
	for _, name := range []string{"loss", "eval_loss", "reward_accuracy", "reward_margin", "eval_reward_accuracy", "eval_reward_margin"} {
		if _, ok := s.points[fakePointKey{name, 1}]; !ok {
			t.Errorf("no %s at step 1", name)
		}
	}
	if !s.hasLog("loaded 8 rows (preference) for training and 4 rows (preference) for eval") {
		t.Errorf("logs %q", s.logs)
	}
}

func TestRunWorkerCancelledByHeartbeat(t *testing.T) {
	f := newFakeWorkerServer(t, testJob("chat", 40, func(cfg map[string]any) { cfg["epochs"] = 1000 }), additionChatJSONL(40), "")
	f.heartbeatReply = func(step, total int) (int, bool) { return http.StatusOK, step >= 3 }
	var log syncBuffer
	err := runWorkerFor(t, f, &log)
	if !errors.Is(err, ErrRunCancelled) {
		t.Fatalf("RunWorker returned %v, want ErrRunCancelled\n%s", err, log.String())
	}
	s := f.state()
	if len(s.finishes) != 1 || s.finishes[0].status != "cancelled" {
		t.Fatalf("finishes %v, want one cancelled", s.finishes)
	}
	if took := s.finishedAt.Sub(s.cancelledAt); took > 2*time.Second {
		t.Errorf("finished %v after the cancel was answered, want within 2 s", took)
	}
	if len(s.snapshots) != 0 {
		t.Errorf("a cancelled run uploaded snapshots at %v", slices.Collect(maps.Keys(s.snapshots)))
	}
	if !s.hasLog("cancelled at step ") {
		t.Errorf("no cancel line in %q", s.logs)
	}
}

// A clean stop (a budget cap, say): training ends at the current step, the current
// weights are uploaded as the final snapshot, and the run finishes cancelled with the
// server's reason.
func TestRunWorkerStopsCleanlyWithAFinalSnapshot(t *testing.T) {
	f := newFakeWorkerServer(t, testJob("chat", 40, func(cfg map[string]any) { cfg["epochs"] = 1000 }), additionChatJSONL(40), "")
	const why = "Stopped at the run's budget cap of $2.00: $2.00 spent"
	f.stopReply = func(step, total int) string {
		if step >= 3 {
			return why
		}
		return ""
	}
	var log syncBuffer
	err := runWorkerFor(t, f, &log)
	if !errors.Is(err, ErrRunCancelled) {
		t.Fatalf("RunWorker returned %v, want ErrRunCancelled\n%s", err, log.String())
	}
	s := f.state()
	if len(s.finishes) != 1 || s.finishes[0] != (fakeFinish{"cancelled", why}) {
		t.Fatalf("finishes %v, want one cancelled with the stop's reason", s.finishes)
	}
	if len(s.snapshots) != 1 {
		t.Fatalf("snapshots at %v, want one final", slices.Collect(maps.Keys(s.snapshots)))
	}
	for step, sn := range s.snapshots {
		if !sn.final || step < 3 || step >= s.heartbeats[len(s.heartbeats)-1].total {
			t.Errorf("snapshot at step %d (final %v), want a final one at the step training stopped", step, sn.final)
		}
		tensors, _, err := ReadSafetensors(bytes.NewReader(sn.data))
		if err != nil || len(tensors) == 0 {
			t.Errorf("the final snapshot does not read back: %v", err)
		}
	}
	if !s.hasLog("stopped at step ") {
		t.Errorf("no stop line in %q", s.logs)
	}
}

func TestRunWorkerStopsWithoutFinishingOnDeadToken(t *testing.T) {
	f := newFakeWorkerServer(t, testJob("chat", 40, func(cfg map[string]any) { cfg["epochs"] = 1000 }), additionChatJSONL(40), "")
	f.heartbeatReply = func(step, total int) (int, bool) {
		if step >= 3 {
			return http.StatusUnauthorized, false // the run was deleted on the server
		}
		return http.StatusOK, false
	}
	var log syncBuffer
	err := runWorkerFor(t, f, &log)
	if err == nil || !strings.Contains(err.Error(), "stopped without finishing") || !strings.Contains(err.Error(), "401") {
		t.Fatalf("RunWorker returned %v, want a stop for the dead token", err)
	}
	if s := f.state(); s.requests["finish"] != 0 {
		t.Errorf("the worker called finish %d times with a dead token", s.requests["finish"])
	}
}

// TestRunWorkerRidesOutAnOutage has the server go away for a while (every
// request answers 503), lose the answers of requests it did store, and
// rate-limit once: the run must still succeed with every metric point
// stored exactly once.
func TestRunWorkerRidesOutAnOutage(t *testing.T) {
	f := newFakeWorkerServer(t, testJob("chat", 40, func(cfg map[string]any) { cfg["epochs"] = 3; cfg["snapshot_every"] = 5 }), additionChatJSONL(40), "")
	var outageFrom time.Time
	var lostMetrics, lostSnapshot, limitedLogs bool
	f.fault = func(endpoint string) (int, bool) {
		switch {
		case endpoint == "metrics" && f.requests["metrics"] == 2:
			outageFrom = time.Now()
			lostMetrics = true
			return http.StatusServiceUnavailable, true // stored, but the answer is lost
		case !outageFrom.IsZero() && time.Since(outageFrom) < 500*time.Millisecond:
			return http.StatusServiceUnavailable, false // restarting
		case endpoint == "snapshot" && !lostSnapshot:
			lostSnapshot = true
			return http.StatusBadGateway, true
		case endpoint == "logs" && !limitedLogs:
			limitedLogs = true
			return http.StatusTooManyRequests, false
		}
		return 0, false
	}
	var log syncBuffer
	if err := runWorkerFor(t, f, &log); err != nil {
		t.Fatalf("RunWorker: %v\n%s", err, log.String())
	}
	s := f.state()
	if !lostMetrics || !lostSnapshot || !limitedLogs {
		t.Fatalf("faults not all met: lost metrics %v, lost snapshot %v, rate-limited logs %v", lostMetrics, lostSnapshot, limitedLogs)
	}
	if len(s.finishes) != 1 || s.finishes[0].status != "succeeded" {
		t.Fatalf("finishes %v\n%s", s.finishes, log.String())
	}
	if got, want := sortedKeys(s.points), expectedPoints(15, 10); !slices.Equal(got, want) {
		t.Errorf("metric points after the outage\n got %v\nwant %v", got, want)
	}
	if s.duplicates == 0 {
		t.Error("the batch whose answer was lost was not sent again")
	}
	if steps := slices.Sorted(maps.Keys(s.snapshots)); !slices.Equal(steps, []int{5, 10, 15}) || !s.snapshots[15].final {
		t.Errorf("snapshots at %v, want 5, 10 and a final 15", steps)
	}
	if !strings.Contains(log.String(), "trying again in") {
		t.Error("the operator's log does not mention the retries")
	}
}

func TestRunWorkerReportsFailures(t *testing.T) {
	for _, tc := range []struct {
		name         string
		change       func(cfg map[string]any)
		wantReason   string
		wantDownload bool
	}{
		{"qlora", func(cfg map[string]any) { cfg["method"] = "qlora" }, "qlora needs a GPU", false},
		{"unknown model", func(cfg map[string]any) { cfg["base_model"] = "acme/llama-70b" }, `"acme/llama-70b" is not one the built-in CPU trainer offers`, false},
		{"invalid config", func(cfg map[string]any) { cfg["batch_size"] = 0 }, "batch size: must be between 1 and 512", false},
		{"rows of the wrong kind", func(cfg map[string]any) { cfg["method"] = "dpo" }, "dpo needs preference rows", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeWorkerServer(t, testJob("chat", 40, tc.change), additionChatJSONL(40), "")
			var log syncBuffer
			err := runWorkerFor(t, f, &log)
			if err == nil || !strings.Contains(err.Error(), tc.wantReason) {
				t.Errorf("RunWorker returned %v, want it to say %q", err, tc.wantReason)
			}
			s := f.state()
			if len(s.finishes) != 1 || s.finishes[0].status != "failed" || !strings.Contains(s.finishes[0].reason, tc.wantReason) {
				t.Fatalf("finishes %v, want failed saying %q", s.finishes, tc.wantReason)
			}
			if downloaded := s.requests["dataset"] > 0; downloaded != tc.wantDownload {
				t.Errorf("dataset downloaded: %v, want %v", downloaded, tc.wantDownload)
			}
		})
	}
}

func TestRunWorkerRefusesBadOptions(t *testing.T) {
	for _, o := range []WorkerOptions{
		{Server: "tunelab.example.com", RunID: 1, Token: fakeToken},
		{Server: "https://tunelab.example.com", RunID: 0, Token: fakeToken},
		{Server: "https://tunelab.example.com", RunID: 1, Token: ""},
		{Server: "https://tunelab.example.com", RunID: 1, Token: "abc\r\nX-Evil: 1"},
	} {
		if err := RunWorker(context.Background(), o); err == nil {
			t.Errorf("RunWorker(%+v) ran", o)
		} else if o.Token != "" && strings.Contains(err.Error(), o.Token) {
			t.Errorf("the error %q shows the token", err)
		}
	}
}

func TestPlanMatchesTrain(t *testing.T) {
	for _, n := range []int{1, 2, 3, 10, 11, 41} {
		for _, fraction := range []float64{0, 0.01, 0.1, 0.5} {
			cfg := DefaultConfig()
			cfg.EvalFraction, cfg.BatchSize, cfg.Epochs = fraction, 8, 2
			p := planRun(cfg, TrainingData{Examples: make([]Example, n)})
			var total int
			_, err := Train(context.Background(), withTinyModel(cfg), TrainingData{Examples: make([]Example, n)}, Hooks{
				Progress: func(step, tot int) { total = tot },
			})
			if err != nil {
				t.Fatal(err)
			}
			if total != p.totalSteps {
				t.Errorf("n=%d fraction=%g: plan says %d steps, Train took %d", n, fraction, p.totalSteps, total)
			}
		}
	}
}

// withTinyModel shrinks a config so a test run costs next to nothing.
func withTinyModel(cfg Config) Config {
	cfg.ContextChars, cfg.EmbedDim, cfg.HiddenDim, cfg.MaxSeqLen = 2, 2, 2, 8
	return cfg
}

package handlers

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"tunelab/store"
	"tunelab/trainer"
)

// greetChat is a chat dataset whose every row asks the same and expects the same answer.
func greetChat(n int) string {
	return strings.Repeat(`{"messages":[{"role":"user","content":"Greet:"},{"role":"assistant","content":"hello there"}]}`+"\n", n)
}

// greeterSnapshots trains on greetChat's row and returns the snapshot after one step
// and the final one.
func greeterSnapshots(t *testing.T) (early, final []byte) {
	t.Helper()
	rows, err := trainer.ParseRows(strings.NewReader(greetChat(16)), trainer.FormatChat)
	if err != nil {
		t.Fatal(err)
	}
	cfg := trainer.DefaultConfig()
	cfg.Method, cfg.Epochs, cfg.LearningRate, cfg.BatchSize, cfg.SnapshotEvery = trainer.MethodFull, 30, 1e-2, 8, 1000
	cfg.MaxSeqLen, cfg.ContextChars, cfg.EmbedDim, cfg.HiddenDim, cfg.Seed, cfg.LogEvery = 64, 6, 8, 32, 7, 50
	_, err = trainer.Train(context.Background(), cfg, trainer.TrainingData{Examples: rows.Examples, EvalExamples: rows.Examples[:2]}, trainer.Hooks{
		Snapshot: func(step int, last bool, write func(io.Writer) error) error {
			var b bytes.Buffer
			if err := write(&b); err != nil {
				return err
			}
			if last {
				final = b.Bytes()
			}
			return nil
		},
		Progress: func(step, _ int) {},
	})
	if err != nil {
		t.Fatal(err)
	}
	// The early snapshot: the same shape, untrained weights, as at step 0.
	cfg.Epochs = 1
	cfg.LearningRate = 1e-9
	_, err = trainer.Train(context.Background(), cfg, trainer.TrainingData{Examples: rows.Examples[:2], EvalExamples: rows.Examples[:1]}, trainer.Hooks{
		Snapshot: func(_ int, last bool, write func(io.Writer) error) error {
			var b bytes.Buffer
			if err := write(&b); err != nil {
				return err
			}
			early = b.Bytes()
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	return early, final
}

// evalRun is a finished run of greetChat rows with the two snapshots at steps 1 and 60.
func (ts *testServer) evalRun(t *testing.T, c *http.Client, base string, early, final []byte) (runID int64, snaps []store.Snapshot) {
	t.Helper()
	v := runValues(ts.datasetFor(c, greetChat(20)))
	v.Set("base_model", base)
	v.Set("method", "full")
	run := ts.startRun(c, v)
	claimed, tok := ts.claim(t)
	if claimed != run {
		t.Fatalf("claimed %d, want %d", claimed, run)
	}
	ts.post(run, "heartbeat", tok, `{"step":60,"total_steps":60}`)
	for _, s := range []struct {
		step  int
		body  []byte
		final string
	}{{1, early, "false"}, {60, final, "true"}} {
		sum := sha256.Sum256(s.body)
		r := ts.workerCall("PUT", fmt.Sprintf("/api/v1/worker/runs/%d/snapshots/%d", run, s.step), tok, bytes.NewReader(s.body),
			map[string]string{"X-Snapshot-SHA256": hex.EncodeToString(sum[:]), "X-Snapshot-Final": s.final, "Content-Type": "application/octet-stream"})
		if r.status != http.StatusCreated {
			t.Fatalf("snapshot: %d %s", r.status, r.body)
		}
	}
	ts.post(run, "finish", tok, `{"status":"succeeded"}`)
	snaps, err := ts.store.Snapshots(context.Background(), mustUserID(t, ts, c), run)
	if err != nil || len(snaps) != 2 {
		t.Fatalf("snapshots: %v %v", snaps, err)
	}
	return run, snaps
}

// waitEvals waits (a generous bound, not a timing assertion) until no evaluation of the
// run is queued or running, and returns them.
func (ts *testServer) waitEvals(t *testing.T, userID, runID int64) map[int64]store.SnapshotEval {
	t.Helper()
	return ts.waitEvalsOn(t, userID, runID, 0)
}

// waitEvalsOn is waitEvals for the evaluations on one eval set (0: the held-out rows).
func (ts *testServer) waitEvalsOn(t *testing.T, userID, runID, set int64) map[int64]store.SnapshotEval {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Minute); ; {
		evals, err := ts.store.SnapshotEvals(context.Background(), userID, runID, set)
		if err != nil {
			t.Fatal(err)
		}
		busy := false
		for _, e := range evals {
			busy = busy || e.Status == store.EvalQueued || e.Status == store.EvalRunning
		}
		if !busy && len(evals) > 0 {
			return evals
		}
		if time.Now().After(deadline) {
			t.Fatalf("evaluations still pending: %+v", evals)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var bestStep = regexp.MustCompile(`data-step="([^"]+)"[^>]* class="checkpoint-best"`)

func TestEvaluateAllScoresTrainedSnapshotBestAndRanksByChosenMetric(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.signUp("eval-owner@example.com")
	early, final := greeterSnapshots(t)
	run, snaps := ts.evalRun(t, c, "tunelab/byte-mlp-small", early, final)
	if r := ts.do(c, "POST", fmt.Sprintf("/runs/%d/evaluate", run), url.Values{}, nil); r.status != http.StatusSeeOther {
		t.Fatalf("evaluate all: %d %s", r.status, r.body)
	}
	evals := ts.waitEvals(t, mustUserID(t, ts, c), run)
	e1, e60 := evals[snaps[0].ID], evals[snaps[1].ID]
	if e1.Status != store.EvalDone || e60.Status != store.EvalDone {
		t.Fatalf("statuses: %+v %+v", e1, e60)
	}
	if !(e60.EvalLoss.Float64 < e1.EvalLoss.Float64) {
		t.Fatalf("trained loss %v not below early %v", e60.EvalLoss.Float64, e1.EvalLoss.Float64)
	}
	// validation_split 10 of 20 rows holds out 2, all "hello there": the trained answers match.
	if e60.Rows != 2 || e60.ExactMatch.Float64 != 1 || e60.Contains.Float64 != 1 || e1.ExactMatch.Float64 != 0 {
		t.Fatalf("scores: early %+v, final %+v", e1, e60)
	}
	page := ts.do(c, "GET", fmt.Sprintf("/runs/%d", run), nil, nil)
	if m := bestStep.FindStringSubmatch(page.body); page.status != 200 || m == nil || m[1] != "60" {
		t.Fatalf("best by eval loss: %d %v", page.status, m)
	}
	for _, want := range []string{"at most 200", "100%", "/playground?a=snapshot%3a" + fmt.Sprint(snaps[0].ID)} {
		if !strings.Contains(strings.ToLower(page.body), strings.ToLower(want)) {
			t.Errorf("run page lacks %q", want)
		}
	}
	// Ranking by exact match keeps step 60 best; a metric that is not offered is refused.
	if p := ts.do(c, "GET", fmt.Sprintf("/runs/%d/checkpoints?metric=exact_match", run), nil, nil); bestStep.FindStringSubmatch(p.body) == nil {
		t.Fatalf("best by exact match: %d", p.status)
	}
	bad := ts.do(c, "GET", fmt.Sprintf("/runs/%d?metric=bleu", run), nil, nil)
	if bad.status != http.StatusBadRequest || !strings.Contains(html.UnescapeString(bad.body), badMetricMessage) {
		t.Fatalf("bad metric on the run page: %d", bad.status)
	}
	if r := ts.do(c, "GET", fmt.Sprintf("/runs/%d/checkpoints?metric=bleu", run), nil, nil); r.status != http.StatusBadRequest {
		t.Fatalf("bad metric on the fragment: %d", r.status)
	}
}

// The best mark follows the metric: with made-up scores where loss and exact match
// disagree, each ranking picks its own winner.
func TestLeaderboardBestFollowsChosenMetric(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.signUp("eval-rank@example.com")
	early, final := greeterSnapshots(t)
	run, snaps := ts.evalRun(t, c, "tunelab/byte-mlp-small", early, final)
	u := mustUserID(t, ts, c)
	ctx := context.Background()
	for _, s := range []struct {
		id          int64
		loss, exact float64
	}{{snaps[0].ID, 0.5, 0.9}, {snaps[1].ID, 0.2, 0.1}} {
		if r := ts.do(c, "POST", fmt.Sprintf("/runs/%d/snapshots/%d/evaluate", run, s.id), url.Values{}, nil); r.status != http.StatusSeeOther {
			t.Fatalf("evaluate: %d", r.status)
		}
		evals := ts.waitEvals(t, u, run) // let the loop finish its own scoring first
		if err := ts.store.FinishEval(ctx, evals[s.id].ID, 2, s.loss, nullFloat(s.exact), nullFloat(s.exact)); err != nil {
			t.Fatal(err)
		}
	}
	for metric, want := range map[string]string{"": "60", "eval_loss": "60", "perplexity": "60", "exact_match": "1", "contains": "1"} {
		p := ts.do(c, "GET", fmt.Sprintf("/runs/%d/checkpoints?metric=%s", run, metric), nil, nil)
		if m := bestStep.FindStringSubmatch(p.body); m == nil || m[1] != want {
			t.Errorf("metric %q: best %v, want step %s", metric, m, want)
		}
	}
}

func TestEvaluationOfAnotherPersonsRunOrSnapshotIs404(t *testing.T) {
	ts := newTestServer(t, Config{})
	owner := ts.signUp("eval-a@example.com")
	other := ts.signUp("eval-b@example.com")
	early, final := greeterSnapshots(t)
	run, snaps := ts.evalRun(t, owner, "tunelab/byte-mlp-small", early, final)
	for _, p := range []struct{ method, path string }{
		{"POST", fmt.Sprintf("/runs/%d/snapshots/%d/evaluate", run, snaps[0].ID)},
		{"POST", fmt.Sprintf("/runs/%d/evaluate", run)},
		{"GET", fmt.Sprintf("/runs/%d/checkpoints", run)},
	} {
		var form url.Values
		if p.method == "POST" {
			form = url.Values{}
		}
		if r := ts.do(other, p.method, p.path, form, nil); r.status != http.StatusNotFound {
			t.Errorf("%s %s as another person: %d", p.method, p.path, r.status)
		}
	}
	// The owner's own run with another person's snapshot id is 404 too.
	run2, _ := ts.evalRun(t, other, "tunelab/byte-mlp-small", early, final)
	if r := ts.do(other, "POST", fmt.Sprintf("/runs/%d/snapshots/%d/evaluate", run2, snaps[0].ID), url.Values{}, nil); r.status != http.StatusNotFound {
		t.Errorf("someone else's snapshot under one's own run: %d", r.status)
	}
	if evals, _ := ts.store.SnapshotEvals(context.Background(), mustUserID(t, ts, owner), run, 0); len(evals) != 0 {
		t.Fatalf("queued: %+v", evals)
	}
}

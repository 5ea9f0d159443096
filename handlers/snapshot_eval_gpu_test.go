package handlers

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"tunelab/gpu"
	"tunelab/store"
	"tunelab/trainer/protocol"
)

// gpuChatRun is a finished GPU (Python-worker) run on 20 distinct chat rows, validation
// split 10 and seed 7, with one ZIP snapshot; it returns the run and snapshot ids.
func (ts *testServer) gpuChatRun(t *testing.T, c *http.Client) (runID, snapshotID int64) {
	t.Helper()
	var lines strings.Builder
	for i := range 20 {
		fmt.Fprintf(&lines, `{"messages":[{"role":"user","content":"Q %d"},{"role":"assistant","content":"A %d"}]}`+"\n", i, i)
	}
	v := runValues(ts.datasetFor(c, lines.String()))
	v.Set("base_model", "Qwen/Qwen2.5-0.5B")
	run := ts.startRun(c, v)
	claimed, tok := ts.claim(t)
	if claimed != run {
		t.Fatalf("claimed %d, want %d", claimed, run)
	}
	ts.post(run, "heartbeat", tok, `{"step":40,"total_steps":40}`)
	body := append([]byte("PK\x03\x04"), bytes.Repeat([]byte("adapter"), 50)...)
	sum := sha256.Sum256(body)
	r := ts.workerCall("PUT", fmt.Sprintf("/api/v1/worker/runs/%d/snapshots/40", run), tok, bytes.NewReader(body),
		map[string]string{"X-Snapshot-SHA256": hex.EncodeToString(sum[:]), "X-Snapshot-Final": "true", "Content-Type": "application/zip"})
	if r.status != http.StatusCreated {
		t.Fatalf("snapshot: %d %s", r.status, r.body)
	}
	ts.post(run, "finish", tok, `{"status":"succeeded"}`)
	snaps, err := ts.store.Snapshots(context.Background(), mustUserID(t, ts, c), run)
	if err != nil || len(snaps) != 1 {
		t.Fatalf("snapshots: %v %v", snaps, err)
	}
	return run, snaps[0].ID
}

// fakeScorer stands in for a deployment's inference server's POST /tunelab/score: each row
// scores 4 tokens at 0.5 nats each; a row asking "Q 15" is answered exactly, others not.
type fakeScorer struct {
	mu   sync.Mutex
	reqs []scoreRequest
}

func (f *fakeScorer) server(t *testing.T, key string) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.Header.Get("Authorization") != "Bearer "+key || r.URL.Path != "/tunelab/score" {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":{"message":"no"}}`)
			return
		}
		var req scoreRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.reqs = append(f.reqs, req)
		f.mu.Unlock()
		var out []map[string]any
		for _, row := range req.Rows {
			exact := bytes.Contains(row, []byte(`"Q 15"`))
			out = append(out, map[string]any{"nll": 2.0, "tokens": 4, "answer": "x", "exact": exact, "contains": true})
		}
		json.NewEncoder(w).Encode(map[string]any{"rows": out})
	}))
	t.Cleanup(s.Close)
	return s
}

// A GPU snapshot is evaluated on its live deployment: without one the page says so up
// front, offers no Evaluate, and a job fails saying to deploy first; deployed, its
// held-out rows (exactly the worker's split) are scored there in nats per token, and
// another person can neither queue nor see it.
func TestEvaluationOfGPUSnapshotRunsOnItsLiveDeployment(t *testing.T) {
	ts := newTestServerRuns(t, Config{}, nil, func(r *Runs, _ *store.Store, _ func() time.Time) { r.Backend = gpuOfferBackend{} })
	ctx := context.Background()
	c := ts.signUp("eval-gpu@example.com")
	uid := mustUserID(t, ts, c)
	run, sid := ts.gpuChatRun(t, c)
	runPage := fmt.Sprintf("/runs/%d", run)
	evalURL := fmt.Sprintf("/runs/%d/snapshots/%d/evaluate", run, sid)

	page := ts.do(c, "GET", runPage, nil, nil)
	body := html.UnescapeString(page.body)
	if !strings.Contains(body, `data-testid="checkpoints-gpu-note"`) || !strings.Contains(body, "deploy a snapshot first") ||
		!strings.Contains(body, "Eval loss (per token)") || strings.Contains(body, `data-testid="checkpoint-evaluate"`) ||
		strings.Contains(body, `data-testid="evaluate-all"`) {
		t.Fatalf("an undeployed GPU run's leaderboard does not say to deploy first")
	}
	// Queued anyway by hand: the job fails with what to do.
	if r := ts.do(c, "POST", evalURL, url.Values{}, nil); r.status != http.StatusSeeOther {
		t.Fatalf("evaluate: %d %s", r.status, r.body)
	}
	if e := ts.waitEvals(t, uid, run)[sid]; e.Status != store.EvalFailed || e.Error != errEvalNeedsDeployment.msg {
		t.Fatalf("undeployed: %+v", e)
	}
	if r := ts.do(c, "POST", fmt.Sprintf("/runs/%d/evaluate", run), url.Values{}, nil); r.status != http.StatusConflict ||
		!strings.Contains(html.UnescapeString(r.body), errNoDeployedSnapshot) {
		t.Fatalf("evaluate all, nothing deployed: %d", r.status)
	}

	// Deploy it; its serve job reports the fake inference server.
	m := deployForm.FindStringSubmatch(page.body)
	if m == nil {
		t.Fatal("the GPU snapshot offers no Deploy")
	}
	if r := ts.do(c, "POST", m[1], nil, nil); r.status != http.StatusSeeOther {
		t.Fatalf("deploy: %d", r.status)
	}
	deps, err := ts.store.Deployments(ctx, uid)
	if err != nil || len(deps) != 1 {
		t.Fatalf("deployments %+v %v", deps, err)
	}
	token, hash := gpu.NewRunToken()
	if ok, err := ts.store.SetDeploymentToken(ctx, deps[0].ID, hash); !ok || err != nil {
		t.Fatalf("token: %v %v", ok, err)
	}
	base := fmt.Sprintf("%s%d/", protocol.DeployPathPrefix, deps[0].ID)
	var job protocol.ServeJob
	wantAnswer(t, "job", ts.workerCall("GET", base+"job", token, nil, nil), http.StatusOK, &job)
	var scorer fakeScorer
	fake := scorer.server(t, job.APIKey)
	var rep protocol.ServeHeartbeatReply
	wantAnswer(t, "heartbeat", ts.workerCall("POST", base+"heartbeat", token, strings.NewReader(fmt.Sprintf(`{"url":%q,"healthy":true,"detail":""}`, fake.URL)), nil), http.StatusOK, &rep)

	if p := ts.do(c, "GET", runPage, nil, nil); !strings.Contains(p.body, `data-testid="checkpoint-evaluate"`) || !strings.Contains(p.body, `data-testid="evaluate-all"`) {
		t.Fatal("a deployed GPU snapshot offers no Evaluate")
	}
	if r := ts.do(c, "POST", fmt.Sprintf("/runs/%d/evaluate", run), url.Values{}, nil); r.status != http.StatusSeeOther {
		t.Fatalf("evaluate all: %d %s", r.status, r.body)
	}
	e := ts.waitEvals(t, uid, run)[sid]
	if e.Status != store.EvalDone || e.Rows != 2 || math.Abs(e.EvalLoss.Float64-0.5) > 1e-12 ||
		e.ExactMatch.Float64 != 0.5 || e.Contains.Float64 != 1 {
		t.Fatalf("scores: %+v", e)
	}
	// Exactly the rows the Python worker held out with split 10%, seed 7: rows 15 and 17.
	scorer.mu.Lock()
	reqs := scorer.reqs
	scorer.mu.Unlock()
	if len(reqs) != 1 || reqs[0].Format != "chat" || !reqs[0].Answers || reqs[0].MaxSeqLen != 256 || len(reqs[0].Rows) != 2 ||
		!bytes.Contains(reqs[0].Rows[0], []byte(`"Q 15"`)) || !bytes.Contains(reqs[0].Rows[1], []byte(`"Q 17"`)) {
		t.Fatalf("scoring requests: %+v", reqs)
	}
	page = ts.do(c, "GET", runPage, nil, nil)
	for _, want := range []string{"0.5000", "1.649", "50%", "100%", "2 rows"} {
		if !strings.Contains(page.body, want) {
			t.Errorf("the leaderboard lacks %q", want)
		}
	}

	// Another person: 404 on the evaluate addresses and the leaderboard, nothing queued.
	other := ts.signUp("eval-gpu-other@example.com")
	for _, p := range []struct{ method, path string }{{"POST", evalURL}, {"POST", fmt.Sprintf("/runs/%d/evaluate", run)}, {"GET", fmt.Sprintf("/runs/%d/checkpoints", run)}} {
		var form url.Values
		if p.method == "POST" {
			form = url.Values{}
		}
		if r := ts.do(other, p.method, p.path, form, nil); r.status != http.StatusNotFound {
			t.Errorf("%s %s as another person: %d", p.method, p.path, r.status)
		}
	}
}

package handlers

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"tunelab/store"
)

// workerCall sends one worker API request with a bearer token.
func (ts *testServer) workerCall(method, path, token string, body io.Reader, headers map[string]string) response {
	ts.t.Helper()
	req, _ := http.NewRequest(method, ts.URL+path, body)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil && headers["Content-Type"] == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		ts.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

func (ts *testServer) post(runID int64, endpoint, token, body string) response {
	ts.t.Helper()
	return ts.workerCall("POST", fmt.Sprintf("/api/v1/worker/runs/%d/%s", runID, endpoint), token, strings.NewReader(body), nil)
}

func errorCode(t *testing.T, r response) string {
	t.Helper()
	var e struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal([]byte(r.body), &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
		t.Fatalf("not a JSON error (%d): %s", r.status, r.body)
	}
	return e.Error.Code
}

// workerSetup: a signed-in person with two queued runs, both claimed with tokens.
func workerSetup(t testing.TB) (ts *testServer, c *http.Client, runA int64, tokA string, runB int64, tokB string) {
	ts = newTestServer(t, Config{})
	c = ts.signUp("worker@example.com")
	ds := ts.datasetFor(c, completionLines(20))
	ts.startRun(c, runValues(ds))
	ts.startRun(c, runValues(ds))
	runA, tokA = ts.claim(t)
	runB, tokB = ts.claim(t)
	return
}

func TestWorkerTokenIsBoundToItsRun(t *testing.T) {
	ts, _, runA, tokA, runB, tokB := workerSetup(t)
	job := fmt.Sprintf("/api/v1/worker/runs/%d/job", runA)
	if r := ts.workerCall("GET", job, tokA, nil, nil); r.status != 200 {
		t.Fatalf("own token: %d %s", r.status, r.body)
	}
	if r := ts.workerCall("GET", job, tokB, nil, nil); r.status != http.StatusForbidden || errorCode(t, r) != "forbidden" {
		t.Fatalf("run B's token on run A: %d %s", r.status, r.body)
	}
	if r := ts.post(runB, "heartbeat", tokA, `{"step":0,"total_steps":10}`); r.status != http.StatusForbidden {
		t.Fatalf("run A's token on run B heartbeat: %d", r.status)
	}
	for name, tok := range map[string]string{"none": "", "unknown": strings.Repeat("ab", 16), "short": "abc"} {
		if r := ts.workerCall("GET", job, tok, nil, nil); r.status != http.StatusUnauthorized || errorCode(t, r) != "unauthorized" {
			t.Errorf("%s token: %d", name, r.status)
		}
	}
	// A token in the query string is not a token.
	if r := ts.workerCall("GET", job+"?token="+tokA, "", nil, nil); r.status != http.StatusUnauthorized {
		t.Errorf("token in the URL accepted: %d", r.status)
	}
	events, _ := ts.store.RecentSecurityEvents(context.Background(), 20)
	misuse := 0
	for _, e := range events {
		if e.Kind == store.EventWorkerMisuse {
			misuse++
		}
	}
	if misuse != 2 {
		t.Errorf("worker_token_misuse events = %d, want 2", misuse)
	}
	if strings.Contains(ts.logs.String(), tokA) || strings.Contains(ts.logs.String(), tokB) {
		t.Fatal("a worker token reached the logs")
	}
	// The token dies with the run.
	if r := ts.post(runA, "finish", tokA, `{"status":"failed","reason":"test"}`); r.status != 200 {
		t.Fatalf("finish: %d %s", r.status, r.body)
	}
	if r := ts.workerCall("GET", job, tokA, nil, nil); r.status != http.StatusUnauthorized {
		t.Fatalf("token after the run ended: %d", r.status)
	}
}

func TestWorkerProtocolHappyPath(t *testing.T) {
	ts, c, run, tok, _, _ := workerSetup(t)
	r := ts.workerCall("GET", fmt.Sprintf("/api/v1/worker/runs/%d/job", run), tok, nil, nil)
	var spec struct {
		RunID   int64 `json:"run_id"`
		Config  store.RunConfig
		Dataset struct {
			Format string
			Rows   int
			URL    string
		}
		EvalDataset       *struct{} `json:"eval_dataset"`
		HeartbeatInterval int       `json:"heartbeat_interval_seconds"`
	}
	if err := json.Unmarshal([]byte(r.body), &spec); err != nil || spec.RunID != run || spec.Config.Method != "lora" ||
		spec.Dataset.Rows != 20 || spec.Dataset.Format != "completion" || spec.EvalDataset != nil || spec.HeartbeatInterval != 5 {
		t.Fatalf("job spec: %s", r.body)
	}
	data := ts.workerCall("GET", spec.Dataset.URL, tok, nil, nil)
	if data.status != 200 || data.body != completionLines(20) || data.header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("dataset download: %d %q", data.status, data.body[:min(80, len(data.body))])
	}

	if r := ts.post(run, "heartbeat", tok, `{"step":0,"total_steps":40}`); r.status != 200 || r.body != "{\"cancel\":false}\n" {
		t.Fatalf("heartbeat: %d %s", r.status, r.body)
	}
	got, _ := ts.store.RunByID(context.Background(), run)
	if got.Status != store.RunRunning || got.FirstHeartbeat.IsZero() {
		t.Fatalf("after the first heartbeat: %+v", got)
	}
	batch := `{"points":[{"name":"loss","step":10,"value":2.5},{"name":"eval_loss","step":10,"value":2.75}]}`
	if r := ts.post(run, "metrics", tok, batch); r.status != 200 || !strings.Contains(r.body, `"accepted":2`) {
		t.Fatalf("metrics: %d %s", r.status, r.body)
	}
	if r := ts.post(run, "metrics", tok, batch); r.status != 200 || !strings.Contains(r.body, `"duplicates":2`) {
		t.Fatalf("resent metrics: %d %s", r.status, r.body)
	}
	// NaN and infinities are recorded as events, not values.
	if r := ts.post(run, "metrics", tok, `{"points":[{"name":"grad_norm","step":11,"value":"NaN"},{"name":"grad_norm","step":12,"value":"-Infinity"}]}`); r.status != 200 {
		t.Fatalf("non-finite metrics: %d %s", r.status, r.body)
	}
	if r := ts.post(run, "logs", tok, `{"lines":["step 10/40 loss 2.5"]}`); r.status != 200 {
		t.Fatalf("logs: %d %s", r.status, r.body)
	}

	body := bytes.Repeat([]byte{1, 2, 3, 4}, 1000)
	sum := sha256.Sum256(body)
	snap := func(digest string) response {
		return ts.workerCall("PUT", fmt.Sprintf("/api/v1/worker/runs/%d/snapshots/40", run), tok, bytes.NewReader(body),
			map[string]string{"X-Snapshot-SHA256": digest, "X-Snapshot-Final": "true", "Content-Type": "application/octet-stream"})
	}
	before := ts.vaultFiles()
	if r := snap(strings.Repeat("0", 64)); r.status != http.StatusUnprocessableEntity || errorCode(t, r) != "checksum_mismatch" {
		t.Fatalf("bad digest: %d %s", r.status, r.body)
	}
	if ts.vaultFiles() != before {
		t.Fatal("a snapshot with a bad digest left a file")
	}
	if r := snap(hex.EncodeToString(sum[:])); r.status != http.StatusCreated {
		t.Fatalf("snapshot: %d %s", r.status, r.body)
	}
	if r := snap(hex.EncodeToString(sum[:])); r.status != http.StatusOK {
		t.Fatalf("re-sent snapshot: %d %s", r.status, r.body)
	}
	if r := ts.post(run, "finish", tok, `{"status":"succeeded"}`); r.status != 200 {
		t.Fatalf("finish: %d %s", r.status, r.body)
	}
	got, _ = ts.store.RunByID(context.Background(), run)
	if got.Status != store.RunSucceeded {
		t.Fatalf("status after finish: %s", got.Status)
	}

	// Every point exports at full resolution, in both formats.
	csvExport := ts.do(c, "GET", fmt.Sprintf("/runs/%d/metrics.csv", run), nil, nil)
	csvLines := strings.Split(strings.TrimSpace(csvExport.body), "\n")
	if csvExport.status != 200 || len(csvLines) != 5 || csvLines[0] != "name,step,value,time" ||
		!strings.HasPrefix(csvLines[1], "eval_loss,10,2.75,") || !strings.HasPrefix(csvLines[2], "grad_norm,11,NaN,") ||
		!strings.HasPrefix(csvLines[3], "grad_norm,12,-Inf,") || !strings.HasPrefix(csvLines[4], "loss,10,2.5,") {
		t.Fatalf("metrics.csv: %d\n%s", csvExport.status, csvExport.body)
	}
	jsonl := ts.do(c, "GET", fmt.Sprintf("/runs/%d/metrics.jsonl", run), nil, nil)
	var first struct {
		Name  string
		Step  int
		Value float64
		Time  string
	}
	if err := json.Unmarshal([]byte(strings.Split(jsonl.body, "\n")[0]), &first); err != nil ||
		first != (struct {
			Name  string
			Step  int
			Value float64
			Time  string
		}{"eval_loss", 10, 2.75, first.Time}) || first.Time == "" || strings.Count(jsonl.body, "\n") != 4 ||
		!strings.Contains(jsonl.body, `{"name":"grad_norm","step":11,"value":null,"kind":"nan",`) {
		t.Fatalf("metrics.jsonl: %s (%v)", jsonl.body, err)
	}

	// The owner sees it all on the run page and can download the snapshot byte for byte.
	page := ts.do(c, "GET", fmt.Sprintf("/runs/%d", run), nil, nil)
	for _, want := range []string{"Succeeded", "step 10/40 loss 2.5", "/snapshots/"} {
		if !strings.Contains(page.body, want) {
			t.Errorf("run page lacks %q", want)
		}
	}
	snaps, _ := ts.store.Snapshots(context.Background(), got.UserID, run)
	dl := ts.do(c, "GET", fmt.Sprintf("/runs/%d/snapshots/%d/download", run, snaps[0].ID), nil, nil)
	if dl.status != 200 || dl.body != string(body) || !strings.Contains(dl.header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("download: %d, %d bytes", dl.status, len(dl.body))
	}
}

func TestWorkerAPIRefusesBadInputAndStoresNothing(t *testing.T) {
	ts, _, run, tok, _, _ := workerSetup(t)
	for _, c := range []struct {
		name, endpoint, body, code string
		status                     int
	}{
		{"not JSON", "metrics", `{"points":[`, "invalid_json", 400},
		{"unknown field", "metrics", `{"points":[{"name":"loss","step":1,"value":1,"extra":1}]}`, "invalid_json", 400},
		{"top-level unknown field", "metrics", `{"points":[{"name":"loss","step":1,"value":1}],"x":1}`, "invalid_json", 400},
		{"value missing", "metrics", `{"points":[{"name":"loss","step":1}]}`, "invalid_field", 400},
		{"value a word", "metrics", `{"points":[{"name":"loss","step":1,"value":"fast"}]}`, "invalid_field", 400},
		{"value null", "metrics", `{"points":[{"name":"loss","step":1,"value":null}]}`, "invalid_field", 400},
		{"value overflowing", "metrics", `{"points":[{"name":"loss","step":1,"value":1e999}]}`, "invalid_field", 400},
		{"a step twice", "metrics", `{"points":[{"name":"loss","step":1,"value":1},{"name":"loss","step":1,"value":2}]}`, "invalid_field", 400},
		{"one bad point sinks the batch", "metrics", `{"points":[{"name":"loss","step":1,"value":1},{"name":"loss","step":2,"value":true}]}`, "invalid_field", 400},
		{"bad name", "metrics", `{"points":[{"name":"Loss!","step":1,"value":1}]}`, "invalid_field", 400},
		{"negative step", "metrics", `{"points":[{"name":"loss","step":-1,"value":1}]}`, "invalid_field", 400},
		{"no points", "metrics", `{"points":[]}`, "invalid_field", 400},
		{"two objects", "metrics", `{"points":[{"name":"loss","step":1,"value":1}]}{}`, "invalid_json", 400},
		{"too many points", "metrics", `{"points":[` + strings.Repeat(`{"name":"loss","step":1,"value":1},`, 10_000) + `{"name":"loss","step":2,"value":1}]}`, "invalid_field", 400},
		{"body too large", "logs", `{"lines":["` + strings.Repeat("x", 2<<20) + `"]}`, "too_large", 413},
		{"heartbeat past the end", "heartbeat", `{"step":11,"total_steps":10}`, "invalid_field", 400},
		{"heartbeat without steps", "heartbeat", `{}`, "invalid_field", 400},
		{"finish with an odd status", "finish", `{"status":"done"}`, "invalid_field", 400},
		{"finish with a long reason", "finish", `{"status":"failed","reason":"` + strings.Repeat("x", 501) + `"}`, "invalid_field", 400},
	} {
		r := ts.post(run, c.endpoint, tok, c.body)
		if r.status != c.status || errorCode(t, r) != c.code {
			t.Errorf("%s: %d %s", c.name, r.status, r.body)
		}
	}
	pts, _ := ts.store.MetricsAfter(context.Background(), run, 0, 10)
	logs, _ := ts.store.LogTail(context.Background(), run, 10)
	got, _ := ts.store.RunByID(context.Background(), run)
	if len(pts) != 0 || len(logs) != 0 || got.Status != store.RunStarting {
		t.Fatalf("refused requests changed the run: %d points, %d logs, status %s", len(pts), len(logs), got.Status)
	}
	if r := ts.workerCall("GET", "/api/v1/worker/nothing", tok, nil, nil); r.status != 404 || errorCode(t, r) != "not_found" {
		t.Fatalf("unknown endpoint: %d %s", r.status, r.body)
	}
}

// sseEvent is one parsed server-sent event.
type sseEvent struct{ id, event, data string }

func readEvents(t *testing.T, body *bufio.Reader, until func(sseEvent) bool) []sseEvent {
	t.Helper()
	var out []sseEvent
	var cur sseEvent
	for {
		line, err := body.ReadString('\n')
		if err != nil {
			t.Fatalf("stream ended: %v (after %d events)", err, len(out))
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "":
			if cur.data != "" || cur.event != "" {
				out = append(out, cur)
				if until(cur) {
					return out
				}
			}
			cur = sseEvent{}
		case strings.HasPrefix(line, "id: "):
			cur.id = line[4:]
		case strings.HasPrefix(line, "event: "):
			cur.event = line[7:]
		case strings.HasPrefix(line, "data: "):
			cur.data += line[6:] + "\n"
		}
	}
}

func openEvents(t *testing.T, ts *testServer, c *http.Client, run int64, lastID string) (*bufio.Reader, func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s/runs/%d/events?after=0", ts.URL, run), nil)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := c.Do(req)
	if err != nil || resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %v %v", resp, err)
	}
	return bufio.NewReader(resp.Body), func() { cancel(); resp.Body.Close() }
}

func TestRunEventsStreamLiveAndResume(t *testing.T) {
	ts, c, run, tok, _, _ := workerSetup(t)
	ts.post(run, "heartbeat", tok, `{"step":0,"total_steps":100}`)
	ts.post(run, "metrics", tok, `{"points":[{"name":"loss","step":1,"value":3}]}`)

	stream, closeStream := openEvents(t, ts, c, run, "")
	first := readEvents(t, stream, func(e sseEvent) bool { return e.event == "metrics" })
	if first[0].event != "" || !strings.Contains(first[0].data, "Running") {
		t.Fatalf("the stream does not open with the live panel: %+v", first[0])
	}
	history := first[len(first)-1]
	if !strings.Contains(history.data, `"step":1`) || history.id == "" {
		t.Fatalf("history event: %+v", history)
	}
	// A point posted now arrives live, after the history, with a newer id.
	ts.post(run, "metrics", tok, `{"points":[{"name":"loss","step":2,"value":2.5}]}`)
	live := readEvents(t, stream, func(e sseEvent) bool { return e.event == "metrics" })
	last := live[len(live)-1]
	if !strings.Contains(last.data, `"step":2`) || strings.Contains(last.data, `"step":1`) || last.id <= history.id {
		t.Fatalf("live event: %+v", last)
	}
	// Log lines re-render the panel.
	ts.post(run, "logs", tok, `{"lines":["hello from the worker"]}`)
	readEvents(t, stream, func(e sseEvent) bool { return e.event == "" && strings.Contains(e.data, "hello from the worker") })
	closeStream()

	// Reconnecting with Last-Event-ID resumes after it: no gap, no duplicate.
	ts.post(run, "metrics", tok, `{"points":[{"name":"loss","step":3,"value":2}]}`)
	stream, closeStream = openEvents(t, ts, c, run, history.id)
	defer closeStream()
	resumed := readEvents(t, stream, func(e sseEvent) bool { return e.event == "metrics" })
	data := resumed[len(resumed)-1].data
	if strings.Contains(data, `"step":1`) || !strings.Contains(data, `"step":2`) || !strings.Contains(data, `"step":3`) {
		t.Fatalf("resumed stream: %s", data)
	}
	// When the run ends the stream sends the final panel and "done", then closes.
	ts.post(run, "finish", tok, `{"status":"succeeded"}`)
	end := readEvents(t, stream, func(e sseEvent) bool { return e.event == "done" })
	if len(end) < 2 || !strings.Contains(end[len(end)-2].data, "Succeeded") {
		t.Fatalf("no final panel before done: %+v", end)
	}
	if _, err := stream.ReadString('\n'); err == nil {
		t.Fatal("the stream stayed open after done")
	}
}

func TestWorkerBadTokensAreRateLimited(t *testing.T) {
	ts, _, run, tok, _, _ := workerSetup(t)
	job := fmt.Sprintf("/api/v1/worker/runs/%d/job", run)
	for i := range 60 {
		if r := ts.workerCall("GET", job, strings.Repeat("cd", 16), nil, nil); r.status != http.StatusUnauthorized {
			t.Fatalf("bad token %d: %d", i, r.status)
		}
	}
	r := ts.workerCall("GET", job, strings.Repeat("cd", 16), nil, nil)
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" || errorCode(t, r) != "rate_limited" {
		t.Fatalf("61st bad token: %d %v", r.status, r.header)
	}
	// The limit is on failures from that address; after the window it lifts.
	ts.advance(61 * time.Second)
	if r := ts.workerCall("GET", job, tok, nil, nil); r.status != 200 {
		t.Fatalf("good token after the window: %d", r.status)
	}
}

// FuzzWorkerMetrics posts arbitrary bodies to the metrics endpoint: the answer is 200 or
// 400 (never a 5xx), and whatever is stored is a finite value with a valid name.
func FuzzWorkerMetrics(f *testing.F) {
	for _, seed := range []string{
		`{"points":[{"name":"loss","step":1,"value":2.5}]}`,
		`{"points":[{"name":"loss","step":1,"value":1e308}]}`,
		`{"points":[{"name":"a","step":0,"value":-0}]}`,
		`{"points":[{"name":"loss","step":1.5,"value":1}]}`,
		`{"points":null}`, `[]`, `null`, `{"points":[{}]}`, "\xff", `{"points":[{"name":"loss","step":1,"value":NaN}]}`,
	} {
		f.Add(seed)
	}
	ts, _, run, tok, _, _ := workerSetup(f)
	f.Fuzz(func(t *testing.T, body string) {
		ts.t = t
		r := ts.post(run, "metrics", tok, body)
		if r.status != 200 && r.status != 400 && r.status != 413 {
			t.Fatalf("status %d for %q: %s", r.status, body, r.body)
		}
		pts, err := ts.store.MetricsAfter(context.Background(), run, 0, 100000)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pts {
			if math.IsNaN(p.Value) || math.IsInf(p.Value, 0) || !metricName.MatchString(p.Name) || p.Step < 0 {
				t.Fatalf("stored %+v", p)
			}
		}
	})
}

func TestRunEventsWithoutAStartPointSendOnlyNewPoints(t *testing.T) {
	ts, c, run, tok, _, _ := workerSetup(t)
	ts.post(run, "metrics", tok, `{"points":[{"name":"loss","step":1,"value":3}]}`)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s/runs/%d/events", ts.URL, run), nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	stream := bufio.NewReader(resp.Body)
	readEvents(t, stream, func(e sseEvent) bool { return e.event == "" }) // the panel
	ts.post(run, "metrics", tok, `{"points":[{"name":"loss","step":2,"value":2}]}`)
	got := readEvents(t, stream, func(e sseEvent) bool { return e.event == "metrics" })
	last := got[len(got)-1]
	if strings.Contains(last.data, `"step":1`) || !strings.Contains(last.data, `"step":2`) || last.id != "2" {
		t.Fatalf("a stream with no start point sent %+v", last)
	}
}

// A heartbeat with "wait": true is held until the run's owner cancels, then answered at
// once with cancel; without a cancel it is answered after the interval. Meanwhile the run
// page says "Cancelling", with no estimate and no Cancel button, until the worker confirms.
func TestHeartbeatWaitHearsACancelAtOnce(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.signUp("hold@example.com")
	ts.startRun(c, runValues(ts.datasetFor(c, completionLines(20))))
	run, tok := ts.claim(t)
	if r := ts.post(run, "heartbeat", tok, `{"step":5,"total_steps":100}`); r.status != 200 || r.body != "{\"cancel\":false}\n" {
		t.Fatalf("plain heartbeat: %d %s", r.status, r.body)
	}
	type answer struct {
		r    response
		took time.Duration
	}
	held := make(chan answer, 1)
	go func() {
		start := time.Now()
		r := ts.post(run, "heartbeat", tok, `{"step":6,"total_steps":100,"wait":true}`)
		held <- answer{r, time.Since(start)}
	}()
	select {
	case a := <-held:
		t.Fatalf("the waiting heartbeat was answered at once: %d %s", a.r.status, a.r.body)
	case <-time.After(300 * time.Millisecond):
	}
	asked := time.Now()
	if r := ts.do(c, "POST", fmt.Sprintf("/runs/%d/cancel", run), url.Values{}, nil); r.status != http.StatusSeeOther {
		t.Fatalf("cancel: %d", r.status)
	}
	select {
	case a := <-held:
		if a.r.status != 200 || a.r.body != "{\"cancel\":true}\n" {
			t.Fatalf("held heartbeat: %d %s", a.r.status, a.r.body)
		}
		t.Logf("held %s; answered %s after the cancel", a.took.Round(time.Millisecond), time.Since(asked).Round(time.Millisecond))
	case <-time.After(2 * time.Second):
		t.Fatal("the held heartbeat did not hear the cancel")
	}
	page := ts.do(c, "GET", fmt.Sprintf("/runs/%d", run), nil, nil)
	for _, want := range []string{`data-testid="live-sentence">Cancelling: waiting for the worker`, `data-testid="live-eta">—<`, `>Cancelling<`} {
		if !strings.Contains(page.body, want) {
			t.Errorf("the page while cancelling lacks %q", want)
		}
	}
	if strings.Contains(page.body, fmt.Sprintf("/runs/%d/cancel", run)) || strings.Contains(page.body, "Training. The charts") {
		t.Error("the page while cancelling still offers Cancel or says it is training")
	}
}

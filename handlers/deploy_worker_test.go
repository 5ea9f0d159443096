package handlers

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"tunelab/gpu"
	"tunelab/store"
	"tunelab/trainer/protocol"
)

// fakeInference stands in for the Python worker's inference server: it requires the serve
// key and answers a fixed completion, streamed or not.
func fakeInference(t *testing.T, key string) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+key {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":{"message":"no","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}`)
			return
		}
		body, _ := io.ReadAll(r.Body)
		if bytes.Contains(body, []byte(`"bad-param"`)) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"error":{"message":"max_tokens must be a whole number from 1 to 512.","type":"invalid_request_error","param":"max_tokens","code":"invalid_value"}}`)
			return
		}
		if bytes.Contains(body, []byte(`"stream":true`)) {
			w.Header().Set("Content-Type", "text/event-stream")
			for _, piece := range []string{"Bon", "jour"} {
				fmt.Fprintf(w, "data: {\"object\":\"chat.completion.chunk\",\"path\":%q,\"choices\":[{\"index\":0,\"delta\":{\"content\":%q}}]}\n\n", r.URL.Path, piece)
				w.(http.Flusher).Flush()
			}
			io.WriteString(w, "data: [DONE]\n\n")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"object":"chat.completion","path":%q,"choices":[{"index":0,"message":{"role":"assistant","content":"Bonjour"},"finish_reason":"stop"}]}`, r.URL.Path)
	}))
	t.Cleanup(s.Close)
	return s
}

// A GPU snapshot deployed: its serve job gets the spec and the snapshot through the
// deployment's worker API, reports its inference server, and /v1 requests for its model id
// are proxied there (503 while starting or unhealthy); Stop reaches the job, its GPU time
// lands in the usage ledger, and another person sees none of it.
func TestWorkerDeploymentIsServedThroughItsInferenceServer(t *testing.T) {
	ts := newTestServerRuns(t, Config{}, nil, func(r *Runs, _ *store.Store, _ func() time.Time) { r.Backend = gpuOfferBackend{} })
	ctx := context.Background()
	c := ts.signUp("deploy-gpu@example.com")
	uid := mustUserID(t, ts, c)
	zipBody := append([]byte("PK\x03\x04"), bytes.Repeat([]byte("adapter"), 50)...)
	sid := ts.storedSnapshot(t, c, "Qwen/Qwen2.5-0.5B", zipBody, "application/zip")
	sn, err := ts.store.PlaygroundSnapshotByID(ctx, uid, sid)
	if err != nil {
		t.Fatal(err)
	}
	m := deployForm.FindStringSubmatch(ts.do(c, "GET", fmt.Sprintf("/runs/%d", sn.RunID), nil, nil).body)
	if m == nil {
		t.Fatal("the GPU snapshot offers no Deploy")
	}
	if r := ts.do(c, "POST", m[1], nil, nil); r.status != http.StatusSeeOther || r.header.Get("Location") != "/deployments" {
		t.Fatalf("deploy: %d %q", r.status, r.header.Get("Location"))
	}
	deps, err := ts.store.Deployments(ctx, uid)
	if err != nil || len(deps) != 1 || !deps[0].Worker || deps[0].Job.ServeKeySealed == nil {
		t.Fatalf("deployments %+v %v", deps, err)
	}
	d := deps[0]
	if list := ts.do(c, "GET", "/deployments", nil, nil); !strings.Contains(list.body, ">Starting<") || !strings.Contains(list.body, "local backend") {
		t.Fatalf("a starting deployment on the page:\n%s", list.body)
	}
	key := ts.makeAPIKey(c, "k", "")
	chat := fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"Hi"}],"max_tokens":5}`, d.Name)
	if r := ts.openaiPost(key, "/v1/chat/completions", chat); r.status != http.StatusServiceUnavailable ||
		*openaiErrorOf(t, r).Code != "model_not_ready" || !strings.Contains(r.body, "is starting") {
		t.Fatalf("while starting: %d %s", r.status, r.body)
	}

	// The dispatcher's part: a token for the job.
	token, hash := gpu.NewRunToken()
	if ok, err := ts.store.SetDeploymentToken(ctx, d.ID, hash); !ok || err != nil {
		t.Fatalf("token: %v %v", ok, err)
	}
	if err := ts.store.SetDeploymentJob(ctx, d.ID, "123:456"); err != nil {
		t.Fatal(err)
	}
	base := fmt.Sprintf("%s%d/", protocol.DeployPathPrefix, d.ID)
	wantError(t, "no token", ts.workerCall("GET", base+"job", "", nil, nil), http.StatusUnauthorized, "unauthorized")
	other, _ := gpu.NewRunToken()
	wantError(t, "a wrong token", ts.workerCall("GET", base+"job", other, nil, nil), http.StatusUnauthorized, "unauthorized")
	wantError(t, "a run's path", ts.workerCall("GET", fmt.Sprintf("/api/v1/worker/runs/%d/job", sn.RunID), token, nil, nil), http.StatusUnauthorized, "unauthorized")

	var job protocol.ServeJob
	wantAnswer(t, "job", ts.workerCall("GET", base+"job", token, nil, nil), http.StatusOK, &job)
	if job.DeploymentID != d.ID || job.Model != d.Name || job.BaseModel != "Qwen/Qwen2.5-0.5B" || len(job.APIKey) != 32 ||
		job.Snapshot.SHA256 != sn.SHA256 || job.Snapshot.URL != base+"snapshot" || job.HeartbeatIntervalSeconds <= 0 || job.MaxTokens <= 0 {
		t.Fatalf("job %+v", job)
	}
	if r := ts.workerCall("GET", base+"snapshot", token, nil, nil); r.status != 200 || r.body != string(zipBody) ||
		r.header.Get(protocol.HeaderSnapshotSHA256) != sn.SHA256 {
		t.Fatalf("snapshot: %d (%d bytes)", r.status, len(r.body))
	}
	fake := fakeInference(t, job.APIKey)
	heartbeat := func(body string) protocol.ServeHeartbeatReply {
		t.Helper()
		var rep protocol.ServeHeartbeatReply
		wantAnswer(t, "heartbeat", ts.workerCall("POST", base+"heartbeat", token, strings.NewReader(body), nil), http.StatusOK, &rep)
		return rep
	}
	for _, bad := range []string{`{"url":"ftp://x","healthy":true,"detail":""}`, `{"url":"http://h:1/v1","healthy":true,"detail":""}`,
		`{"url":"http://u:p@h:1","healthy":true,"detail":""}`, `{"url":"http://h:1","healthy":true,"detail":"","extra":1}`} {
		r := ts.workerCall("POST", base+"heartbeat", token, strings.NewReader(bad), nil)
		if r.status != http.StatusBadRequest {
			t.Fatalf("heartbeat %s: %d %s", bad, r.status, r.body)
		}
	}
	if rep := heartbeat(fmt.Sprintf(`{"url":%q,"healthy":true,"detail":""}`, fake.URL)); rep.Stop {
		t.Fatal("a live deployment was told to stop")
	}
	var logs protocol.LogsReply
	wantAnswer(t, "logs", ts.workerCall("POST", base+"logs", token, strings.NewReader(`{"lines":["serving on the fake URL"]}`), nil), http.StatusOK, &logs)

	// Proxied, as sent and as answered, streamed and not.
	r := ts.openaiPost(key, "/v1/chat/completions", chat)
	if r.status != 200 || !strings.Contains(r.body, `"content":"Bonjour"`) || !strings.Contains(r.body, `"path":"/v1/chat/completions"`) {
		t.Fatalf("proxied chat: %d %s", r.status, r.body)
	}
	r = ts.openaiPost(key, "/v1/completions", fmt.Sprintf(`{"model":%q,"prompt":"Hi","stream":true}`, d.Name))
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/event-stream") || !strings.Contains(r.body, `"path":"/v1/completions"`) ||
		!strings.Contains(r.body, `"content":"jour"`) || !strings.HasSuffix(r.body, "data: [DONE]\n\n") {
		t.Fatalf("proxied stream: %d %q", r.status, r.body)
	}
	r = ts.openaiPost(key, "/v1/chat/completions", fmt.Sprintf(`{"model":%q,"messages":[],"max_tokens":"bad-param"}`, d.Name))
	if r.status != 400 || *openaiErrorOf(t, r).Param != "max_tokens" {
		t.Fatalf("the inference server's refusal: %d %s", r.status, r.body)
	}
	list := ts.do(c, "GET", "/deployments", nil, nil)
	if !strings.Contains(list.body, ">Live<") || !strings.Contains(list.body, "serving on the fake URL") || !strings.Contains(list.body, `data-testid="deployment-stop"`) {
		t.Fatalf("a live GPU deployment on the page:\n%s", list.body)
	}
	var models struct {
		Object string        `json:"object"`
		Data   []openaiModel `json:"data"`
	}
	decodeExactly(t, "models", ts.workerCall("GET", "/v1/models", key, nil, nil).body, &models)
	if !slices.ContainsFunc(models.Data, func(m openaiModel) bool { return m.ID == d.Name }) {
		t.Fatalf("models %+v", models.Data)
	}

	// Another person: no page row, no stop, no model.
	o := ts.signUp("other-gpu@example.com")
	okey := ts.makeAPIKey(o, "k", "")
	if r := ts.do(o, "GET", "/deployments", nil, nil); strings.Contains(r.body, d.Name) {
		t.Fatal("another person sees the deployment")
	}
	if r := ts.do(o, "POST", fmt.Sprintf("/deployments/%d/stop", d.ID), nil, nil); r.status != http.StatusNotFound {
		t.Fatalf("another person's stop: %d", r.status)
	}
	if r := ts.openaiPost(okey, "/v1/chat/completions", chat); r.status != 404 || *openaiErrorOf(t, r).Code != "model_not_found" {
		t.Fatalf("another person's call: %d %s", r.status, r.body)
	}

	// Unhealthy: 503 saying so.
	ts.advance(90 * time.Second)
	heartbeat(fmt.Sprintf(`{"url":%q,"healthy":false,"detail":"CUDA out of memory"}`, fake.URL))
	if r := ts.openaiPost(key, "/v1/chat/completions", chat); r.status != 503 || !strings.Contains(r.body, "unhealthy") || !strings.Contains(r.body, "CUDA out of memory") {
		t.Fatalf("unhealthy: %d %s", r.status, r.body)
	}
	if list := ts.do(c, "GET", "/deployments", nil, nil); !strings.Contains(list.body, ">Unhealthy<") {
		t.Fatal("the page does not say unhealthy")
	}

	// Stop: the job hears it, finishes, and its GPU time is in the ledger.
	if r := ts.do(c, "POST", fmt.Sprintf("/deployments/%d/stop", d.ID), nil, nil); r.status != http.StatusSeeOther {
		t.Fatalf("stop: %d", r.status)
	}
	if list := ts.do(c, "GET", "/deployments", nil, nil); !strings.Contains(list.body, ">Stopping<") {
		t.Fatal("the page does not say stopping")
	}
	ts.advance(10 * time.Second)
	if rep := heartbeat(fmt.Sprintf(`{"url":%q,"healthy":true,"detail":""}`, fake.URL)); !rep.Stop {
		t.Fatal("the stop did not reach the job")
	}
	if r := ts.openaiPost(key, "/v1/chat/completions", chat); r.status != 404 {
		t.Fatalf("a stopping deployment still answers: %d", r.status)
	}
	var fin protocol.FinishReply
	wantAnswer(t, "finish", ts.workerCall("POST", base+"finish", token, strings.NewReader(`{"status":"stopped","reason":""}`), nil), http.StatusOK, &fin)
	wantError(t, "after the end", ts.workerCall("GET", base+"job", token, nil, nil), http.StatusUnauthorized, "unauthorized")
	secs, err := ts.store.DeploymentSeconds(ctx, d.ID)
	if err != nil || secs != 100 {
		t.Fatalf("metered %d seconds (%v), want 100", secs, err)
	}
	if run, err := ts.store.RunByID(ctx, sn.RunID); err != nil || run.GPUSeconds != 0 {
		t.Fatalf("the run's own GPU time took the deployment's: %+v %v", run.GPUSeconds, err)
	}
	if bill := ts.do(c, "GET", "/billing", nil, nil); !strings.Contains(bill.body, ": deployments") {
		t.Fatalf("the deployment's GPU time is not on the billing page:\n%s", bill.body)
	}
	if list := ts.do(c, "GET", "/deployments", nil, nil); !strings.Contains(list.body, ">Stopped<") || strings.Contains(list.body, `data-testid="deployment-stop"`) {
		t.Fatalf("a stopped GPU deployment on the page:\n%s", list.body)
	}
	audit, err := ts.store.AuditFor(ctx, uid, 20)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range audit {
		actions = append(actions, e.Action)
	}
	if !slices.Contains(actions, store.AuditDeploymentCreated) || !slices.Contains(actions, store.AuditDeploymentStopped) {
		t.Fatalf("audit %v", actions)
	}
}

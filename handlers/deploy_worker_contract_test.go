package handlers

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"tunelab/gpu"
	"tunelab/store"
	"tunelab/trainer/protocol"
)

// The deployment half of the worker API against trainer/protocol: answers decode strictly
// into its types, requests built from them are accepted, refusals come in ErrorBody with
// the codes the protocol names.
func TestDeploymentWorkerAPIMatchesTheProtocol(t *testing.T) {
	ts := newTestServerRuns(t, Config{}, nil, func(r *Runs, _ *store.Store, _ func() time.Time) { r.Backend = gpuOfferBackend{} })
	ctx := context.Background()
	c := ts.signUp("deploy-contract@example.com")
	uid := mustUserID(t, ts, c)
	sid := ts.storedSnapshot(t, c, "Qwen/Qwen2.5-0.5B", []byte("PK\x03\x04 contract weights"), "application/zip")
	sn, _ := ts.store.PlaygroundSnapshotByID(ctx, uid, sid)
	ts.do(c, "POST", fmt.Sprintf("/runs/%d/snapshots/%d/deploy", sn.RunID, sid), nil, nil)
	deps, _ := ts.store.Deployments(ctx, uid)
	d := deps[0]
	token, hash := gpu.NewRunToken()
	ts.store.SetDeploymentToken(ctx, d.ID, hash)
	base := fmt.Sprintf("%s%d/", protocol.DeployPathPrefix, d.ID)
	call := func(method, endpoint string, body any) response {
		t.Helper()
		if body == nil {
			return ts.workerCall(method, base+endpoint, token, nil, nil)
		}
		if s, ok := body.(string); ok {
			return ts.workerCall(method, base+endpoint, token, strings.NewReader(s), nil)
		}
		return ts.workerCall(method, base+endpoint, token, wireBody(t, body), nil)
	}

	var job protocol.ServeJob
	wantAnswer(t, "GET /job", call("GET", "job", nil), http.StatusOK, &job)
	if job.Method != "lora" || job.GPUType == "" || job.Snapshot.RunID != sn.RunID || job.Snapshot.Step != sn.Step ||
		job.Snapshot.SizeBytes != sn.SizeBytes || job.HeartbeatIntervalSeconds != 5 {
		t.Fatalf("job %+v", job)
	}
	var beat protocol.ServeHeartbeatReply
	wantAnswer(t, "loading heartbeat", call("POST", "heartbeat", protocol.ServeHeartbeat{Detail: "loading the model"}), http.StatusOK, &beat)
	wantAnswer(t, "heartbeat", call("POST", "heartbeat", protocol.ServeHeartbeat{URL: "https://gpu-7.cluster:8443/", Healthy: true}), http.StatusOK, &beat)
	if beat.Stop {
		t.Fatal("told to stop")
	}
	var logs protocol.LogsReply
	wantAnswer(t, "logs", call("POST", "logs", protocol.LogBatch{Lines: []string{"a", "b\nc"}}), http.StatusOK, &logs)
	if logs.Accepted != 2 {
		t.Fatalf("logs %+v", logs)
	}
	if got, _ := ts.store.WorkerDeployment(ctx, d.ID); got.Job.Log != "a\nb c\n" || got.Job.URL != "https://gpu-7.cluster:8443" {
		t.Fatalf("stored log %q url %q", got.Job.Log, got.Job.URL)
	}

	wantError(t, "unknown field", call("POST", "heartbeat", `{"url":"","healthy":false,"detail":"","wait":true}`), http.StatusBadRequest, protocol.CodeInvalidJSON)
	wantError(t, "a run's finish status", call("POST", "finish", protocol.Finish{Status: protocol.StatusSucceeded}), http.StatusBadRequest, protocol.CodeInvalidField)
	wantError(t, "too many lines", call("POST", "logs", protocol.LogBatch{}), http.StatusBadRequest, protocol.CodeInvalidField)
	wantError(t, "no such endpoint", call("GET", "nothing", nil), http.StatusNotFound, protocol.CodeNotFound)
	wantError(t, "a run's endpoint", call("POST", "metrics", `{"points":[]}`), http.StatusNotFound, protocol.CodeNotFound)

	var done protocol.FinishReply
	wantAnswer(t, "finish", call("POST", "finish", protocol.Finish{Status: protocol.ServeFailed, Reason: "CUDA out of memory"}), http.StatusOK, &done)
	if done.Status != protocol.ServeFailed {
		t.Fatalf("finish %+v", done)
	}
	wantError(t, "after the end", call("POST", "heartbeat", protocol.ServeHeartbeat{}), http.StatusUnauthorized, protocol.CodeUnauthorized)
	if got, _ := ts.store.WorkerDeployment(ctx, d.ID); !got.Job.Failed || got.Job.Reason != "CUDA out of memory" {
		t.Fatalf("ended %+v", got.Job)
	}
	if page := ts.do(c, "GET", "/deployments", nil, nil); !strings.Contains(page.body, ">Failed<") || !strings.Contains(page.body, "CUDA out of memory") {
		t.Fatal("the page does not say the deployment failed and why")
	}
}

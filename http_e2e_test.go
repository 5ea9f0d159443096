package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"tunelab/store"
)

// processProvider implements docs/http-backend.md by running each job's command as a
// process on this machine, with the job's environment: a GPU provider in miniature.
type processProvider struct {
	t    *testing.T
	mu   sync.Mutex
	jobs map[string]*providerProc // by id
	keys map[string]string        // idempotency key -> id
}

type providerProc struct {
	cmd  *exec.Cmd
	done chan struct{}
	env  map[string]string
	args []string
}

func newProcessProvider(t *testing.T) *httptest.Server {
	p := &processProvider{t: t, jobs: map[string]*providerProc{}, keys: map[string]string{}}
	srv := httptest.NewServer(p)
	t.Cleanup(func() {
		srv.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, j := range p.jobs {
			j.cmd.Process.Kill()
			<-j.done
		}
	})
	return srv
}

func (p *processProvider) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if r.Header.Get("Authorization") != "Bearer e2e-provider-token" {
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(`{"error":{"code":"unauthenticated","message":"bad token"}}`))
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case r.URL.Path == "/v1/offer":
		w.Write([]byte(`{"gpu_types":[{"id":"e2e-gpu","name":"A process on the test machine","free":1}]}`))
	case r.Method == "POST" && r.URL.Path == "/v1/jobs":
		if id, ok := p.keys[r.Header.Get("Idempotency-Key")]; ok {
			json.NewEncoder(w).Encode(map[string]string{"id": id, "state": "running"})
			return
		}
		var req struct {
			Command []string          `json:"command"`
			Env     map[string]string `json:"env"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.Command) == 0 {
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"error":{"code":"invalid_request","message":"no command"}}`))
			return
		}
		cmd := exec.Command(req.Command[0], req.Command[1:]...)
		cmd.Env = os.Environ()
		for k, v := range req.Env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		if err := cmd.Start(); err != nil {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		id := "proc-" + r.Header.Get("Idempotency-Key")
		j := &providerProc{cmd: cmd, done: make(chan struct{}), env: req.Env, args: req.Command}
		go func() { cmd.Wait(); close(j.done) }()
		p.jobs[id], p.keys[r.Header.Get("Idempotency-Key")] = j, id
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(map[string]string{"id": id, "state": "running"})
	case strings.HasPrefix(r.URL.Path, "/v1/jobs/"):
		id := strings.TrimPrefix(r.URL.Path, "/v1/jobs/")
		j := p.jobs[id]
		if j == nil {
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"error":{"code":"not_found","message":"no such job"}}`))
			return
		}
		if r.Method == "DELETE" {
			j.cmd.Process.Signal(os.Interrupt)
		}
		state, reason := "running", ""
		select {
		case <-j.done:
			state, reason = "succeeded", j.cmd.ProcessState.String()
			if !j.cmd.ProcessState.Success() {
				state = "failed"
			}
		default:
		}
		json.NewEncoder(w).Encode(map[string]string{"id": id, "state": state, "reason": reason})
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

// A run on the http backend succeeds end to end: the provider runs `tunelab worker` with
// the token from the submit's env, and the worker trains against the server.
func TestHTTPBackendRunEndToEnd(t *testing.T) {
	prov := newProcessProvider(t)
	dir := t.TempDir()
	env := map[string]string{"TUNELAB_BACKEND": "http", "TUNELAB_HTTP_URL": prov.URL, "TUNELAB_HTTP_TOKEN": "e2e-provider-token",
		"TUNELAB_HTTP_GPU_TYPES": "e2e-gpu", "TUNELAB_HTTP_WORKER": workerBinary(t) + " worker",
		"TUNELAB_HEARTBEAT_INTERVAL": "1s", "TUNELAB_HEARTBEAT_TIMEOUT": "20s"}
	hostPort := freePort(t)
	env["TUNELAB_WORKER_URL"] = "http://" + hostPort
	addr, _ := startServerAt(t, env, dir, hostPort)
	app := newAppClient(t, "http://"+addr)
	st := openStore(t, dir)
	dataset := app.signUpWithSample("http-e2e@example.com")
	id := startRunOn(t, app, dataset, "e2e-gpu", "lora", 3)

	run := waitRun(t, st, id, "the end of the run", 4*time.Minute, func(r store.Run) bool { return r.Final() })
	if run.Status != store.RunSucceeded || run.Backend != "http" || !strings.HasPrefix(run.JobID, "proc-tunelab-run-") {
		t.Fatalf("run ended %s on %q as job %q: %s", run.Status, run.Backend, run.JobID, run.Reason)
	}
	if len(metricSeries(t, st, id)["loss"]) == 0 {
		t.Fatal("no loss points")
	}
}

// startRunOn starts a run of the small model on a GPU type.
func startRunOn(t *testing.T, app *appClient, dataset int64, gpuType, method string, epochs int) int64 {
	t.Helper()
	code, loc := app.post("/runs", url.Values{
		"dataset_id": {fmt.Sprint(dataset)}, "base_model": {"tunelab/byte-mlp-small"}, "method": {method},
		"epochs": {fmt.Sprint(epochs)}, "learning_rate": {"0.003"}, "batch_size": {"16"}, "lora_rank": {"8"},
		"lora_alpha": {"16"}, "max_seq_len": {"256"}, "seed": {"3"}, "gpu_type": {gpuType}, "validation_split": {"10"},
		"snapshot_every": {"20"},
	})
	if code != http.StatusSeeOther {
		t.Fatalf("start run: %d", code)
	}
	return idFrom(t, loc)
}

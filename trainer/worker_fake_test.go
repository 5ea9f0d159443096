package trainer

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeWorkerServer implements the server side of docs/worker-api.md in
// memory, checking every request against the contract, so RunWorker can be
// tested end to end. Faults are injected per request.
type fakeWorkerServer struct {
	t        *testing.T
	runID    int64
	token    string
	job      map[string]any
	datasets map[string]string // by ?which=: "" (train) or "eval"

	// fault is asked about every authorised request (under mu). A zero
	// status handles it; otherwise the request is answered with status,
	// after handling it when lost is set (as if the answer got lost).
	fault func(endpoint string) (status int, lost bool)
	// heartbeatReply decides a heartbeat's answer: a status other than 200
	// refuses it, cancel asks the worker to stop.
	heartbeatReply func(step, total int) (status int, cancel bool)
	// stopReply, when set, gives a clean stop's reason for a heartbeat ("": none).
	stopReply func(step, total int) string

	mu          sync.Mutex
	requests    map[string]int // by endpoint
	heartbeats  []fakeHeartbeat
	points      map[fakePointKey]float64
	duplicates  int
	logs        []string
	snapshots   map[int]fakeSnapshot
	finishes    []fakeFinish
	finishedAt  time.Time
	cancelledAt time.Time // first heartbeat answered with cancel
	ended       bool      // the run ended: the token is dead

	srv *httptest.Server
}

type fakeHeartbeat struct{ step, total int }

type fakePointKey struct {
	name string
	step int
}

type fakeSnapshot struct {
	data   []byte
	sha256 string
	final  bool
}

type fakeFinish struct{ status, reason string }

const fakeToken = "00112233445566778899aabbccddeeff"

func newFakeWorkerServer(t *testing.T, job map[string]any, train, eval string) *fakeWorkerServer {
	f := &fakeWorkerServer{
		t: t, runID: 12, token: fakeToken, job: job,
		datasets:  map[string]string{"": train, "eval": eval},
		requests:  map[string]int{},
		points:    map[fakePointKey]float64{},
		snapshots: map[int]fakeSnapshot{},
	}
	mux := http.NewServeMux()
	const base = "/api/v1/worker/runs/{id}/"
	mux.HandleFunc("GET "+base+"job", f.endpoint("job", f.serveJob))
	mux.HandleFunc("GET "+base+"dataset", f.endpoint("dataset", f.serveDataset))
	mux.HandleFunc("POST "+base+"heartbeat", f.endpoint("heartbeat", f.serveHeartbeat))
	mux.HandleFunc("POST "+base+"metrics", f.endpoint("metrics", f.serveMetrics))
	mux.HandleFunc("POST "+base+"logs", f.endpoint("logs", f.serveLogs))
	mux.HandleFunc("PUT "+base+"snapshots/{step}", f.endpoint("snapshot", f.serveSnapshot))
	mux.HandleFunc("POST "+base+"finish", f.endpoint("finish", f.serveFinish))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("worker called %s %s, which the API does not have", r.Method, r.URL.Path)
		fakeError(w, http.StatusNotFound, "not_found", "No such endpoint.")
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeWorkerServer) options(log io.Writer) WorkerOptions {
	return WorkerOptions{Server: f.srv.URL, RunID: f.runID, Token: f.token, Log: log, Patience: 20 * time.Second}
}

func fakeError(w http.ResponseWriter, status int, code, msg string) {
	if status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "0")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

func fakeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// endpoint checks the token and the run, and applies faults. Requests are
// handled one at a time, which keeps the fake simple.
func (f *fakeWorkerServer) endpoint(name string, handle func(http.ResponseWriter, *http.Request)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.requests[name]++
		if r.Header.Get("Authorization") != "Bearer "+f.token || f.ended {
			fakeError(w, http.StatusUnauthorized, "unauthorized", "The token is not valid for a live run.")
			return
		}
		if r.PathValue("id") != strconv.FormatInt(f.runID, 10) {
			fakeError(w, http.StatusForbidden, "forbidden", "This token belongs to a different run.")
			return
		}
		if r.Method == http.MethodPost && r.Header.Get("Content-Type") != "application/json" {
			f.t.Errorf("%s: Content-Type %q", name, r.Header.Get("Content-Type"))
		}
		status, lost := 0, false
		if f.fault != nil {
			status, lost = f.fault(name)
		}
		switch {
		case status == 0:
			handle(w, r)
		case lost:
			handle(httptest.NewRecorder(), r)
			fakeError(w, status, "internal", "Try again later.")
		default:
			io.Copy(io.Discard, r.Body)
			fakeError(w, status, "internal", "Try again later.")
		}
	}
}

// decode reads a JSON body as the real server does: no unknown fields.
func (f *fakeWorkerServer) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		f.t.Errorf("%s: body refused: %v", r.URL.Path, err)
		fakeError(w, http.StatusBadRequest, "invalid_json", err.Error())
		return false
	}
	return true
}

func (f *fakeWorkerServer) refuse(w http.ResponseWriter, r *http.Request, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	f.t.Errorf("%s: %s", r.URL.Path, msg)
	fakeError(w, http.StatusBadRequest, "invalid_field", msg)
}

func (f *fakeWorkerServer) serveJob(w http.ResponseWriter, r *http.Request) {
	fakeJSON(w, http.StatusOK, f.job)
}

func (f *fakeWorkerServer) serveDataset(w http.ResponseWriter, r *http.Request) {
	body, ok := f.datasets[r.URL.Query().Get("which")]
	if !ok || body == "" {
		fakeError(w, http.StatusNotFound, "not_found", "No such dataset.")
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	io.WriteString(w, body)
}

func (f *fakeWorkerServer) serveHeartbeat(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Step       *int `json:"step"`
		TotalSteps *int `json:"total_steps"`
		Wait       bool `json:"wait"`
	}
	if !f.decode(w, r, &in) {
		return
	}
	if in.Step == nil || in.TotalSteps == nil || *in.Step < 0 || *in.Step > *in.TotalSteps || *in.TotalSteps > 1e9 {
		f.refuse(w, r, "step and total_steps are required, with 0 <= step <= total_steps <= 1e9")
		return
	}
	f.heartbeats = append(f.heartbeats, fakeHeartbeat{*in.Step, *in.TotalSteps})
	status, cancel := http.StatusOK, false
	if f.heartbeatReply != nil {
		status, cancel = f.heartbeatReply(*in.Step, *in.TotalSteps)
	}
	if status != http.StatusOK {
		fakeError(w, status, "unauthorized", "The token is not valid for a live run.")
		return
	}
	if cancel && f.cancelledAt.IsZero() {
		f.cancelledAt = time.Now()
	}
	reply := map[string]any{"cancel": cancel}
	if f.stopReply != nil && !cancel {
		if reason := f.stopReply(*in.Step, *in.TotalSteps); reason != "" {
			reply["stop"] = map[string]string{"reason": reason}
		}
	}
	fakeJSON(w, http.StatusOK, reply)
}

var fakeMetricName = regexp.MustCompile(`^[a-z][a-z0-9_./-]{0,63}$`)

func (f *fakeWorkerServer) serveMetrics(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Points []struct {
			Name  string   `json:"name"`
			Step  *int     `json:"step"`
			Value *float64 `json:"value"`
		} `json:"points"`
	}
	if !f.decode(w, r, &in) {
		return
	}
	if len(in.Points) == 0 || len(in.Points) > 1000 {
		f.refuse(w, r, "points must hold 1 to 1000 points, got %d", len(in.Points))
		return
	}
	accepted := 0
	for i, p := range in.Points {
		if !fakeMetricName.MatchString(p.Name) || p.Step == nil || *p.Step < 0 || *p.Step > 1e9 ||
			p.Value == nil || math.IsNaN(*p.Value) || math.IsInf(*p.Value, 0) {
			f.refuse(w, r, "points[%d] is invalid", i)
			return
		}
		k := fakePointKey{p.Name, *p.Step}
		if _, dup := f.points[k]; dup {
			f.duplicates++
			continue
		}
		f.points[k] = *p.Value
		accepted++
	}
	fakeJSON(w, http.StatusOK, map[string]int{"accepted": accepted, "duplicates": len(in.Points) - accepted})
}

func (f *fakeWorkerServer) serveLogs(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Lines []string `json:"lines"`
	}
	if !f.decode(w, r, &in) {
		return
	}
	if len(in.Lines) == 0 || len(in.Lines) > 200 {
		f.refuse(w, r, "lines must hold 1 to 200 lines, got %d", len(in.Lines))
		return
	}
	for _, l := range in.Lines {
		if len(l) > 2000 {
			f.refuse(w, r, "a line of %d bytes", len(l))
			return
		}
	}
	f.logs = append(f.logs, in.Lines...)
	fakeJSON(w, http.StatusOK, map[string]int{"accepted": len(in.Lines)})
}

func (f *fakeWorkerServer) serveSnapshot(w http.ResponseWriter, r *http.Request) {
	step, err := strconv.Atoi(r.PathValue("step"))
	sum := r.Header.Get("X-Snapshot-SHA256")
	final := r.Header.Get("X-Snapshot-Final")
	switch {
	case err != nil || step < 0:
		f.refuse(w, r, "step %q", r.PathValue("step"))
		return
	case !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(sum):
		f.refuse(w, r, "X-Snapshot-SHA256 %q", sum)
		return
	case final != "true" && final != "false":
		f.refuse(w, r, "X-Snapshot-Final %q", final)
		return
	case r.Header.Get("Content-Type") != "application/octet-stream":
		f.refuse(w, r, "Content-Type %q", r.Header.Get("Content-Type"))
		return
	}
	data, err := io.ReadAll(r.Body)
	if err != nil {
		fakeError(w, http.StatusBadRequest, "invalid_json", err.Error())
		return
	}
	if r.ContentLength != int64(len(data)) {
		f.refuse(w, r, "Content-Length %d for %d bytes", r.ContentLength, len(data))
		return
	}
	got := sha256.Sum256(data)
	if hex.EncodeToString(got[:]) != sum {
		fakeError(w, http.StatusUnprocessableEntity, "checksum_mismatch", "The body's sha256 differs.")
		return
	}
	reply := map[string]any{"id": step, "step": step, "final": final == "true", "size_bytes": len(data), "sha256": sum}
	if old, ok := f.snapshots[step]; ok {
		if old.sha256 != sum {
			fakeError(w, http.StatusConflict, "snapshot_exists", "A different snapshot is already stored at this step.")
			return
		}
		fakeJSON(w, http.StatusOK, reply)
		return
	}
	f.snapshots[step] = fakeSnapshot{data: data, sha256: sum, final: final == "true"}
	fakeJSON(w, http.StatusCreated, reply)
}

func (f *fakeWorkerServer) serveFinish(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Status string `json:"status"`
		Reason string `json:"reason"`
	}
	if !f.decode(w, r, &in) {
		return
	}
	if in.Status != "succeeded" && in.Status != "failed" && in.Status != "cancelled" {
		f.refuse(w, r, "status %q", in.Status)
		return
	}
	if len(in.Reason) > 500 {
		f.refuse(w, r, "reason of %d bytes", len(in.Reason))
		return
	}
	f.finishes = append(f.finishes, fakeFinish{in.Status, in.Reason})
	f.finishedAt = time.Now()
	f.ended = true
	fakeJSON(w, http.StatusOK, map[string]string{"status": in.Status})
}

// state returns a copy of what the fake recorded.
func (f *fakeWorkerServer) state() fakeState {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := fakeState{
		requests:   map[string]int{},
		heartbeats: append([]fakeHeartbeat(nil), f.heartbeats...),
		points:     map[fakePointKey]float64{},
		duplicates: f.duplicates,
		logs:       append([]string(nil), f.logs...),
		snapshots:  map[int]fakeSnapshot{},
		finishes:   append([]fakeFinish(nil), f.finishes...),
		finishedAt: f.finishedAt, cancelledAt: f.cancelledAt,
	}
	for k, v := range f.requests {
		s.requests[k] = v
	}
	for k, v := range f.points {
		s.points[k] = v
	}
	for k, v := range f.snapshots {
		s.snapshots[k] = v
	}
	return s
}

type fakeState struct {
	requests                map[string]int
	heartbeats              []fakeHeartbeat
	points                  map[fakePointKey]float64
	duplicates              int
	logs                    []string
	snapshots               map[int]fakeSnapshot
	finishes                []fakeFinish
	finishedAt, cancelledAt time.Time
}

func (s fakeState) hasLog(prefix string) bool {
	for _, l := range s.logs {
		if strings.HasPrefix(l, prefix) {
			return true
		}
	}
	return false
}

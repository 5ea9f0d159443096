package handlers

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"tunelab/gpu"
	"tunelab/store"
	"tunelab/trainer/protocol"
)

// The worker API's contract: every answer of the real server decodes strictly (unknown
// fields refused) into the trainer/protocol types the worker reads, and every request the
// worker builds from those types is accepted by the server's strict decoder. A field the
// server adds without the protocol, or the protocol adds without the server, fails here.

// decodeExactly decodes body into v refusing unknown fields and trailing data.
func decodeExactly(t *testing.T, what string, body string, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: the answer is not a %T: %v\n%s", what, v, err, body)
	}
	if _, err := dec.Token(); err != io.EOF {
		t.Fatalf("%s: data after the answer: %s", what, body)
	}
}

// wantAnswer checks the status and decodes the answer strictly into v.
func wantAnswer(t *testing.T, what string, r response, status int, v any) {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s: %d, want %d\n%s", what, r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s: Content-Type %q", what, ct)
	}
	decodeExactly(t, what, r.body, v)
}

// wantError checks a refusal: the status, and an ErrorBody with the code and a message.
func wantError(t *testing.T, what string, r response, status int, code string) {
	t.Helper()
	var e protocol.ErrorBody
	wantAnswer(t, what, r, status, &e)
	if e.Error.Code != code || e.Error.Message == "" {
		t.Fatalf("%s: error %+v, want code %q with a message", what, e.Error, code)
	}
}

func wireBody(t *testing.T, v any) io.Reader {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.NewReader(b)
}

func TestWorkerAPIMatchesTheProtocol(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.signUp("contract@example.com")
	ds := ts.datasetFor(c, completionLines(20))
	evalDS := ts.datasetFor(c, completionLines(12))

	// A finished run with a snapshot, and a run continued from it with an eval dataset:
	// every optional part of the job spec is present.
	src, srcTok, sid, srcBytes := ts.runWithSnapshot(t, c, runValues(ds))
	var done protocol.FinishReply
	wantAnswer(t, "finish", ts.workerCall("POST", fmt.Sprintf("%s%d/finish", protocol.PathPrefix, src), srcTok,
		wireBody(t, protocol.Finish{Status: protocol.StatusSucceeded}), nil), http.StatusOK, &done)
	if done.Status != protocol.StatusSucceeded {
		t.Fatalf("finish reply %+v", done)
	}
	v := runValues(ds)
	v.Set("init_snapshot_id", fmt.Sprint(sid))
	v.Set("eval_dataset_id", evalDS)
	ts.startRun(c, v)
	run, tok := ts.claim(t)
	base := fmt.Sprintf("%s%d/", protocol.PathPrefix, run)
	call := func(method, endpoint string, body io.Reader, headers map[string]string) response {
		return ts.workerCall(method, base+endpoint, tok, body, headers)
	}

	var job protocol.Job
	wantAnswer(t, "GET /job", call("GET", "job", nil, nil), http.StatusOK, &job)
	if job.RunID != run || job.EvalDataset == nil || job.InitSnapshot == nil || job.Config.InitSnapshotID != sid ||
		job.Dataset.URL != base+"dataset" || job.HeartbeatIntervalSeconds != 5 || job.MaxSnapshotBytes != 1<<20 {
		t.Fatalf("job = %+v", job)
	}
	srcSum := sha256.Sum256(srcBytes)
	if s := job.InitSnapshot; s.RunID != src || s.Step != 40 || s.SHA256 != hex.EncodeToString(srcSum[:]) ||
		s.SizeBytes != int64(len(srcBytes)) || s.URL != base+"init-snapshot" {
		t.Fatalf("init_snapshot = %+v", s)
	}
	// The config the store keeps travels whole: nothing of it is missing from the wire.
	stored, err := ts.store.RunByID(context.Background(), run)
	if err != nil {
		t.Fatal(err)
	}
	storedJSON, _ := json.Marshal(stored.Config)
	var asWire protocol.Config
	decodeExactly(t, "the stored config", string(storedJSON), &asWire)
	if asWire != job.Config {
		t.Fatalf("job config %+v, stored %+v", job.Config, asWire)
	}

	r := call("GET", "init-snapshot", nil, nil)
	if r.status != http.StatusOK || r.body != string(srcBytes) || r.header.Get(protocol.HeaderSnapshotSHA256) != job.InitSnapshot.SHA256 {
		t.Fatalf("GET /init-snapshot: %d %q", r.status, r.header.Get(protocol.HeaderSnapshotSHA256))
	}

	var beat protocol.HeartbeatReply
	wantAnswer(t, "heartbeat", call("POST", "heartbeat", wireBody(t, protocol.NewHeartbeat(0, 10, false)), nil), http.StatusOK, &beat)
	if beat.Cancel {
		t.Fatal("heartbeat asks to cancel")
	}

	batch := protocol.MetricBatch{Points: []protocol.MetricPoint{
		protocol.NewMetricPoint("loss", 1, 2.5), protocol.NewMetricPoint("grad_norm", 1, math.NaN()),
		protocol.NewMetricPoint("reward_margin", 1, math.Inf(1)), protocol.NewMetricPoint("eval_loss", 1, math.Inf(-1)),
	}}
	var got protocol.MetricsReply
	wantAnswer(t, "metrics", call("POST", "metrics", wireBody(t, batch), nil), http.StatusOK, &got)
	if got != (protocol.MetricsReply{Accepted: 4}) {
		t.Fatalf("metrics reply %+v", got)
	}
	wantAnswer(t, "metrics again", call("POST", "metrics", wireBody(t, batch), nil), http.StatusOK, &got)
	if got != (protocol.MetricsReply{Duplicates: 4}) {
		t.Fatalf("metrics resent: reply %+v", got)
	}

	var logs protocol.LogsReply
	wantAnswer(t, "logs", call("POST", "logs", wireBody(t, protocol.LogBatch{Lines: []string{"a", "b"}}), nil), http.StatusOK, &logs)
	if logs.Accepted != 2 {
		t.Fatalf("logs reply %+v", logs)
	}

	weights := []byte("contract weights")
	sum := sha256.Sum256(weights)
	hexSum := hex.EncodeToString(sum[:])
	put := func(step int, body []byte, digest string) response {
		return call("PUT", fmt.Sprintf("snapshots/%d", step), bytes.NewReader(body), map[string]string{
			protocol.HeaderSnapshotSHA256: digest, protocol.HeaderSnapshotFinal: "true", "Content-Type": "application/octet-stream"})
	}
	var sn, again protocol.Snapshot
	wantAnswer(t, "snapshot", put(10, weights, hexSum), http.StatusCreated, &sn)
	if sn.ID == 0 || sn.Step != 10 || !sn.Final || sn.SizeBytes != int64(len(weights)) || sn.SHA256 != hexSum {
		t.Fatalf("snapshot reply %+v", sn)
	}
	wantAnswer(t, "snapshot again", put(10, weights, hexSum), http.StatusOK, &again)
	if again != sn {
		t.Fatalf("resent snapshot: %+v, first %+v", again, sn)
	}

	// Refusals, each in the one error shape.
	other := sha256.Sum256([]byte("other"))
	wantError(t, "different bytes at a stored step", put(10, []byte("other"), hex.EncodeToString(other[:])), http.StatusConflict, protocol.CodeSnapshotExists)
	wantError(t, "wrong digest", put(11, weights, hex.EncodeToString(other[:])), http.StatusUnprocessableEntity, protocol.CodeChecksumMismatch)
	wantError(t, "unknown field", call("POST", "logs", strings.NewReader(`{"lines":["x"],"extra":1}`), nil), http.StatusBadRequest, protocol.CodeInvalidJSON)
	wantError(t, "bad value", call("POST", "metrics", strings.NewReader(`{"points":[{"name":"loss","step":1,"value":"big"}]}`), nil), http.StatusBadRequest, protocol.CodeInvalidField)
	wantError(t, "no such endpoint", call("GET", "nothing", nil, nil), http.StatusNotFound, protocol.CodeNotFound)
	wantError(t, "no token", ts.workerCall("GET", base+"job", "", nil, nil), http.StatusUnauthorized, protocol.CodeUnauthorized)
	wantError(t, "another run's token", ts.workerCall("GET", fmt.Sprintf("%s%d/job", protocol.PathPrefix, src+1000), tok, nil, nil), http.StatusForbidden, protocol.CodeForbidden)

	// The user metrics API takes the same batch and answers the same way.
	token, hash := gpu.NewRunToken()
	if err := ts.store.SetRunIngestToken(context.Background(), stored.UserID, run, hash); err != nil {
		t.Fatal(err)
	}
	user := protocol.MetricBatch{Points: []protocol.MetricPoint{protocol.NewMetricPoint("my_eval/accuracy", 100, 0.82)}}
	wantAnswer(t, "user metrics", ts.workerCall("POST", fmt.Sprintf("/api/v1/runs/%d/metrics", run), token, wireBody(t, user), nil), http.StatusOK, &got)
	if got != (protocol.MetricsReply{Accepted: 1}) {
		t.Fatalf("user metrics reply %+v", got)
	}

	wantAnswer(t, "finish", call("POST", "finish", wireBody(t, protocol.Finish{Status: protocol.StatusFailed, Reason: "out of memory"}), nil), http.StatusOK, &done)
	if done.Status != protocol.StatusFailed {
		t.Fatalf("finish reply %+v", done)
	}
	wantError(t, "after the end", call("POST", "heartbeat", wireBody(t, protocol.NewHeartbeat(1, 10, false)), nil), http.StatusUnauthorized, protocol.CodeUnauthorized)
}

// serverOnlyConfig are run settings the server acts on itself and the worker never needs:
// the budget is enforced at heartbeats.
var serverOnlyConfig = []string{"budget_cents,omitempty"}

// The job's config names exactly the fields of the stored run config (but the server's
// own), so a setting added to one is added to the other.
func TestProtocolConfigHasTheRunConfigFields(t *testing.T) {
	names := func(v any) []string {
		var out []string
		for f := range reflect.TypeOf(v).Fields() {
			if tag := f.Tag.Get("json"); !slices.Contains(serverOnlyConfig, tag) {
				out = append(out, tag)
			}
		}
		slices.Sort(out)
		return out
	}
	if s, p := names(store.RunConfig{}), names(protocol.Config{}); !slices.Equal(s, p) {
		t.Fatalf("store.RunConfig fields %v, protocol.Config fields %v", s, p)
	}
	// Every field set: the job carries each one as the store writes it.
	var full store.RunConfig
	rv := reflect.ValueOf(&full).Elem()
	for i := range rv.NumField() {
		switch f := rv.Field(i); f.Kind() {
		case reflect.String:
			f.SetString(fmt.Sprintf("v%d", i))
		case reflect.Int, reflect.Int64:
			f.SetInt(int64(i + 1))
		case reflect.Float64:
			f.SetFloat(float64(i) + 0.5)
		default:
			t.Fatalf("run config field %s is a %s; extend this test", rv.Type().Field(i).Name, f.Kind())
		}
	}
	want, _ := json.Marshal(full)
	var wantFields map[string]any
	json.Unmarshal(want, &wantFields)
	for _, tag := range serverOnlyConfig {
		delete(wantFields, strings.Split(tag, ",")[0])
	}
	want, _ = json.Marshal(wantFields)
	var gotFields map[string]any
	got, _ := json.Marshal(wireConfig(full))
	json.Unmarshal(got, &gotFields)
	if got, _ = json.Marshal(gotFields); string(got) != string(want) {
		t.Fatalf("wireConfig:\n got %s\nwant %s", got, want)
	}
}

// A clean stop, as docs/worker-api.md has it: the heartbeat reply carries
// "stop": {"reason": ...} (omitted when none), a held heartbeat hears it at once, and the
// worker's final snapshot and "cancelled" finish with the reason end the run so: the run
// page says why and lists the final snapshot.
func TestWorkerAPIStopContract(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.signUp("stop-contract@example.com")
	ts.startRun(c, runValues(ts.datasetFor(c, completionLines(20))))
	run, tok := ts.claim(t)
	base := fmt.Sprintf("%s%d/", protocol.PathPrefix, run)
	call := func(method, endpoint string, body io.Reader, headers map[string]string) response {
		return ts.workerCall(method, base+endpoint, tok, body, headers)
	}
	r := call("POST", "heartbeat", wireBody(t, protocol.NewHeartbeat(3, 10, false)), nil)
	var beat protocol.HeartbeatReply
	wantAnswer(t, "heartbeat", r, http.StatusOK, &beat)
	if beat.Cancel || beat.Stop != nil || strings.Contains(r.body, "stop") {
		t.Fatalf("a heartbeat with nothing asked: %s", r.body)
	}

	const why = "Stopped at the run's budget cap of $2.00: $2.00 spent"
	held := make(chan response, 1)
	go func() { held <- call("POST", "heartbeat", wireBody(t, protocol.NewHeartbeat(4, 10, true)), nil) }()
	// Once the held heartbeat is subscribed, ask the stop the way the server does.
	for ts.hub.Viewers(run) == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	if asked, err := ts.store.StopRun(context.Background(), run, why); err != nil || !asked {
		t.Fatalf("stop: %v %v", asked, err)
	}
	ts.hub.Publish(gpu.Event{RunID: run, Kind: gpu.EventStatus})
	wantAnswer(t, "held heartbeat", <-held, http.StatusOK, &beat)
	if beat.Cancel || beat.Stop == nil || beat.Stop.Reason != why {
		t.Fatalf("held heartbeat after a stop: %+v", beat)
	}
	// Asked again, the stop is repeated (a worker that missed the answer hears it).
	wantAnswer(t, "heartbeat", call("POST", "heartbeat", wireBody(t, protocol.NewHeartbeat(4, 10, true)), nil), http.StatusOK, &beat)
	if beat.Stop == nil || beat.Stop.Reason != why {
		t.Fatalf("heartbeat after a stop: %+v", beat)
	}

	// A snapshot was saved at this very step before the stop: the final one has the same
	// weights, and the stored snapshot becomes the final one.
	weights := bytes.Repeat([]byte("final weights "), 100)
	sum := sha256.Sum256(weights)
	put := func(final string) response {
		return call("PUT", "snapshots/4", bytes.NewReader(weights), map[string]string{
			"Content-Type": "application/octet-stream", protocol.HeaderSnapshotSHA256: hex.EncodeToString(sum[:]), protocol.HeaderSnapshotFinal: final})
	}
	var sn protocol.Snapshot
	wantAnswer(t, "snapshot", put("false"), http.StatusCreated, &sn)
	wantAnswer(t, "final snapshot", put("true"), http.StatusOK, &sn)
	if !sn.Final || sn.Step != 4 {
		t.Fatalf("the same weights sent as final: %+v", sn)
	}
	var done protocol.FinishReply
	wantAnswer(t, "finish", call("POST", "finish", wireBody(t, protocol.Finish{Status: protocol.StatusCancelled, Reason: why}), nil), http.StatusOK, &done)
	page := ts.do(c, "GET", fmt.Sprintf("/runs/%d", run), nil, nil).body
	if !strings.Contains(page, "Stopped at the run&#39;s budget cap of $2.00: $2.00 spent") {
		t.Error("the run page does not say why the run stopped")
	}
	if !strings.Contains(page, fmt.Sprintf("/runs/%d/snapshots/%d/download", run, sn.ID)) {
		t.Error("the run page does not offer the final snapshot")
	}
}

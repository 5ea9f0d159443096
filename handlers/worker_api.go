package handlers

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"tunelab/gpu"
	"tunelab/store"
	"tunelab/trainer/protocol"
)

// The worker API (docs/worker-api.md): JSON in, JSON out, one bearer token per run.

const (
	maxMetricsJSON    = 4 << 20 // 10,000 points with long names fit
	maxMetricPoints   = 10_000
	maxLogLines       = 200
	maxFinishReason   = 500
	maxStep           = 1_000_000_000
	workerTokenHexLen = 32
	// maxHeartbeatHold caps how long a waiting heartbeat is held, well inside the server's
	// write timeout.
	maxHeartbeatHold = 30 * time.Second
)

var metricName = regexp.MustCompile(`^[a-z][a-z0-9_./-]{0,63}$`)

type workerRunKey struct{}

// bearerRequest reads the run id of the path and the bearer token of a token-authenticated
// API request, answering when either is unusable. missing is the 401 message for a bad
// header. Nothing is limited before the token is checked: a valid token always gets in,
// whatever others sent from the same address.
func (a *app) bearerRequest(w http.ResponseWriter, r *http.Request, missing string) (runID int64, token string, ok bool) {
	runID, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || runID <= 0 {
		apiError(w, http.StatusNotFound, "not_found", "No such run.")
		return 0, "", false
	}
	token, found := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !found || len(token) != workerTokenHexLen {
		if !a.tokenFailed(w, r, runID) {
			apiError(w, http.StatusUnauthorized, "unauthorized", missing)
		}
		return 0, "", false
	}
	return runID, token, true
}

// tokenFailed counts a failed token check against the client's address on this run and
// over all runs. Over either limit it answers 429 and returns true (the caller stops);
// failures only ever slow down more failures.
func (a *app) tokenFailed(w http.ResponseWriter, r *http.Request, runID int64) (limited bool) {
	ip := limitKey(a.clientIP(r))
	onRun := ip + " run " + strconv.FormatInt(runID, 10)
	if wait, limited := a.checkLimits(a.limits.tokenIP, ip, a.limits.tokenRun, onRun); limited {
		w.Header().Set("Retry-After", retryAfter(wait))
		apiError(w, http.StatusTooManyRequests, "rate_limited", "Too many requests with bad tokens; wait and try again.")
		return true
	}
	a.limits.tokenIP.hit(ip)
	a.limits.tokenRun.hit(onRun)
	return false
}

// workerAuth lets a request through only with the bearer token of the run in its path:
// 401 without a live token, 403 (and a security event) for another run's token.
func (a *app) workerAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		runID, token, ok := a.bearerRequest(w, r, "Send the run's token as Authorization: Bearer <token>.")
		if !ok {
			return
		}
		sum := sha256.Sum256([]byte(token))
		want, err := a.store.RunTokenHash(r.Context(), runID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			apiError(w, http.StatusInternalServerError, "internal", "Try again later.")
			return
		}
		if len(want) == len(sum) && subtle.ConstantTimeCompare(want, sum[:]) == 1 {
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), workerRunKey{}, runID)))
			return
		}
		if a.tokenFailed(w, r, runID) {
			return
		}
		if other, err := a.store.RunIDForToken(r.Context(), sum[:]); err == nil && other != runID {
			a.log.WarnContext(r.Context(), "worker token used on another run", "run", runID,
				"token_run", other, "token_sha256_prefix", hex.EncodeToString(sum[:4]))
			a.recordEvent(r, store.EventWorkerMisuse, 0, fmt.Sprintf("run %d token used on run %d", other, runID))
			apiError(w, http.StatusForbidden, "forbidden", "This token belongs to a different run.")
			return
		}
		apiError(w, http.StatusUnauthorized, "unauthorized", "The token is not valid for a live run (the run may have ended).")
	})
}

func workerRun(r *http.Request) int64 { id, _ := r.Context().Value(workerRunKey{}).(int64); return id }

func (a *app) workerJob(w http.ResponseWriter, r *http.Request) {
	run, err := a.store.RunByID(r.Context(), workerRun(r))
	if err != nil {
		a.workerServerError(w, r, err)
		return
	}
	base := fmt.Sprintf("%s%d/dataset", protocol.PathPrefix, run.ID)
	d, err := a.store.DatasetByID(r.Context(), run.DatasetID)
	if err != nil {
		a.workerServerError(w, r, err)
		return
	}
	spec := protocol.Job{RunID: run.ID, Config: wireConfig(run.Config), Dataset: protocol.Dataset{Format: string(d.Format), Rows: d.Rows, URL: base},
		HeartbeatIntervalSeconds: float64(int(a.runs.HeartbeatInterval.Seconds())), MaxSnapshotBytes: a.runs.MaxSnapshotBytes}
	if run.EvalDatasetID != 0 {
		e, err := a.store.DatasetByID(r.Context(), run.EvalDatasetID)
		if err != nil {
			a.workerServerError(w, r, err)
			return
		}
		spec.EvalDataset = &protocol.Dataset{Format: string(e.Format), Rows: e.Rows, URL: base + "?which=eval"}
	}
	if spec.InitSnapshot, err = a.initSnapshotSpec(r.Context(), run); err != nil {
		a.workerServerError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, spec)
}

// wireConfig is a run's config as the job spec carries it.
func wireConfig(c store.RunConfig) protocol.Config {
	return protocol.Config{
		BaseModel: c.BaseModel, Method: string(c.Method), Epochs: c.Epochs, LearningRate: c.LearningRate,
		BatchSize: c.BatchSize, LoRARank: c.LoRARank, LoRAAlpha: c.LoRAAlpha, MaxSeqLen: c.MaxSeqLen,
		Seed: c.Seed, GPUType: c.GPUType, ValidationSplit: c.ValidationSplit, SnapshotEvery: c.SnapshotEvery,
		InitSnapshotID: c.InitSnapshotID,
	}
}

func (a *app) workerDataset(w http.ResponseWriter, r *http.Request) {
	run, err := a.store.RunByID(r.Context(), workerRun(r))
	if err != nil {
		a.workerServerError(w, r, err)
		return
	}
	id := run.DatasetID
	switch r.URL.Query().Get("which") {
	case "", "train":
	case "eval":
		if run.EvalDatasetID == 0 {
			apiError(w, http.StatusNotFound, "not_found", "This run has no validation dataset; it holds out validation_split percent of the rows.")
			return
		}
		id = run.EvalDatasetID
	default:
		apiError(w, http.StatusBadRequest, "invalid_field", `which must be "train" or "eval".`)
		return
	}
	d, err := a.store.DatasetByID(r.Context(), id)
	if err != nil {
		a.workerServerError(w, r, err)
		return
	}
	f, err := a.vault.Open(d.FileID)
	if err != nil {
		a.workerServerError(w, r, err)
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	if _, err := io.Copy(w, f); err != nil {
		a.log.WarnContext(r.Context(), "dataset download ended early", "run", run.ID, "err", err)
	}
}

// workerHeartbeat records the worker's progress and answers whether to stop: "cancel", or
// a clean "stop" with its reason (billing/stop.go says when). With "wait": true the answer
// is held for up to the heartbeat interval and sent at once when a cancel, a delete or a
// stop is asked, so a worker hears it within a second, not an interval later.
func (a *app) workerHeartbeat(w http.ResponseWriter, r *http.Request) {
	var in protocol.Heartbeat
	if !decodeStrict(w, r, &in) {
		return
	}
	if in.Step == nil || in.TotalSteps == nil || *in.TotalSteps < 0 || *in.TotalSteps > maxStep || *in.Step < 0 || *in.Step > *in.TotalSteps {
		apiError(w, http.StatusBadRequest, "invalid_field", "step and total_steps are required, with 0 <= step <= total_steps <= 1000000000.")
		return
	}
	id := workerRun(r)
	// Subscribe before recording, so a cancel asked in between is not missed.
	var events <-chan *gpu.Event
	if in.Wait {
		ch, unsubscribe := a.runs.Hub.Subscribe(id)
		defer unsubscribe()
		events = ch
	}
	cancel, err := a.store.Heartbeat(r.Context(), id, *in.Step, *in.TotalSteps)
	if errors.Is(err, store.ErrRunFinished) {
		apiError(w, http.StatusConflict, "run_finished", "The run has already ended.")
		return
	}
	if err != nil {
		a.workerServerError(w, r, err)
		return
	}
	reply := protocol.HeartbeatReply{Cancel: cancel}
	if !cancel {
		stop, err := a.stopIfDue(r, id)
		if err != nil {
			a.workerServerError(w, r, err)
			return
		}
		if stop != "" {
			reply.Stop = &protocol.Stop{Reason: stop}
		}
	}
	a.publish(gpu.Event{RunID: id, Kind: gpu.EventStatus})
	if in.Wait && !reply.Cancel && reply.Stop == nil {
		reply = a.awaitStop(r, id, events)
	}
	writeJSON(w, http.StatusOK, reply)
}

// awaitStop holds a heartbeat until a status change asks the run to stop (a cancel, a
// delete, or a clean stop), the heartbeat interval passes, the worker hangs up or the
// server stops; it answers what to tell the worker.
func (a *app) awaitStop(r *http.Request, id int64, events <-chan *gpu.Event) protocol.HeartbeatReply {
	hold := time.NewTimer(min(a.runs.HeartbeatInterval, maxHeartbeatHold))
	defer hold.Stop()
	for {
		select {
		case <-r.Context().Done():
			return protocol.HeartbeatReply{}
		case <-a.stopping:
			return protocol.HeartbeatReply{}
		case <-hold.C:
			return protocol.HeartbeatReply{}
		case e, open := <-events:
			if open && e.Kind != gpu.EventStatus {
				continue
			}
			run, err := a.store.RunByID(r.Context(), id)
			if err != nil {
				return protocol.HeartbeatReply{}
			}
			if run.CancelRequested || run.Deleted || run.Final() {
				return protocol.HeartbeatReply{Cancel: true}
			}
			if run.StopReason != "" {
				return protocol.HeartbeatReply{Stop: &protocol.Stop{Reason: run.StopReason}}
			}
			if !open {
				return protocol.HeartbeatReply{} // dropped by the hub: answer now; the worker asks again
			}
		}
	}
}

// parseMetricValue reads a finite number, or one of the strings "NaN", "Infinity",
// "-Infinity" (JSON has no such numbers), which are stored as events.
func parseMetricValue(raw json.RawMessage) (float64, string, bool) {
	var f float64
	if err := json.Unmarshal(raw, &f); err == nil && len(raw) > 0 && raw[0] != 'n' {
		return f, store.KindFinite, !math.IsNaN(f) && !math.IsInf(f, 0)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return 0, "", false
	}
	kind, ok := nonFiniteKind(s)
	return 0, kind, ok
}

// readMetricsBatch reads a batch body: the usual shape through scanMetricsBatch, anything
// else through encoding/json with the strict rules of decodeStrict (and its answers).
func readMetricsBatch(w http.ResponseWriter, r *http.Request) ([]metricInput, bool) {
	// Nothing read keeps a reference into the body (names are copied), so its buffer goes
	// back to the pool.
	buf := batchBuffers.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= 1<<20 {
			buf.Reset()
			batchBuffers.Put(buf)
		}
	}()
	buf.Grow(int(min(max(r.ContentLength, 0), maxMetricsJSON)) + bytes.MinRead) // room for the final Read, so no regrowth
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, maxMetricsJSON))
	body := buf.Bytes()
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			apiError(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("The body is over %d bytes.", maxMetricsJSON))
		} else {
			apiError(w, http.StatusBadRequest, "invalid_json", "The body could not be read: "+err.Error())
		}
		return nil, false
	}
	if in, ok := scanMetricsBatch(body); ok {
		return in, true
	}
	var batch protocol.MetricBatch
	rr := r.Clone(r.Context())
	rr.Body = io.NopCloser(bytes.NewReader(body))
	if !decodeStrictMax(w, rr, &batch, maxMetricsJSON) {
		return nil, false
	}
	in := make([]metricInput, len(batch.Points))
	for i, p := range batch.Points {
		in[i] = metricInput{Name: p.Name, HasStep: p.Step != nil}
		if p.Step != nil {
			in[i].Step = *p.Step
		}
		in[i].Value, in[i].Kind, in[i].ValueOK = parseMetricValue(p.Value)
	}
	return in, true
}

var batchBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// parseMetrics validates a batch whole: the first bad point is named and nothing is kept.
func parseMetrics(in []metricInput) ([]store.MetricPoint, string) {
	if len(in) == 0 || len(in) > maxMetricPoints {
		return nil, fmt.Sprintf("points must hold 1 to %d points.", maxMetricPoints)
	}
	pts := make([]store.MetricPoint, len(in))
	lastStep := make(map[string]int, 16) // a batch in step order per metric has no repeats
	ordered := true
	for i, p := range in {
		if !validMetricName(p.Name) {
			return nil, fmt.Sprintf("points[%d].name %q must match %s (lower-case letters, digits, _ . / -; at most 64).", i, clipName(p.Name), metricName)
		}
		if !p.HasStep || p.Step < 0 || p.Step > maxStep {
			return nil, fmt.Sprintf("points[%d].step must be a whole number from 0 to 1000000000.", i)
		}
		if !p.ValueOK || p.Kind == store.KindFinite && (math.IsNaN(p.Value) || math.IsInf(p.Value, 0)) {
			return nil, fmt.Sprintf(`points[%d].value must be a finite number, or "NaN", "Infinity" or "-Infinity".`, i)
		}
		if last, ok := lastStep[p.Name]; ok && p.Step <= last {
			ordered = false
		}
		lastStep[p.Name] = p.Step
		pts[i] = store.MetricPoint{Name: p.Name, Step: p.Step, Value: p.Value, Kind: p.Kind}
	}
	if ordered {
		return pts, ""
	}
	type key struct {
		name string
		step int
	}
	seen := make(map[key]int, len(in))
	for i, p := range pts {
		k := key{p.Name, p.Step}
		if j, dup := seen[k]; dup {
			return nil, fmt.Sprintf("points[%d] repeats points[%d]: %s at step %d twice in one batch.", i, j, p.Name, p.Step)
		}
		seen[k] = i
	}
	return pts, ""
}

func clipName(s string) string {
	if len(s) > 70 {
		return s[:70] + "…"
	}
	return s
}

func (a *app) workerMetrics(w http.ResponseWriter, r *http.Request) {
	a.ingestMetrics(w, r, workerRun(r))
}

// ingestMetrics stores one batch for a run and answers once it is durable. A full ingest
// queue, or a run holding its whole share of it, answers 429 with Retry-After; a batch past
// a run quota answers 422; either way nothing of the batch is stored.
func (a *app) ingestMetrics(w http.ResponseWriter, r *http.Request, runID int64) {
	in, ok := readMetricsBatch(w, r)
	if !ok {
		return
	}
	pts, problem := parseMetrics(in)
	if problem != "" {
		apiError(w, http.StatusBadRequest, "invalid_field", problem)
		return
	}
	added, err := a.store.AppendMetrics(r.Context(), runID, pts)
	var quota *store.RunQuotaError
	switch {
	case errors.Is(err, store.ErrRunIngestBusy):
		a.ingestRefused("run_busy")
		w.Header().Set("Retry-After", "1")
		apiError(w, http.StatusTooManyRequests, "rate_limited", fmt.Sprintf("This run already has %d metric batches waiting to be stored; send this batch again in a second (other runs are not held up).", store.IngestPerRun))
		return
	case errors.Is(err, store.ErrIngestBusy):
		a.ingestRefused("busy")
		w.Header().Set("Retry-After", "1")
		apiError(w, http.StatusTooManyRequests, "rate_limited", "The server is busy storing metrics; send this batch again in a second.")
		return
	case errors.As(err, &quota):
		a.ingestRefused("quota_" + quota.Quota)
		apiError(w, http.StatusUnprocessableEntity, "quota_exceeded", quotaMessage(quota))
		return
	case err != nil:
		a.workerServerError(w, r, err)
		return
	}
	a.ingested(len(added))
	a.checkRules(context.WithoutCancel(r.Context()), a.linkBase(r), runID, added) // a firing is not lost to a client gone
	// The live frame is encoded once, and only when someone watches: a viewer who arrives
	// after this check reads these (already durable) points from the store.
	if len(added) > 0 && a.runs.Hub.Viewers(runID) > 0 {
		a.publish(gpu.Event{RunID: runID, Kind: gpu.EventMetrics, Metrics: added, Frame: metricsFrame(added)})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(fmt.Appendf(nil, "{\"accepted\":%d,\"duplicates\":%d}\n", len(added), len(pts)-len(added)))
}

// quotaMessage names the quota a batch would pass, and its setting.
func quotaMessage(q *store.RunQuotaError) string {
	if q.Quota == "series" {
		return fmt.Sprintf("This batch would give the run %d metric series; the limit is %d a run (TUNELAB_QUOTA_SERIES_PER_RUN). Nothing of the batch was stored; send fewer distinct names.",
			q.Have+q.Add, q.Limit)
	}
	return fmt.Sprintf("This batch would give the run %d points; the limit is %d a run (TUNELAB_QUOTA_POINTS_PER_RUN). The run has %d; nothing of the batch was stored.",
		q.Have+q.Add, q.Limit, q.Have)
}

func (a *app) workerLogs(w http.ResponseWriter, r *http.Request) {
	var in protocol.LogBatch
	if !decodeStrict(w, r, &in) {
		return
	}
	if len(in.Lines) == 0 || len(in.Lines) > maxLogLines {
		apiError(w, http.StatusBadRequest, "invalid_field", fmt.Sprintf("lines must hold 1 to %d lines.", maxLogLines))
		return
	}
	id := workerRun(r)
	added, err := a.store.AppendLogs(r.Context(), id, in.Lines)
	if err != nil {
		a.workerServerError(w, r, err)
		return
	}
	a.publish(gpu.Event{RunID: id, Kind: gpu.EventLogs, Logs: added})
	writeJSON(w, http.StatusOK, protocol.LogsReply{Accepted: len(added)})
}

var hexSHA256 = regexp.MustCompile(`^[0-9a-f]{64}$`)

func (a *app) workerSnapshot(w http.ResponseWriter, r *http.Request) {
	step, err := strconv.Atoi(r.PathValue("step"))
	if err != nil || step < 0 || step > maxStep {
		apiError(w, http.StatusBadRequest, "invalid_field", "The path's step must be a whole number from 0 to 1000000000.")
		return
	}
	sum := strings.ToLower(r.Header.Get(protocol.HeaderSnapshotSHA256))
	if !hexSHA256.MatchString(sum) {
		apiError(w, http.StatusBadRequest, "invalid_field", "X-Snapshot-SHA256 must be the 64 hex digits of the body's sha256.")
		return
	}
	var final bool
	switch r.Header.Get(protocol.HeaderSnapshotFinal) {
	case "", "false":
	case "true":
		final = true
	default:
		apiError(w, http.StatusBadRequest, "invalid_field", `X-Snapshot-Final must be "true" or "false".`)
		return
	}
	if r.ContentLength > a.runs.MaxSnapshotBytes {
		apiError(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("Snapshots are capped at %d bytes.", a.runs.MaxSnapshotBytes))
		return
	}
	body, bad := checkSnapshotUpload(r.Header.Get("Content-Type"), r.Body)
	if bad != "" {
		apiError(w, http.StatusBadRequest, "invalid_field", bad)
		return
	}
	id := workerRun(r)
	sn, err := a.store.CreateSnapshot(r.Context(), a.vault, store.NewSnapshot{
		RunID: id, Step: step, Final: final, SHA256: sum, MaxBytes: a.runs.MaxSnapshotBytes}, body)
	switch {
	case errors.Is(err, store.ErrChecksum):
		apiError(w, http.StatusUnprocessableEntity, "checksum_mismatch", "The body's sha256 differs from X-Snapshot-SHA256; nothing was stored.")
		return
	case errors.Is(err, store.ErrSnapshotTooLarge):
		apiError(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("Snapshots are capped at %d bytes.", a.runs.MaxSnapshotBytes))
		return
	case errors.Is(err, store.ErrSnapshotExists):
		old, err := a.store.SnapshotAtStep(r.Context(), id, step)
		if err == nil && old.SHA256 == sum {
			if final && !old.Final { // the same weights sent again as the final snapshot
				if err := a.store.MarkSnapshotFinal(r.Context(), old.ID); err != nil {
					a.workerServerError(w, r, err)
					return
				}
				old.Final = true
				a.publish(gpu.Event{RunID: id, Kind: gpu.EventSnapshot})
			}
			writeJSON(w, http.StatusOK, snapshotJSON(old))
			return
		}
		apiError(w, http.StatusConflict, "snapshot_exists", "A different snapshot is already stored at this step.")
		return
	case err != nil:
		a.workerServerError(w, r, err)
		return
	}
	a.publish(gpu.Event{RunID: id, Kind: gpu.EventSnapshot})
	writeJSON(w, http.StatusCreated, snapshotJSON(sn))
}

func snapshotJSON(s store.Snapshot) protocol.Snapshot {
	return protocol.Snapshot{ID: s.ID, Step: s.Step, Final: s.Final, SizeBytes: s.SizeBytes, SHA256: s.SHA256}
}

func (a *app) workerFinish(w http.ResponseWriter, r *http.Request) {
	var in protocol.Finish
	if !decodeStrict(w, r, &in) {
		return
	}
	status := store.RunStatus(in.Status)
	if !status.Final() {
		apiError(w, http.StatusBadRequest, "invalid_field", `status must be "succeeded", "failed" or "cancelled".`)
		return
	}
	if len(in.Reason) > maxFinishReason {
		apiError(w, http.StatusBadRequest, "invalid_field", fmt.Sprintf("reason must be at most %d bytes.", maxFinishReason))
		return
	}
	id := workerRun(r)
	run, err := a.store.FinishRun(r.Context(), id, status, strings.ToValidUTF8(in.Reason, "\uFFFD"), a.now())
	if errors.Is(err, store.ErrRunFinished) {
		apiError(w, http.StatusConflict, "run_finished", "The run has already ended.")
		return
	}
	if err != nil {
		a.workerServerError(w, r, err)
		return
	}
	a.publish(gpu.Event{RunID: id, Kind: gpu.EventStatus})
	a.wake()              // a slot is free
	a.billing.WakeMeter() // its last usage row is ready to send
	a.mailRunEnded(r, run)
	writeJSON(w, http.StatusOK, protocol.FinishReply{Status: in.Status})
}

func (a *app) workerServerError(w http.ResponseWriter, r *http.Request, err error) {
	a.log.ErrorContext(r.Context(), "worker api", "path", r.URL.Path, "err", err)
	if store.IsDiskFull(err) {
		w.Header().Set("Retry-After", diskFullRetry)
		apiError(w, http.StatusServiceUnavailable, "disk_full", diskFullMessage)
		return
	}
	apiError(w, http.StatusInternalServerError, "internal", "Something went wrong on the server; try again.")
}

func (a *app) workerNotFound(w http.ResponseWriter, r *http.Request) {
	apiError(w, http.StatusNotFound, "not_found", "No such endpoint; see docs/worker-api.md.")
}

// Package protocol is the worker API's wire format (docs/worker-api.md): the JSON bodies a
// worker and the server exchange, and the names of the headers and paths they share. The
// server (package handlers) and the built-in worker (package trainer) both use these types,
// so the two sides cannot drift apart. It imports only the standard library.
package protocol

import (
	"encoding/json"
	"math"
)

// PathPrefix is where a run's worker API lives: PathPrefix + "{id}" + "/job" and so on.
const PathPrefix = "/api/v1/worker/runs/"

// Headers of PUT /snapshots/{step} (and X-Snapshot-SHA256 of GET /init-snapshot).
const (
	HeaderSnapshotSHA256 = "X-Snapshot-SHA256"
	HeaderSnapshotFinal  = "X-Snapshot-Final"
)

// Final statuses a worker may report in POST /finish.
const (
	StatusSucceeded = "succeeded"
	StatusFailed    = "failed"
	StatusCancelled = "cancelled"
)

// Error codes of ErrorBody that a worker acts on; docs/worker-api.md lists them all.
const (
	CodeInvalidJSON      = "invalid_json"
	CodeInvalidField     = "invalid_field"
	CodeUnauthorized     = "unauthorized"
	CodeForbidden        = "forbidden"
	CodeNotFound         = "not_found"
	CodeRunFinished      = "run_finished"
	CodeSnapshotExists   = "snapshot_exists"
	CodeTooLarge         = "too_large"
	CodeChecksumMismatch = "checksum_mismatch"
	CodeRateLimited      = "rate_limited"
	CodeInternal         = "internal"
)

// ErrorBody is every refusal: {"error":{"code","message"}}, the HTTP status saying the class.
type ErrorBody struct {
	Error Error `json:"error"`
}

// Error is the inside of ErrorBody.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Job is the answer to GET /job.
type Job struct {
	RunID       int64    `json:"run_id"`
	Config      Config   `json:"config"`
	Dataset     Dataset  `json:"dataset"`
	EvalDataset *Dataset `json:"eval_dataset"` // null: hold out Config.ValidationSplit percent
	// HeartbeatIntervalSeconds is how often to send POST /heartbeat (the server sends whole
	// seconds; a worker reads any number).
	HeartbeatIntervalSeconds float64 `json:"heartbeat_interval_seconds"`
	MaxSnapshotBytes         int64   `json:"max_snapshot_bytes"` // 0: no cap
	// InitSnapshot is the weights a continued run starts from; null starts from the base model.
	InitSnapshot *InitSnapshot `json:"init_snapshot"`
}

// Config is the run's settings as the person chose them.
type Config struct {
	BaseModel    string  `json:"base_model"`
	Method       string  `json:"method"` // lora, qlora, dpo or full
	Epochs       int     `json:"epochs"`
	LearningRate float64 `json:"learning_rate"`
	BatchSize    int     `json:"batch_size"`
	LoRARank     int     `json:"lora_rank"`
	LoRAAlpha    float64 `json:"lora_alpha"`
	MaxSeqLen    int     `json:"max_seq_len"`
	Seed         int64   `json:"seed"`
	GPUType      string  `json:"gpu_type"`
	// ValidationSplit is the percentage of rows held out for eval loss when the job has
	// no eval dataset.
	ValidationSplit float64 `json:"validation_split"`
	// SnapshotEvery is the number of steps between snapshots; 0 saves only at the end.
	SnapshotEvery int `json:"snapshot_every"`
	// InitSnapshotID names the snapshot a continued run starts from (see Job.InitSnapshot).
	InitSnapshotID int64 `json:"init_snapshot_id,omitempty"`
}

// Dataset says where a dataset is and what it holds.
type Dataset struct {
	Format string `json:"format"` // chat, completion or preference
	Rows   int    `json:"rows"`
	URL    string `json:"url"` // on the server, relative to it
}

// InitSnapshot says where to get the weights a continued run starts from, and how to check
// them.
type InitSnapshot struct {
	URL       string `json:"url"`
	RunID     int64  `json:"run_id"` // the run that saved it
	Step      int    `json:"step"`
	SHA256    string `json:"sha256"`
	SizeBytes int64  `json:"size_bytes"`
}

// Heartbeat is the body of POST /heartbeat. Step and TotalSteps are required (pointers, so
// a missing one is told from 0).
type Heartbeat struct {
	Step       *int `json:"step"`
	TotalSteps *int `json:"total_steps"`
	// Wait asks the server to hold the reply until a cancel or a stop is asked or the
	// interval passed.
	Wait bool `json:"wait"`
}

// NewHeartbeat is a heartbeat at step of total.
func NewHeartbeat(step, total int, wait bool) Heartbeat {
	return Heartbeat{Step: &step, TotalSteps: &total, Wait: wait}
}

// HeartbeatReply is the answer to POST /heartbeat.
type HeartbeatReply struct {
	Cancel bool `json:"cancel"`
	// Stop asks for a clean stop (omitted when none): stop training at the current step,
	// upload a final snapshot of the current weights (PUT /snapshots/{step} with
	// X-Snapshot-Final: true), then POST /finish with status "cancelled" and Stop.Reason as
	// the reason. A cancel, when both are asked, wins.
	Stop *Stop `json:"stop,omitempty"`
}

// Stop is why the server asks a run to stop cleanly, in words for the person who owns it.
type Stop struct {
	Reason string `json:"reason"`
}

// MetricBatch is the body of POST /metrics (and of the user metrics API).
type MetricBatch struct {
	Points []MetricPoint `json:"points"`
}

// MetricPoint is one value of one metric at one step. Step is required (a pointer, so a
// missing one is told from 0). Value is a JSON number, or one of the strings "NaN",
// "Infinity", "-Infinity" (JSON has no such numbers); the server validates it.
type MetricPoint struct {
	Name  string          `json:"name"`
	Step  *int            `json:"step"`
	Value json.RawMessage `json:"value"`
}

// NewMetricPoint encodes v as the protocol writes it: a number when finite, else "NaN",
// "Infinity" or "-Infinity".
func NewMetricPoint(name string, step int, v float64) MetricPoint {
	var raw []byte
	switch {
	case math.IsNaN(v):
		raw = []byte(`"NaN"`)
	case math.IsInf(v, 1):
		raw = []byte(`"Infinity"`)
	case math.IsInf(v, -1):
		raw = []byte(`"-Infinity"`)
	default:
		raw, _ = json.Marshal(v)
	}
	return MetricPoint{Name: name, Step: &step, Value: raw}
}

// MetricsReply is the answer to POST /metrics: points stored, and points skipped because
// one with the same name and step was already stored.
type MetricsReply struct {
	Accepted   int `json:"accepted"`
	Duplicates int `json:"duplicates"`
}

// LogBatch is the body of POST /logs.
type LogBatch struct {
	Lines []string `json:"lines"`
}

// LogsReply is the answer to POST /logs.
type LogsReply struct {
	Accepted int `json:"accepted"`
}

// Snapshot is the answer to PUT /snapshots/{step}: the snapshot as stored.
type Snapshot struct {
	ID        int64  `json:"id"`
	Step      int    `json:"step"`
	Final     bool   `json:"final"`
	SizeBytes int64  `json:"size_bytes"`
	SHA256    string `json:"sha256"`
}

// Finish is the body of POST /finish.
type Finish struct {
	Status string `json:"status"` // StatusSucceeded, StatusFailed or StatusCancelled
	Reason string `json:"reason"` // why it failed, at most 500 bytes
}

// FinishReply is the answer to POST /finish.
type FinishReply struct {
	Status string `json:"status"`
}

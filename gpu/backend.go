// Package gpu runs fine-tuning jobs: the Backend interface every place that can run a
// worker implements (this machine, Slurm, a cloud provider), the dispatcher that moves
// runs from the queue onto a backend and follows them, and the live-update hub.
package gpu

import (
	"context"
	"errors"
	"strconv"

	"tunelab/store"
)

// Backend is a place that can run `tunelab worker` jobs. Every backend runs the same
// worker protocol (docs/worker-api.md), so the server cannot tell them apart once a job
// is running; a backend only starts, observes and stops jobs.
type Backend interface {
	// Name is the value of TUNELAB_BACKEND and of runs.backend.
	Name() string
	// Offer says what runs this backend can take.
	Offer() Offer
	// Submit starts a job and returns the backend's id for it. It must not block on the
	// job itself.
	Submit(ctx context.Context, job Job) (jobID string, err error)
	// Status reports what the backend knows about a job. A job the backend has never
	// heard of (or forgot, e.g. after a restart) is JobUnknown, not an error.
	Status(ctx context.Context, jobID string) (JobStatus, error)
	// Cancel stops a job; cancelling a job that already ended is not an error.
	Cancel(ctx context.Context, jobID string) error
}

// Job is what a backend needs to start a worker.
type Job struct {
	RunID     int64
	ServerURL string // base URL the worker reaches the server at
	Token     string // the run's bearer token; passed in the environment, never argv
	// Config is the run's configuration: a backend that places jobs on GPUs reads the
	// GPU type from it. The worker fetches its job spec from the server either way.
	Config store.RunConfig
	// DeploymentID, when set, makes this a serve job for that deployment instead of a
	// training run (RunID is then the snapshot's run): the worker is started with
	// --deployment and speaks the deployment half of the worker API.
	DeploymentID int64
}

// WorkerArgs are the arguments appended to a backend's worker command.
func (j Job) WorkerArgs() []string {
	if j.DeploymentID != 0 {
		return []string{"--server", j.ServerURL, "--deployment", strconv.FormatInt(j.DeploymentID, 10)}
	}
	return []string{"--server", j.ServerURL, "--run", strconv.FormatInt(j.RunID, 10)}
}

// Label names the job in log file names and job names: "run-12" or "deployment-3".
func (j Job) Label() string {
	if j.DeploymentID != 0 {
		return "deployment-" + strconv.FormatInt(j.DeploymentID, 10)
	}
	return "run-" + strconv.FormatInt(j.RunID, 10)
}

// Refresher is a backend whose offer and health come from elsewhere (a Slurm cluster, a
// provider's API). The dispatcher calls Refresh on every pass; the backend decides how
// often it really asks, and keeps answering Offer from what it learnt last. The error is
// the backend's health, shown on the admin page.
type Refresher interface {
	Refresh(ctx context.Context) error
}

// Job states as a backend sees them.
const (
	JobPending = "pending" // accepted, not yet running (e.g. waiting in a Slurm queue)
	JobRunning = "running"
	JobExited  = "exited"  // ended; Detail says how
	JobUnknown = "unknown" // the backend has no such job
)

// JobStatus is a backend's view of one job.
type JobStatus struct {
	State  string
	Detail string // for exited: "exit status 1", "signal: killed"...
}

// Offer is what a backend can run; the run form is built from it.
type Offer struct {
	Models   []Model
	Methods  []store.Method
	GPUTypes []GPUType
	Slots    int // jobs at once
	// Defaults fill the run form; they suit this backend's hardware.
	Defaults Defaults
}

// Model is a base model a backend can fine-tune.
type Model struct {
	ID    string
	Name  string
	About string
}

// GPUType is an accelerator a backend can run on.
type GPUType struct {
	ID    string
	Name  string
	About string
}

// Defaults are the run form's starting values.
type Defaults struct {
	Epochs          int
	LearningRate    float64
	BatchSize       int
	LoRARank        int
	LoRAAlpha       float64
	MaxSeqLen       int
	Seed            int64
	ValidationSplit float64 // percent
	SnapshotEvery   int
}

// ErrBackend wraps failures talking to a backend.
var ErrBackend = errors.New("gpu: backend error")

// RunTokenEnv is the environment variable a worker reads its run token from; every
// backend passes the token there, never on the command line.
const RunTokenEnv = "TUNELAB_RUN_TOKEN"

package gpu

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"tunelab/store"
)

// SlurmConfig configures the slurm backend: one sbatch job per run, followed with
// scontrol (and sacct where accounting exists), stopped with scancel.
type SlurmConfig struct {
	Partition string // "" leaves it to Slurm's default partition
	// GPUTypes are the run form's GPU types, each with the gres type it asks Slurm for:
	// GPU type "a100" with Gres "a100" submits --gres=gpu:a100:N.
	GPUTypes   []SlurmGPU
	GPUsPerJob int           // N in --gres=gpu:TYPE:N; default 1
	TimeLimit  time.Duration // --time; default 24 h
	// Command is the worker command; "--server URL --run ID" is appended. Default: this
	// executable with "worker" (the same path must exist on the compute nodes).
	Command []string
	LogDir  string   // the job's output goes to LogDir/run-<id>.log; "" discards it
	Env     []string // extra environment for the worker
	// Slots is how many jobs at once this server keeps in Slurm; 0: as many as the
	// partition has GPUs of the configured types for (at least 1).
	Slots int
	// Conf is SLURM_CONF for the commands ("" keeps theirs); Bin the folder holding
	// sbatch, squeue, scontrol, sacct, scancel and sinfo ("" finds them on PATH).
	Conf         string
	Bin          string
	RefreshEvery time.Duration // how often Refresh really runs sinfo; default 15 s
	Models       []Model
	Defaults     Defaults
}

// SlurmGPU maps a GPU type of the run form to a Slurm gres type.
type SlurmGPU struct {
	ID   string
	Gres string
}

// Slurm runs workers as Slurm batch jobs.
type Slurm struct {
	cfg SlurmConfig
	run func(ctx context.Context, env []string, stdin string, name string, args ...string) (string, error)

	mu      sync.Mutex
	gpus    map[string]gresCount // by gres type, from the last sinfo
	fetched time.Time
	lastErr error
}

type gresCount struct{ total, used int }

// NewSlurm checks the configuration and fills in defaults; it runs no Slurm command.
func NewSlurm(cfg SlurmConfig) (*Slurm, error) {
	if len(cfg.GPUTypes) == 0 {
		return nil, errors.New("gpu: slurm backend: name at least one GPU type and its gres type")
	}
	if len(cfg.Command) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("gpu: slurm backend: find this executable: %w", err)
		}
		cfg.Command = []string{exe, "worker"}
	}
	if cfg.GPUsPerJob <= 0 {
		cfg.GPUsPerJob = 1
	}
	if cfg.TimeLimit <= 0 {
		cfg.TimeLimit = 24 * time.Hour
	}
	if cfg.RefreshEvery <= 0 {
		cfg.RefreshEvery = 15 * time.Second
	}
	if cfg.LogDir != "" {
		if err := os.MkdirAll(cfg.LogDir, 0o700); err != nil {
			return nil, fmt.Errorf("gpu: slurm backend: %w", err)
		}
	}
	return &Slurm{cfg: cfg, run: runCommand}, nil
}

// Name implements Backend.
func (s *Slurm) Name() string { return "slurm" }

// Offer implements Backend: the configured GPU types, with what sinfo last said of them.
func (s *Slurm) Offer() Offer {
	s.mu.Lock()
	gpus := s.gpus
	s.mu.Unlock()
	o := Offer{Models: slices.Clone(s.cfg.Models), Defaults: s.cfg.Defaults, Slots: s.cfg.Slots,
		Methods: []store.Method{store.MethodLoRA, store.MethodDPO, store.MethodFull}}
	total := 0
	for _, g := range s.cfg.GPUTypes {
		about := fmt.Sprintf("Slurm gres gpu:%s, %d per run.", g.Gres, s.cfg.GPUsPerJob)
		if c, ok := gpus[g.Gres]; ok {
			about = fmt.Sprintf("Slurm gres gpu:%s, %d per run; %d of %d free when last asked.", g.Gres, s.cfg.GPUsPerJob, c.total-c.used, c.total)
			total += c.total / s.cfg.GPUsPerJob
		}
		o.GPUTypes = append(o.GPUTypes, GPUType{ID: g.ID, Name: g.ID, About: about})
	}
	if o.Slots <= 0 {
		o.Slots = max(total, 1)
	}
	return o
}

// Refresh implements Refresher: sinfo's GPUs of the partition, at most every
// RefreshEvery. A configured gres type the partition lacks is a health problem.
func (s *Slurm) Refresh(ctx context.Context) error {
	s.mu.Lock()
	if !s.fetched.IsZero() && time.Since(s.fetched) < s.cfg.RefreshEvery {
		err := s.lastErr
		s.mu.Unlock()
		return err
	}
	s.mu.Unlock()
	args := []string{"-h", "-N", "-O", "NodeHost:|,Gres:|,GresUsed:|,StateCompact:|"}
	if s.cfg.Partition != "" {
		args = append(args, "-p", s.cfg.Partition)
	}
	out, err := s.run(ctx, s.env(), "", s.bin("sinfo"), args...)
	var gpus map[string]gresCount
	if err == nil {
		gpus = parseSinfo(out)
		var missing []string
		for _, g := range s.cfg.GPUTypes {
			if gpus[g.Gres].total == 0 {
				missing = append(missing, "gpu:"+g.Gres)
			}
		}
		if len(missing) > 0 {
			err = fmt.Errorf("no node of the partition that can take jobs has %s (sinfo)", strings.Join(missing, ", "))
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fetched, s.lastErr = time.Now(), err
	if gpus != nil {
		s.gpus = gpus
	}
	return err
}

// parseSinfo adds up, per gres type, the GPUs of nodes that can take jobs and those in
// use, from lines "node|gpu:a100:4(S:0-1),gpu:h100:2|gpu:a100:1(IDX:0),gpu:h100:0(IDX:N/A)|mix|".
func parseSinfo(out string) map[string]gresCount {
	gpus := map[string]gresCount{}
	for line := range strings.Lines(out) {
		f := strings.Split(strings.TrimSpace(line), "|")
		if len(f) < 4 {
			continue
		}
		state := strings.TrimRight(f[3], "*~#!%$@^-")
		if state == "down" || state == "drain" || state == "drng" || state == "fail" || state == "maint" || state == "unk" {
			continue
		}
		for typ, n := range gresList(f[1]) {
			c := gpus[typ]
			c.total += n
			gpus[typ] = c
		}
		for typ, n := range gresList(f[2]) {
			c := gpus[typ]
			c.used += n
			gpus[typ] = c
		}
	}
	return gpus
}

// gresList reads "gpu:a100:4(S:0-1),gpu:h100:2" as {a100: 4, h100: 2}; an untyped
// "gpu:2" counts under "".
func gresList(s string) map[string]int {
	out := map[string]int{}
	for _, item := range splitGres(s) {
		item, _, _ = strings.Cut(item, "(")
		parts := strings.Split(item, ":")
		if len(parts) < 2 || parts[0] != "gpu" {
			continue
		}
		typ, count := "", parts[len(parts)-1]
		if len(parts) >= 3 {
			typ = parts[1]
		}
		if n, err := strconv.Atoi(count); err == nil {
			out[typ] += n
		}
	}
	return out
}

// splitGres splits on the commas that are not inside parentheses.
func splitGres(s string) []string {
	var out []string
	depth, start := 0, 0
	for i, c := range s {
		switch c {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}

// Submit implements Backend: sbatch with the job script on stdin. The run token reaches
// the job in the environment sbatch exports, never on a command line or in the script.
func (s *Slurm) Submit(ctx context.Context, job Job) (string, error) {
	gres := ""
	for _, g := range s.cfg.GPUTypes {
		if g.ID == job.Config.GPUType {
			gres = g.Gres
		}
	}
	if gres == "" {
		return "", fmt.Errorf("%w: the slurm backend has no GPU type %q", ErrBackend, job.Config.GPUType)
	}
	name := "tunelab-" + job.Label()
	output := "/dev/null"
	if s.cfg.LogDir != "" {
		output = fmt.Sprintf("%s/%s.log", strings.TrimRight(s.cfg.LogDir, "/"), job.Label())
	}
	args := []string{"--parsable", "--job-name=" + name, fmt.Sprintf("--gres=gpu:%s:%d", gres, s.cfg.GPUsPerJob),
		"--time=" + strconv.Itoa(int(math.Ceil(s.cfg.TimeLimit.Minutes()))), "--output=" + output, "--open-mode=append",
		"--export=ALL", "--no-requeue"}
	if s.cfg.Partition != "" {
		args = append(args, "--partition="+s.cfg.Partition)
	}
	cmd := append(slices.Clone(s.cfg.Command), job.WorkerArgs()...)
	quoted := make([]string, len(cmd))
	for i, a := range cmd {
		quoted[i] = shellQuote(a)
	}
	script := "#!/bin/sh\n# tunelab " + job.Label() + "; the token is in TUNELAB_RUN_TOKEN.\nexec " + strings.Join(quoted, " ") + "\n"
	env := workerEnv(os.Environ(), append(slices.Clone(s.cfg.Env), s.confEnv()...), job.Token)
	out, err := s.run(ctx, env, script, s.bin("sbatch"), args...)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrBackend, err)
	}
	id, _, _ := strings.Cut(strings.TrimSpace(out), ";")
	if _, err := strconv.ParseUint(id, 10, 64); err != nil {
		return "", fmt.Errorf("%w: sbatch answered %q, not a job id", ErrBackend, out)
	}
	return id, nil
}

// Status implements Backend from scontrol (which remembers ended jobs for MinJobAge),
// then sacct where accounting exists; a job neither knows is JobUnknown.
func (s *Slurm) Status(ctx context.Context, jobID string) (JobStatus, error) {
	out, err := s.run(ctx, s.env(), "", s.bin("scontrol"), "show", "job", "-o", jobID)
	if err == nil {
		f := slurmFields(out)
		return slurmState(jobID, f["JobState"], f["Reason"], f["ExitCode"]), nil
	}
	if !strings.Contains(err.Error(), "Invalid job id") {
		return JobStatus{}, fmt.Errorf("%w: %w", ErrBackend, err)
	}
	out, err = s.run(ctx, s.env(), "", s.bin("sacct"), "-n", "-P", "-X", "-j", jobID, "-o", "State,ExitCode")
	if err != nil || strings.TrimSpace(out) == "" {
		return JobStatus{State: JobUnknown}, nil // no accounting, or it does not know the job either
	}
	line, _, _ := strings.Cut(strings.TrimSpace(out), "\n")
	state, exit, _ := strings.Cut(line, "|")
	state, _, _ = strings.Cut(state, " ") // "CANCELLED by 0"
	return slurmState(jobID, state, "", exit), nil
}

// slurmState maps Slurm's job state to the backend's, keeping Slurm's words for an end.
func slurmState(jobID, state, reason, exit string) JobStatus {
	state = strings.TrimRight(state, "+")
	switch state {
	case "PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "SUSPENDED", "RESIZING":
		return JobStatus{State: JobPending}
	case "RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING":
		return JobStatus{State: JobRunning}
	}
	detail := fmt.Sprintf("Slurm job %s ended %s", jobID, state)
	if reason != "" && reason != "None" {
		detail += ", reason " + reason
	}
	if exit != "" && exit != "0:0" {
		detail += ", exit code " + exit
	}
	return JobStatus{State: JobExited, Detail: detail}
}

// slurmFields reads scontrol's one-line "Key=Value Key=Value" output.
func slurmFields(out string) map[string]string {
	f := map[string]string{}
	for _, kv := range strings.Fields(out) {
		if k, v, ok := strings.Cut(kv, "="); ok {
			if _, seen := f[k]; !seen {
				f[k] = v
			}
		}
	}
	return f
}

// Cancel implements Backend: scancel, which gives the job SIGTERM and, KillWait later,
// SIGKILL. A job Slurm no longer knows is already gone.
func (s *Slurm) Cancel(ctx context.Context, jobID string) error {
	_, err := s.run(ctx, s.env(), "", s.bin("scancel"), jobID)
	if err != nil && !strings.Contains(err.Error(), "Invalid job id") {
		return fmt.Errorf("%w: %w", ErrBackend, err)
	}
	return nil
}

func (s *Slurm) bin(name string) string {
	if s.cfg.Bin == "" {
		return name
	}
	return strings.TrimRight(s.cfg.Bin, "/") + "/" + name
}

// env is the environment of the Slurm commands other than sbatch: the server's, with
// SLURM_CONF when configured (nil: the server's as it is).
func (s *Slurm) env() []string {
	if s.cfg.Conf == "" {
		return nil
	}
	return append(os.Environ(), s.confEnv()...)
}

func (s *Slurm) confEnv() []string {
	if s.cfg.Conf == "" {
		return nil
	}
	return []string{"SLURM_CONF=" + s.cfg.Conf}
}

// shellQuote quotes one word for sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

var (
	_ Backend   = (*Slurm)(nil)
	_ Refresher = (*Slurm)(nil)
)

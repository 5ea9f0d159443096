package gpu

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"time"

	"tunelab/store"
)

// LocalConfig configures the local backend.
type LocalConfig struct {
	// Command starts a worker; "--server URL --run ID" is appended. Default: this
	// executable with "worker".
	Command []string
	Slots   int    // jobs at once; default 1
	LogDir  string // worker stdout and stderr are appended to LogDir/run-<id>.log; "" discards them
	Env     []string
	// KillAfter is how long a cancelled worker has between SIGTERM and SIGKILL; default 5 s.
	KillAfter time.Duration
	// Models and Defaults are what the worker's built-in trainer offers: its model catalogue
	// and the run form's starting values. main passes them from the trainer package, so this
	// package does not depend on the trainer.
	Models   []Model
	Defaults Defaults
	// Methods and GPUTypes replace the built-in trainer's (lora, dpo, full on the CPU) when
	// set, as the Python worker's option does (local_python.go).
	Methods  []store.Method
	GPUTypes []GPUType
}

// Local runs workers as child processes of this machine, the default backend. Each worker
// gets its own process group, so stopping the server does not stop training: the worker
// keeps retrying the server, and the restarted server finds it again by its job id.
type Local struct {
	cfg LocalConfig

	mu       sync.Mutex
	jobs     map[string]*localJob // started by this process
	stopping map[string]bool      // jobs of an earlier server process being cancelled
}

type localJob struct {
	pid      int
	done     chan struct{} // closed once the process was reaped
	detail   string        // how it ended; written before done is closed
	stopping bool
}

// NewLocal fills in defaults and prepares the log directory.
func NewLocal(cfg LocalConfig) (*Local, error) {
	if len(cfg.Command) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("gpu: local backend: find this executable: %w", err)
		}
		cfg.Command = []string{exe, "worker"}
	}
	cfg.Command = slices.Clone(cfg.Command)
	cfg.Models = slices.Clone(cfg.Models)
	if cfg.Slots <= 0 {
		cfg.Slots = 1
	}
	if cfg.KillAfter <= 0 {
		cfg.KillAfter = 5 * time.Second
	}
	if cfg.LogDir != "" {
		if err := os.MkdirAll(cfg.LogDir, 0o700); err != nil {
			return nil, fmt.Errorf("gpu: local backend: %w", err)
		}
	}
	return &Local{cfg: cfg, jobs: map[string]*localJob{}, stopping: map[string]bool{}}, nil
}

// Name implements Backend.
func (l *Local) Name() string { return "local" }

// Offer implements Backend: the built-in CPU trainer's models and methods (no qlora, which
// needs 4-bit GPU kernels) on this machine's CPU.
func (l *Local) Offer() Offer {
	if len(l.cfg.Methods) > 0 {
		return Offer{Models: slices.Clone(l.cfg.Models), Methods: slices.Clone(l.cfg.Methods),
			GPUTypes: slices.Clone(l.cfg.GPUTypes), Slots: l.cfg.Slots, Defaults: l.cfg.Defaults}
	}
	return Offer{
		Models:  slices.Clone(l.cfg.Models),
		Methods: []store.Method{store.MethodLoRA, store.MethodDPO, store.MethodFull},
		GPUTypes: []GPUType{{
			ID:    "cpu",
			Name:  "This machine's CPU",
			About: fmt.Sprintf("Trains on this server's %d CPU cores; no GPU is used.", runtime.NumCPU()),
		}},
		Slots:    l.cfg.Slots,
		Defaults: l.cfg.Defaults,
	}
}

// Submit implements Backend: it starts the worker and returns at once.
func (l *Local) Submit(ctx context.Context, job Job) (string, error) {
	args := append(slices.Clone(l.cfg.Command[1:]), job.WorkerArgs()...)
	cmd := exec.Command(l.cfg.Command[0], args...)
	cmd.Env = workerEnv(os.Environ(), l.cfg.Env, job.Token)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	logFile, err := l.openLog(job.Label())
	if err != nil {
		return "", err
	}
	if logFile != nil {
		fmt.Fprintf(logFile, "tunelab: %s starting worker: %q\n", time.Now().UTC().Format(time.RFC3339), cmd.Args)
		cmd.Stdout, cmd.Stderr = logFile, logFile
	}
	err = cmd.Start()
	if logFile != nil {
		logFile.Close() // the worker has its own copy of the descriptor
	}
	if err != nil {
		return "", err
	}
	j := &localJob{pid: cmd.Process.Pid, done: make(chan struct{})}
	id := localJobID(j.pid)
	l.mu.Lock()
	l.jobs[id] = j
	l.mu.Unlock()
	go l.wait(cmd, j, job.Label())
	return id, nil
}

// wait reaps the worker and records how it ended.
func (l *Local) wait(cmd *exec.Cmd, j *localJob, label string) {
	err := cmd.Wait()
	detail := "exited"
	if cmd.ProcessState != nil {
		detail = cmd.ProcessState.String() // "exit status 3", "signal: killed"
	} else if err != nil {
		detail = err.Error()
	}
	l.mu.Lock() // at once: Cancel signals the pid only while done is open
	j.detail = detail
	close(j.done)
	l.mu.Unlock()
	if f, _ := l.openLog(label); f != nil {
		fmt.Fprintf(f, "tunelab: %s worker ended: %s\n", time.Now().UTC().Format(time.RFC3339), detail)
		f.Close()
	}
}

func (l *Local) openLog(label string) (*os.File, error) {
	if l.cfg.LogDir == "" {
		return nil, nil
	}
	f, err := os.OpenFile(filepath.Join(l.cfg.LogDir, label+".log"),
		os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open worker log: %w", err)
	}
	return f, nil
}

// Status implements Backend. A job this process started is known exactly; one from an
// earlier server process is running while its pid still names the same process.
func (l *Local) Status(ctx context.Context, jobID string) (JobStatus, error) {
	l.mu.Lock()
	j := l.jobs[jobID]
	l.mu.Unlock()
	if j != nil {
		select {
		case <-j.done:
			return JobStatus{State: JobExited, Detail: j.detail}, nil
		default:
			return JobStatus{State: JobRunning}, nil
		}
	}
	if _, ok := sameLiveProcess(jobID); ok {
		return JobStatus{State: JobRunning}, nil
	}
	return JobStatus{State: JobUnknown}, nil
}

// Cancel implements Backend: SIGTERM to the worker's process group, SIGKILL after
// KillAfter if it is still there. It returns at once.
func (l *Local) Cancel(ctx context.Context, jobID string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if j := l.jobs[jobID]; j != nil {
		select {
		case <-j.done:
			return nil
		default:
		}
		if j.stopping {
			return nil
		}
		j.stopping = true
		// Under l.mu and before done: wait closes done right after reaping, so the pid
		// is still the worker's (bar a reuse within that instant).
		signalGroup(j.pid, syscall.SIGTERM)
		go func() {
			select {
			case <-j.done:
			case <-time.After(l.cfg.KillAfter):
				l.mu.Lock()
				defer l.mu.Unlock()
				select {
				case <-j.done:
				default:
					signalGroup(j.pid, syscall.SIGKILL)
				}
			}
		}()
		return nil
	}
	pid, ok := sameLiveProcess(jobID)
	if !ok || l.stopping[jobID] {
		return nil
	}
	l.stopping[jobID] = true
	signalGroup(pid, syscall.SIGTERM)
	go func() {
		defer func() {
			l.mu.Lock()
			delete(l.stopping, jobID)
			l.mu.Unlock()
		}()
		deadline := time.Now().Add(l.cfg.KillAfter)
		for time.Now().Before(deadline) {
			if _, alive := sameLiveProcess(jobID); !alive {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		if pid, alive := sameLiveProcess(jobID); alive {
			signalGroup(pid, syscall.SIGKILL)
		}
	}()
	return nil
}

var _ Backend = (*Local)(nil)

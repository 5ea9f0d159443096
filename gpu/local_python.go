package gpu

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"tunelab/store"
)

// PythonWorker is the local backend's option to run the Python GPU worker
// (trainer/python, `python -m tunelab_worker`) instead of the built-in CPU trainer:
// TUNELAB_LOCAL_WORKER=python.
type PythonWorker struct {
	Python    string // the interpreter whose environment holds trainer/python/requirements.txt
	Dir       string // the folder holding the tunelab_worker package (trainer/python)
	ModelsDir string // TUNELAB_MODELS_DIR: base models the operator put there ("" for none)
	// ProbeTimeout bounds `python -m tunelab_worker --offer` at start-up (importing torch
	// takes seconds); default 3 minutes.
	ProbeTimeout time.Duration
}

// pythonOffer is what `python -m tunelab_worker --offer` prints.
type pythonOffer struct {
	Models []struct {
		ID         string `json:"id"`
		Parameters int64  `json:"parameters"`
	} `json:"models"`
	Skipped []string `json:"skipped"`
	Methods []string `json:"methods"`
	GPUs    []struct {
		Name        string `json:"name"`
		MemoryBytes int64  `json:"memory_bytes"`
	} `json:"gpus"`
	Error string `json:"error"`
}

// PythonDefaults are the run form's starting values for transformer fine-tuning.
var PythonDefaults = Defaults{Epochs: 3, LearningRate: 2e-4, BatchSize: 4, LoRARank: 16, LoRAAlpha: 32,
	MaxSeqLen: 1024, Seed: 42, ValidationSplit: 10, SnapshotEvery: 0}

// WithPython returns cfg set up to start the Python worker, offering what the worker
// finds on this machine: the base models present (safetensors, no remote code), and the
// CUDA GPUs torch sees, else the CPU. It fails when the worker cannot run or finds no model,
// saying what to fix.
func (p PythonWorker) WithPython(ctx context.Context, cfg LocalConfig) (LocalConfig, error) {
	if p.Python == "" {
		p.Python = "python3"
	}
	dir, err := filepath.Abs(p.Dir)
	if err != nil {
		return cfg, err
	}
	if _, err := os.Stat(filepath.Join(dir, "tunelab_worker", "__main__.py")); err != nil {
		return cfg, fmt.Errorf("TUNELAB_LOCAL_WORKER=python: no tunelab_worker package in %s; set TUNELAB_PYTHON_WORKER_DIR to the checkout's trainer/python", dir)
	}
	env := []string{"PYTHONPATH=" + dir, "HF_HUB_OFFLINE=1", "TRANSFORMERS_OFFLINE=1", "PYTHONUNBUFFERED=1"}
	if p.ModelsDir != "" {
		abs, err := filepath.Abs(p.ModelsDir)
		if err != nil {
			return cfg, err
		}
		env = append(env, "TUNELAB_MODELS_DIR="+abs)
	}
	offer, err := p.probe(ctx, env)
	if err != nil {
		return cfg, err
	}
	if len(offer.Models) == 0 {
		msg := "TUNELAB_LOCAL_WORKER=python: the Python worker found no base model; put Hugging Face model folders (config.json, tokenizer, *.safetensors) in TUNELAB_MODELS_DIR or the offline Hugging Face cache (HF_HOME)"
		if len(offer.Skipped) > 0 {
			msg += "; skipped: " + strings.Join(offer.Skipped, "; ")
		}
		return cfg, errors.New(msg)
	}
	cfg.Command = []string{p.Python, "-m", "tunelab_worker"}
	cfg.Env = append(append([]string{}, cfg.Env...), env...)
	cfg.Models = nil
	for _, m := range offer.Models {
		about := "From this server's model folder or Hugging Face cache."
		if m.Parameters > 0 {
			about = fmt.Sprintf("%s parameters; from this server's model folder or Hugging Face cache.", humanCount(m.Parameters))
		}
		cfg.Models = append(cfg.Models, Model{ID: m.ID, Name: m.ID, About: about})
	}
	cfg.Methods = nil
	for _, m := range offer.Methods {
		if store.Method(m).Valid() {
			cfg.Methods = append(cfg.Methods, store.Method(m))
		}
	}
	cfg.GPUTypes = pythonGPUTypes(offer)
	cfg.Defaults = PythonDefaults
	return cfg, nil
}

func (p PythonWorker) probe(ctx context.Context, env []string) (pythonOffer, error) {
	timeout := p.ProbeTimeout
	if timeout <= 0 {
		timeout = 3 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.Python, "-m", "tunelab_worker", "--offer")
	cmd.Env = workerEnv(os.Environ(), env, "")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return pythonOffer{}, fmt.Errorf("TUNELAB_LOCAL_WORKER=python: %s -m tunelab_worker --offer failed (%v): %s; set TUNELAB_PYTHON to the venv that scripts/python-env.sh prints",
			p.Python, err, lastLine(errOut.String()))
	}
	var o pythonOffer
	if err := json.Unmarshal(out.Bytes(), &o); err != nil {
		return o, fmt.Errorf("TUNELAB_LOCAL_WORKER=python: the worker's --offer printed no JSON: %v", err)
	}
	if o.Error != "" {
		return o, fmt.Errorf("TUNELAB_LOCAL_WORKER=python: %s; set TUNELAB_PYTHON to the venv that scripts/python-env.sh prints", o.Error)
	}
	return o, nil
}

var nonSlug = regexp.MustCompile(`[^a-z0-9]+`)

// pythonGPUTypes is one GPU type per kind of CUDA device ("cuda-nvidia-h100-80gb-hbm3"),
// or the CPU when torch sees none.
func pythonGPUTypes(o pythonOffer) []GPUType {
	var types []GPUType
	seen := map[string]bool{}
	for _, g := range o.GPUs {
		id := "cuda-" + strings.Trim(nonSlug.ReplaceAllString(strings.ToLower(g.Name), "-"), "-")
		if seen[id] {
			continue
		}
		seen[id] = true
		n := 0
		for _, h := range o.GPUs {
			if h.Name == g.Name {
				n++
			}
		}
		types = append(types, GPUType{ID: id, Name: g.Name,
			About: fmt.Sprintf("%d on this server, %d GiB each; trained with CUDA.", n, g.MemoryBytes>>30)})
	}
	if len(types) == 0 {
		types = append(types, GPUType{ID: "cpu", Name: "This machine's CPU",
			About: "torch sees no CUDA GPU here, so the Python worker trains on the CPU: fine for small models only."})
	}
	return types
}

func humanCount(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.1fB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1fM", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1fK", float64(n)/1e3)
	}
	return fmt.Sprint(n)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

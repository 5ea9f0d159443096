package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"tunelab/gpu"
)

// backendNames are the backends TUNELAB_BACKEND may name, in the README's order.
var backendNames = []string{"local", "slurm", "http"}

// backendList reads TUNELAB_BACKEND (or its synonym TUNELAB_BACKENDS): a comma list of
// backend names, each at most once, "local" when unset. The order is the routing order.
func backendList(getenv func(string) string, errs []error) ([]string, []error) {
	key, v := "TUNELAB_BACKEND", strings.TrimSpace(getenv("TUNELAB_BACKEND"))
	if alt := strings.TrimSpace(getenv("TUNELAB_BACKENDS")); alt != "" {
		if v != "" && v != alt {
			return nil, append(errs, fmt.Errorf("TUNELAB_BACKEND=%q and TUNELAB_BACKENDS=%q disagree: set one of them", v, alt))
		}
		key, v = "TUNELAB_BACKENDS", alt
	}
	if v == "" {
		return []string{"local"}, errs
	}
	var out []string
	for _, name := range strings.Split(v, ",") {
		name = strings.ToLower(strings.TrimSpace(name))
		switch {
		case !slices.Contains(backendNames, name):
			return nil, append(errs, fmt.Errorf("%s=%q: %q is not a backend; use a comma list of %s", key, v, name, strings.Join(backendNames, ", ")))
		case slices.Contains(out, name):
			return nil, append(errs, fmt.Errorf("%s=%q: %s is named twice", key, v, name))
		}
		out = append(out, name)
	}
	return out, errs
}

// httpBackendConfig is TUNELAB_HTTP_*: the remote GPU provider (docs/http-backend.md).
type httpBackendConfig struct {
	URL      string
	Token    string
	GPUTypes []string
	Image    string
	Worker   []string
	Slots    int
	Timeout  time.Duration
}

// slurmBackendConfig is TUNELAB_SLURM_*: a Slurm cluster reached with its commands.
type slurmBackendConfig struct {
	GPUTypes   []gpu.SlurmGPU
	Partition  string
	GPUsPerJob int
	TimeLimit  time.Duration
	Worker     []string
	Slots      int
	Conf       string
	Bin        string
	LogDir     string
}

// loadBackendSettings reads the settings of the backends TUNELAB_BACKEND names; the
// settings of a backend not named are ignored.
func (c *config) loadBackendSettings(env func(k, def string) string, errs []error) []error {
	if slices.Contains(c.Backends, "http") {
		h := httpBackendConfig{
			URL:    strings.TrimRight(env("TUNELAB_HTTP_URL", ""), "/"),
			Token:  env("TUNELAB_HTTP_TOKEN", ""),
			Image:  env("TUNELAB_HTTP_IMAGE", ""),
			Worker: strings.Fields(env("TUNELAB_HTTP_WORKER", "tunelab worker")),
		}
		for _, g := range strings.Split(env("TUNELAB_HTTP_GPU_TYPES", ""), ",") {
			if g = strings.TrimSpace(g); g != "" {
				h.GPUTypes = append(h.GPUTypes, g)
			}
		}
		h.Slots = intEnv(env, "TUNELAB_HTTP_SLOTS", 4, 1, 10_000, "jobs at once", &errs)
		h.Timeout = durationEnv(env, "TUNELAB_HTTP_TIMEOUT", 15*time.Second, time.Second, 5*time.Minute, &errs)
		if !strings.HasPrefix(h.URL, "http://") && !strings.HasPrefix(h.URL, "https://") {
			errs = append(errs, fmt.Errorf("TUNELAB_HTTP_URL=%q: the http backend needs the provider's base URL, starting with https:// (or http://)", h.URL))
		}
		if h.Token == "" {
			errs = append(errs, errors.New("TUNELAB_HTTP_TOKEN is required with the http backend (the bearer token the provider gave you)"))
		}
		if len(h.GPUTypes) == 0 {
			errs = append(errs, errors.New("TUNELAB_HTTP_GPU_TYPES is required with the http backend: a comma list of the provider's GPU type ids runs may use, e.g. a100,h100"))
		}
		if c.WorkerURL == "" && c.BaseURL == "" {
			errs = append(errs, errors.New("the http backend's workers run at the provider: set TUNELAB_WORKER_URL (or TUNELAB_BASE_URL) to the URL they reach this server at"))
		}
		c.HTTP = h
	}
	if slices.Contains(c.Backends, "slurm") {
		sc := slurmBackendConfig{
			Partition: env("TUNELAB_SLURM_PARTITION", ""),
			Worker:    strings.Fields(env("TUNELAB_SLURM_WORKER", "")),
			Conf:      env("TUNELAB_SLURM_CONF", ""),
			Bin:       env("TUNELAB_SLURM_BIN", ""),
			LogDir:    env("TUNELAB_SLURM_LOG_DIR", ""),
		}
		for _, item := range strings.Split(env("TUNELAB_SLURM_GPU_TYPES", ""), ",") {
			item = strings.TrimSpace(item)
			if item == "" {
				continue
			}
			id, gres, found := strings.Cut(item, "=")
			if !found {
				gres = id
			}
			id, gres = strings.TrimSpace(id), strings.TrimSpace(gres)
			if id == "" || gres == "" || strings.ContainsAny(gres, ": ") {
				errs = append(errs, fmt.Errorf("TUNELAB_SLURM_GPU_TYPES: %q: use a GPU type, or type=gres-type as in a100=a100 (the gres is then gpu:a100:N)", item))
				continue
			}
			sc.GPUTypes = append(sc.GPUTypes, gpu.SlurmGPU{ID: id, Gres: gres})
		}
		if len(sc.GPUTypes) == 0 {
			errs = append(errs, errors.New("TUNELAB_SLURM_GPU_TYPES is required with the slurm backend: a comma list of the cluster's GPU gres types, e.g. a100,h100 (or name=gres pairs)"))
		}
		sc.GPUsPerJob = intEnv(env, "TUNELAB_SLURM_GPUS_PER_JOB", 1, 1, 64, "GPUs a job", &errs)
		sc.Slots = intEnv(env, "TUNELAB_SLURM_SLOTS", 0, 0, 100_000, "jobs at once", &errs)
		sc.TimeLimit = durationEnv(env, "TUNELAB_SLURM_TIME_LIMIT", 24*time.Hour, time.Minute, 365*24*time.Hour, &errs)
		c.Slurm = sc
	}
	return errs
}

// newBackends builds the configured backends in routing order.
func newBackends(ctx context.Context, cfg config, log *slog.Logger) ([]gpu.Backend, error) {
	models, defaults := builtinCatalogue()
	var out []gpu.Backend
	for _, name := range cfg.Backends {
		switch name {
		case "local":
			local := gpu.LocalConfig{Command: cfg.LocalWorker, Slots: cfg.LocalSlots, LogDir: filepath.Join(cfg.DataDir, "workers"),
				Models: models, Defaults: defaults}
			if cfg.usesPythonWorker() {
				var err error
				if local, err = cfg.PythonWorker.WithPython(ctx, local); err != nil {
					return nil, err
				}
			}
			b, err := gpu.NewLocal(local)
			if err != nil {
				return nil, err
			}
			out = append(out, b)
		case "slurm":
			logDir := cfg.Slurm.LogDir
			if logDir == "" {
				logDir = filepath.Join(cfg.DataDir, "workers")
			}
			b, err := gpu.NewSlurm(gpu.SlurmConfig{Partition: cfg.Slurm.Partition, GPUTypes: cfg.Slurm.GPUTypes, GPUsPerJob: cfg.Slurm.GPUsPerJob,
				TimeLimit: cfg.Slurm.TimeLimit, Command: cfg.Slurm.Worker, LogDir: logDir, Slots: cfg.Slurm.Slots,
				Conf: cfg.Slurm.Conf, Bin: cfg.Slurm.Bin, Models: models, Defaults: defaults})
			if err != nil {
				return nil, err
			}
			out = append(out, b)
		case "http":
			serverURL := cfg.WorkerURL
			if serverURL == "" {
				serverURL = cfg.BaseURL
			}
			b, err := gpu.NewHTTP(gpu.HTTPConfig{URL: cfg.HTTP.URL, Token: cfg.HTTP.Token, Image: cfg.HTTP.Image, Command: cfg.HTTP.Worker,
				ServerURL: serverURL, GPUTypes: cfg.HTTP.GPUTypes, Slots: cfg.HTTP.Slots, Timeout: cfg.HTTP.Timeout,
				Models: models, Defaults: defaults})
			if err != nil {
				return nil, err
			}
			out = append(out, b)
		}
	}
	// Ask remote backends for their offer now, so the first run form is complete; one
	// that does not answer is shown unhealthy and asked again on every pass.
	for _, b := range out {
		if r, ok := b.(gpu.Refresher); ok {
			rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			if err := r.Refresh(rctx); err != nil {
				log.Warn("backend not ready", "backend", b.Name(), "err", err)
			}
			cancel()
		}
	}
	log.Info("backends", "names", strings.Join(cfg.Backends, ","))
	return out, nil
}

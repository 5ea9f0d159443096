package gpu

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"tunelab/store"
)

// HTTPConfig configures the http backend: a remote GPU provider that speaks the JSON
// contract in docs/http-backend.md.
type HTTPConfig struct {
	URL   string // the provider's base URL, e.g. https://gpus.example.com
	Token string // bearer token for the provider (TUNELAB_HTTP_TOKEN); never logged
	// Image is the container image the provider runs the worker in ("" when the provider
	// has its own); Command is the worker command, "--server URL --run ID" appended.
	Image   string
	Command []string
	// ServerURL is where the provider's workers reach this server (its public URL);
	// "" keeps the dispatcher's.
	ServerURL string
	// GPUTypes are the provider's GPU types runs may ask for (prices need them at
	// start-up); the provider's offer adds names and free counts.
	GPUTypes []string
	Slots    int // jobs at once from this server; default 4
	// Timeout caps one request; Attempts is how many times an idempotent request is
	// tried; Backoff is the first wait between tries, doubling each time.
	Timeout  time.Duration // default 15 s
	Attempts int           // default 4
	Backoff  time.Duration // default 500 ms
	// Models and Defaults are what the worker offers (the built-in trainer's, from main)
	// unless the provider's offer lists models of its own.
	Models   []Model
	Defaults Defaults
	Client   *http.Client // nil: a client with Timeout
	// RefreshEvery is how often Refresh really asks the provider; default 15 s.
	RefreshEvery time.Duration
}

// HTTPBackend runs workers at a remote GPU provider.
type HTTPBackend struct {
	cfg    HTTPConfig
	client *http.Client
	sleep  func(ctx context.Context, d time.Duration) error

	mu      sync.Mutex
	offer   providerOffer
	fetched time.Time
	lastErr error
}

// NewHTTP checks the configuration and fills in defaults. It does not call the provider.
func NewHTTP(cfg HTTPConfig) (*HTTPBackend, error) {
	if !strings.HasPrefix(cfg.URL, "http://") && !strings.HasPrefix(cfg.URL, "https://") {
		return nil, fmt.Errorf("gpu: http backend: the provider URL %q must start with http:// or https://", cfg.URL)
	}
	cfg.URL = strings.TrimRight(cfg.URL, "/")
	if len(cfg.GPUTypes) == 0 {
		return nil, errors.New("gpu: http backend: name the provider's GPU types runs may use")
	}
	if len(cfg.Command) == 0 {
		cfg.Command = []string{"tunelab", "worker"}
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.Timeout, 15*time.Second)
	def(&cfg.Backoff, 500*time.Millisecond)
	def(&cfg.RefreshEvery, 15*time.Second)
	if cfg.Attempts <= 0 {
		cfg.Attempts = 4
	}
	if cfg.Slots <= 0 {
		cfg.Slots = 4
	}
	client := cfg.Client
	if client == nil {
		client = &http.Client{Timeout: cfg.Timeout}
	}
	return &HTTPBackend{cfg: cfg, client: client, sleep: sleepCtx}, nil
}

// Name implements Backend.
func (h *HTTPBackend) Name() string { return "http" }

// Offer implements Backend from the provider's last offer.
func (h *HTTPBackend) Offer() Offer {
	h.mu.Lock()
	po := h.offer
	h.mu.Unlock()
	o := Offer{Slots: h.cfg.Slots, Defaults: h.cfg.Defaults, Models: slices.Clone(h.cfg.Models),
		Methods: []store.Method{store.MethodLoRA, store.MethodDPO, store.MethodFull}}
	if len(po.Models) > 0 {
		o.Models = nil
		for _, m := range po.Models {
			o.Models = append(o.Models, Model{ID: m.ID, Name: cmp(m.Name, m.ID), About: m.About})
		}
	}
	if len(po.Methods) > 0 {
		o.Methods = nil
		for _, m := range po.Methods {
			o.Methods = append(o.Methods, store.Method(m))
		}
	}
	for _, id := range h.cfg.GPUTypes {
		g := GPUType{ID: id, Name: id, About: "At the remote GPU provider."}
		if i := slices.IndexFunc(po.GPUTypes, func(p providerGPU) bool { return p.ID == id }); i >= 0 {
			g.Name = cmp(po.GPUTypes[i].Name, id)
			g.About = fmt.Sprintf("At the remote GPU provider; %d free when last asked.", po.GPUTypes[i].Free)
		}
		o.GPUTypes = append(o.GPUTypes, g)
	}
	return o
}

func cmp(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Refresh implements Refresher: it asks the provider's offer at most every RefreshEvery.
// A configured GPU type the provider does not list is a health problem.
func (h *HTTPBackend) Refresh(ctx context.Context) error {
	h.mu.Lock()
	if !h.fetched.IsZero() && time.Since(h.fetched) < h.cfg.RefreshEvery {
		err := h.lastErr
		h.mu.Unlock()
		return err
	}
	h.mu.Unlock()
	var po providerOffer
	err := h.call(ctx, http.MethodGet, "/v1/offer", nil, "", &po)
	if err == nil {
		var missing []string
		for _, id := range h.cfg.GPUTypes {
			if !slices.ContainsFunc(po.GPUTypes, func(p providerGPU) bool { return p.ID == id }) {
				missing = append(missing, id)
			}
		}
		if len(missing) > 0 {
			err = fmt.Errorf("the provider does not offer %s (configured in TUNELAB_HTTP_GPU_TYPES)", strings.Join(missing, ", "))
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.fetched, h.lastErr = time.Now(), err
	if err == nil || len(po.GPUTypes) > 0 {
		h.offer = po
	}
	return err
}

// Submit implements Backend. The idempotency key is the same on every retry of one
// submit (and differs for each claim of a run), so a retry after a lost reply gets the
// job the provider already started, never a second one.
func (h *HTTPBackend) Submit(ctx context.Context, job Job) (string, error) {
	if h.cfg.ServerURL != "" {
		job.ServerURL = h.cfg.ServerURL
	}
	sum := sha256.Sum256([]byte(job.Token))
	key := fmt.Sprintf("tunelab-%s-%s", job.Label(), hex.EncodeToString(sum[:6]))
	req := providerSubmit{
		Name:     "tunelab-" + job.Label(),
		Image:    h.cfg.Image,
		Command:  append(slices.Clone(h.cfg.Command), job.WorkerArgs()...),
		Env:      map[string]string{RunTokenEnv: job.Token},
		GPUType:  job.Config.GPUType,
		GPUCount: 1,
	}
	var out providerJob
	if err := h.call(ctx, http.MethodPost, "/v1/jobs", req, key, &out); err != nil {
		return "", err
	}
	if out.ID == "" {
		return "", fmt.Errorf("%w: the provider accepted the job but sent no id", ErrBackend)
	}
	return out.ID, nil
}

// Status implements Backend. A job the provider does not know (404) is JobUnknown.
func (h *HTTPBackend) Status(ctx context.Context, jobID string) (JobStatus, error) {
	var out providerJob
	err := h.call(ctx, http.MethodGet, "/v1/jobs/"+pathEscape(jobID), nil, "", &out)
	var pe *ProviderError
	if errors.As(err, &pe) && pe.Status == http.StatusNotFound {
		return JobStatus{State: JobUnknown}, nil
	}
	if err != nil {
		return JobStatus{}, err
	}
	switch out.State {
	case "pending", "queued":
		return JobStatus{State: JobPending}, nil
	case "running":
		return JobStatus{State: JobRunning}, nil
	case "succeeded", "failed", "cancelled":
		detail := "the provider says the job " + out.State
		if out.Reason != "" {
			detail += ": " + out.Reason
		}
		return JobStatus{State: JobExited, Detail: detail}, nil
	}
	return JobStatus{}, fmt.Errorf("%w: the provider reported job %s in an unknown state %q", ErrBackend, jobID, out.State)
}

// Cancel implements Backend; a job the provider does not know is already gone.
func (h *HTTPBackend) Cancel(ctx context.Context, jobID string) error {
	err := h.call(ctx, http.MethodDelete, "/v1/jobs/"+pathEscape(jobID), nil, "", nil)
	var pe *ProviderError
	if errors.As(err, &pe) && pe.Status == http.StatusNotFound {
		return nil
	}
	return err
}

var (
	_ Backend   = (*HTTPBackend)(nil)
	_ Refresher = (*HTTPBackend)(nil)
)

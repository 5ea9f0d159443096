package gpu

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// provider is an in-process GPU provider implementing docs/http-backend.md, with faults
// a test can stage.
type provider struct {
	t     *testing.T
	token string

	mu        sync.Mutex
	jobs      map[string]*providerJobRec
	byKey     map[string]string // idempotency key -> job id
	next      int
	gpus      []providerGPU
	fail5xx   int           // the next N requests answer 503
	delay     time.Duration // every request waits this long first
	dropReply int           // the next N submits start the job, then drop the connection
	requests  []string      // "METHOD /path"
}

type providerJobRec struct {
	providerJob
	submit providerSubmit
	key    string
}

func newProvider(t *testing.T) (*provider, *httptest.Server) {
	p := &provider{t: t, token: "prov-secret-token", jobs: map[string]*providerJobRec{}, byKey: map[string]string{},
		gpus: []providerGPU{{ID: "a100", Name: "NVIDIA A100 80GB", Free: 3}}}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return p, srv
}

func (p *provider) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.requests = append(p.requests, r.Method+" "+r.URL.Path)
	delay := p.delay
	fail := p.fail5xx > 0
	if fail {
		p.fail5xx--
	}
	p.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	if r.Header.Get("Authorization") != "Bearer "+p.token {
		p.error(w, http.StatusUnauthorized, "unauthenticated", "a valid bearer token is required")
		return
	}
	if fail {
		p.error(w, http.StatusServiceUnavailable, "unavailable", "the scheduler is restarting")
		return
	}
	switch {
	case r.Method == "GET" && r.URL.Path == "/v1/offer":
		p.mu.Lock()
		defer p.mu.Unlock()
		p.json(w, http.StatusOK, providerOffer{GPUTypes: p.gpus})
	case r.Method == "POST" && r.URL.Path == "/v1/jobs":
		p.submit(w, r)
	case strings.HasPrefix(r.URL.Path, "/v1/jobs/"):
		id := strings.TrimPrefix(r.URL.Path, "/v1/jobs/")
		p.mu.Lock()
		defer p.mu.Unlock()
		j := p.jobs[id]
		if j == nil {
			p.error(w, http.StatusNotFound, "not_found", "no job "+id)
			return
		}
		if r.Method == "DELETE" && (j.State == "pending" || j.State == "running") {
			j.State, j.Reason = "cancelled", "cancelled by the client"
		}
		p.json(w, http.StatusOK, j.providerJob)
	default:
		p.error(w, http.StatusNotFound, "not_found", "no route")
	}
}

func (p *provider) submit(w http.ResponseWriter, r *http.Request) {
	key := r.Header.Get("Idempotency-Key")
	if key == "" {
		p.error(w, http.StatusBadRequest, "invalid_request", "Idempotency-Key is required")
		return
	}
	var s providerSubmit
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil || len(s.Command) == 0 || s.GPUType == "" {
		p.error(w, http.StatusBadRequest, "invalid_request", fmt.Sprintf("bad job: %v", err))
		return
	}
	p.mu.Lock()
	id, seen := p.byKey[key]
	if !seen {
		p.next++
		id = fmt.Sprintf("pj-%d", p.next)
		p.jobs[id] = &providerJobRec{providerJob: providerJob{ID: id, State: "running"}, submit: s, key: key}
		p.byKey[key] = id
	}
	drop := p.dropReply > 0
	if drop {
		p.dropReply--
	}
	j := p.jobs[id].providerJob
	p.mu.Unlock()
	if drop {
		// The job started, but the reply never reaches the client.
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
		return
	}
	status := http.StatusCreated
	if seen {
		status = http.StatusOK
	}
	p.json(w, status, j)
}

func (p *provider) json(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (p *provider) error(w http.ResponseWriter, status int, code, msg string) {
	var b providerErrorBody
	b.Error.Code, b.Error.Message = code, msg
	p.json(w, status, b)
}

func (p *provider) setJob(id, state, reason string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.jobs[id].State, p.jobs[id].Reason = state, reason
}

func (p *provider) jobCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.jobs)
}

func (p *provider) count(req string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, r := range p.requests {
		if r == req {
			n++
		}
	}
	return n
}

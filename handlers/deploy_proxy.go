package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"tunelab/store"
)

// /v1/chat/completions and /v1/completions for a worker deployment's model id are proxied
// to its inference server with the deployment's serve key: the body goes as the client
// sent it, the answer (streamed or not) comes back as the server sent it. While the
// server starts or is unhealthy the answer is 503 in OpenAI's error shape.

// proxyClient talks to inference servers: no redirects followed (the key must not travel
// elsewhere), a bound on the wait for the first byte, none on a stream's length.
var proxyClient = &http.Client{
	Transport:     &http.Transport{ResponseHeaderTimeout: 5 * time.Minute, MaxIdleConnsPerHost: 8, IdleConnTimeout: time.Minute},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// proxyStale is how old a deployment's last heartbeat may be before requests are refused
// as unhealthy.
func (a *app) proxyStale() time.Duration { return 3*a.runs.HeartbeatInterval + 5*time.Second }

// routeDeployments wraps an OpenAI generation endpoint: a request naming the person's
// worker deployment is proxied, anything else goes to next with its body intact.
func (a *app) routeDeployments(path string, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, openaiMaxBody))
		if err != nil {
			openaiError(w, http.StatusRequestEntityTooLarge, "invalid_request_error", "", "", "The body is over 1 MiB or could not be read.")
			return
		}
		var peek struct {
			Model string `json:"model"`
		}
		_ = json.Unmarshal(body, &peek) // a bad body is next's to answer
		if peek.Model != "" && !strings.HasPrefix(peek.Model, "tunelab/") {
			d, err := a.store.LiveDeploymentByName(r.Context(), apiUser(r), peek.Model)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				a.openaiServerError(w, r, err)
				return
			}
			if err == nil && d.Worker {
				a.proxyToDeployment(w, r, d, path, body)
				return
			}
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		next(w, r)
	}
}

// deploymentNotReady answers 503 saying why a worker deployment cannot answer now.
func deploymentNotReady(w http.ResponseWriter, d store.Deployment, state string) {
	msg := "The deployment `" + d.Name + "` is starting: its inference server is loading the model. Try again in a minute."
	if state == store.DeployUnhealthy {
		msg = "The deployment `" + d.Name + "` is unhealthy: its inference server is not answering heartbeats or reported a fault"
		if d.Job.Health != "" {
			msg += " (" + d.Job.Health + ")"
		}
		msg += ". Try again later, or see its log on the Deployments page."
	}
	w.Header().Set("Retry-After", "10")
	openaiError(w, http.StatusServiceUnavailable, "server_error", "model", "model_not_ready", msg)
}

func (a *app) proxyToDeployment(w http.ResponseWriter, r *http.Request, d store.Deployment, path string, body []byte) {
	if state := d.State(a.now(), a.proxyStale()); state != store.DeployLive || d.Job.URL == "" {
		deploymentNotReady(w, d, state)
		return
	}
	key, err := a.serveKey(d)
	if err != nil {
		a.openaiServerError(w, r, err)
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.Job.URL+path, bytes.NewReader(body))
	if err != nil {
		a.openaiServerError(w, r, err)
		return
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := proxyClient.Do(req)
	if err != nil {
		a.log.WarnContext(r.Context(), "deployment proxy", "deployment", d.ID, "err", err)
		openaiError(w, http.StatusBadGateway, "server_error", "", "", "The deployment's inference server could not be reached; try again.")
		return
	}
	defer resp.Body.Close()
	ct := resp.Header.Get("Content-Type")
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden || (resp.StatusCode >= 300 && resp.StatusCode < 400):
		// Between this server and its inference server: not the client's doing.
		a.log.WarnContext(r.Context(), "deployment proxy refused", "deployment", d.ID, "status", resp.StatusCode)
		openaiError(w, http.StatusBadGateway, "server_error", "", "", "The deployment's inference server refused this server's request; stop and deploy it again.")
		return
	case resp.StatusCode >= 400 && !strings.HasPrefix(ct, "application/json"):
		openaiError(w, http.StatusBadGateway, "server_error", "", "", "The deployment's inference server failed; try again.")
		return
	}
	h := w.Header()
	h.Set("Content-Type", ct)
	h.Set("Cache-Control", "no-store")
	if strings.HasPrefix(ct, "text/event-stream") {
		h.Set("X-Accel-Buffering", "no")
	}
	w.WriteHeader(resp.StatusCode)
	rc := http.NewResponseController(w)
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return // the client left; cancel stops the upstream generation
			}
			_ = rc.Flush()
		}
		if err != nil {
			return
		}
	}
}

// callDeployment posts body as JSON to path on the deployment's inference server with its
// serve key, for this server's own use (evaluation), and decodes the 200 answer into out.
// Any other answer is an error saying what happened, with the server's message.
func (a *app) callDeployment(ctx context.Context, d store.Deployment, key, path string, body, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.Job.URL+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := proxyClient.Do(req)
	if err != nil {
		return fmt.Errorf("the deployment's inference server could not be reached: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("the deployment's inference server's answer could not be read: %w", err)
	}
	switch {
	case resp.StatusCode == http.StatusOK:
		return json.Unmarshal(raw, out)
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return errors.New("the deployment's inference server refused this server's key; stop and deploy the snapshot again")
	case resp.StatusCode == http.StatusNotFound:
		return errors.New("the deployment's inference server has no " + path + " (it predates evaluation); stop and deploy the snapshot again")
	}
	var e struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	_ = json.Unmarshal(raw, &e)
	if e.Error.Message == "" {
		e.Error.Message = http.StatusText(resp.StatusCode)
	}
	return fmt.Errorf("the deployment's inference server answered %d: %s", resp.StatusCode, e.Error.Message)
}

package gpu

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// The JSON bodies of docs/http-backend.md.
type (
	providerOffer struct {
		GPUTypes []providerGPU   `json:"gpu_types"`
		Models   []providerModel `json:"models,omitempty"`
		Methods  []string        `json:"methods,omitempty"`
	}
	providerGPU struct {
		ID   string `json:"id"`
		Name string `json:"name,omitempty"`
		Free int    `json:"free"`
	}
	providerModel struct {
		ID    string `json:"id"`
		Name  string `json:"name,omitempty"`
		About string `json:"about,omitempty"`
	}
	providerSubmit struct {
		Name     string            `json:"name"`
		Image    string            `json:"image,omitempty"`
		Command  []string          `json:"command"`
		Env      map[string]string `json:"env"`
		GPUType  string            `json:"gpu_type"`
		GPUCount int               `json:"gpu_count"`
	}
	providerJob struct {
		ID     string `json:"id"`
		State  string `json:"state"`
		Reason string `json:"reason,omitempty"`
	}
	providerErrorBody struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
)

// ProviderError is an answer of the provider other than 2xx.
type ProviderError struct {
	Status  int
	Code    string
	Message string
}

func (e *ProviderError) Error() string {
	msg := e.Message
	if e.Code != "" {
		msg = e.Code + ": " + msg
	}
	return fmt.Sprintf("the provider answered %d %s", e.Status, msg)
}

// retryable says whether another try may succeed: the provider's trouble (5xx), too many
// requests, a timeout, or a connection that failed.
func retryable(err error) bool {
	var pe *ProviderError
	if errors.As(err, &pe) {
		return pe.Status >= 500 || pe.Status == http.StatusTooManyRequests || pe.Status == http.StatusRequestTimeout
	}
	return err != nil
}

// call sends one request, retrying with doubling backoff while the failure is
// retryable. Every call is safe to repeat: GET and DELETE are, and a POST carries an
// idempotency key. out may be nil.
func (h *HTTPBackend) call(ctx context.Context, method, path string, body any, idemKey string, out any) error {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return err
		}
	}
	wait := h.cfg.Backoff
	var err error
	for attempt := 1; ; attempt++ {
		err = h.once(ctx, method, path, payload, idemKey, out)
		if err == nil || !retryable(err) || attempt >= h.cfg.Attempts || ctx.Err() != nil {
			break
		}
		if serr := h.sleep(ctx, wait); serr != nil {
			break
		}
		wait *= 2
	}
	if err != nil {
		return fmt.Errorf("%w: %s %s: %w", ErrBackend, method, path, err)
	}
	return nil
}

func (h *HTTPBackend) once(ctx context.Context, method, path string, payload []byte, idemKey string, out any) error {
	rctx, cancel := context.WithTimeout(ctx, h.cfg.Timeout)
	defer cancel()
	var rd io.Reader
	if payload != nil {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(rctx, method, h.cfg.URL+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+h.cfg.Token)
	req.Header.Set("Accept", "application/json")
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if idemKey != "" {
		req.Header.Set("Idempotency-Key", idemKey)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is in the message already; never the token, which is a header
		}
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		pe := &ProviderError{Status: resp.StatusCode, Message: http.StatusText(resp.StatusCode)}
		var eb providerErrorBody
		if json.Unmarshal(b, &eb) == nil && eb.Error.Message != "" {
			pe.Code, pe.Message = eb.Error.Code, eb.Error.Message
		}
		return pe
	}
	if out == nil || len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("the provider's answer is not the documented JSON: %w", err)
	}
	return nil
}

func pathEscape(s string) string { return url.PathEscape(s) }

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

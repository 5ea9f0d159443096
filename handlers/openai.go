package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"tunelab/store"
	"tunelab/trainer"
)

// The OpenAI-compatible API (docs/openai.md): /v1/models, /v1/chat/completions and
// /v1/completions over the built-in base models and a person's live deployments, with an
// account API key. Shapes, status codes and error bodies follow OpenAI's API reference, so
// the official SDKs work with base_url pointed here. The model's tokens are bytes: usage
// counts bytes.

const (
	openaiMaxTokens       = 512 // bytes generated at most per answer
	openaiDefaultComplete = 16  // OpenAI's default max_tokens for /v1/completions
	openaiMaxBody         = 1 << 20
)

// openaiErr is an error as OpenAI sends it.
type openaiErr struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

func openaiError(w http.ResponseWriter, status int, typ, param, code, msg string) {
	e := openaiErr{Message: msg, Type: typ}
	if param != "" {
		e.Param = &param
	}
	if code != "" {
		e.Code = &code
	}
	writeJSON(w, status, map[string]openaiErr{"error": e})
}

func openaiBadParam(w http.ResponseWriter, param, msg string) {
	openaiError(w, http.StatusBadRequest, "invalid_request_error", param, "invalid_value", msg)
}

func openaiModelNotFound(w http.ResponseWriter, model string) {
	openaiError(w, http.StatusNotFound, "invalid_request_error", "model", "model_not_found",
		"The model `"+model+"` does not exist or you do not have access to it.")
}

// openaiAuth admits a request with a live API key, answering 401 in OpenAI's shape
// otherwise; failures count against the client's address like the account API's.
func (a *app) openaiAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ip := limitKey(a.clientIP(r))
		if blocked, wait := a.limits.tokenIP.blocked(ip); blocked {
			w.Header().Set("Retry-After", retryAfter(wait))
			openaiError(w, http.StatusTooManyRequests, "requests", "", "rate_limit_exceeded", "Too many requests with bad keys; wait and try again.")
			return
		}
		fail := func(msg string) {
			a.limits.tokenIP.hit(ip)
			openaiError(w, http.StatusUnauthorized, "invalid_request_error", "", "invalid_api_key", msg)
		}
		key, ok := bearerAPIKey(r)
		if !ok {
			fail("Incorrect API key provided. Send a tunelab API key as Authorization: Bearer tl_... (make one in Settings, API keys).")
			return
		}
		k, err := a.store.APIKeyFor(r.Context(), key)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			openaiError(w, http.StatusInternalServerError, "server_error", "", "", "The server had an error; try again.")
			a.log.ErrorContext(r.Context(), "openai api key", "err", err)
			return
		}
		if err != nil || !k.Active(a.now()) {
			detail := "unknown key"
			if err == nil {
				detail = "revoked or expired key " + k.Prefix + "…"
				a.recordEvent(r, store.EventAPIKeyFailed, k.UserID, detail)
			} else {
				a.recordEvent(r, store.EventAPIKeyFailed, 0, detail)
			}
			fail("Incorrect API key provided: it is unknown, revoked or expired. Make a new one in Settings, API keys.")
			return
		}
		if a.refuseSuspendedAPI(w, r, k.UserID) {
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), apiUserKey{}, k.UserID)))
	})
}

// openaiModel is a model as /v1/models lists it.
type openaiModel struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

// baseModelCreated is the creation time the base models report (they ship with tunelab).
var baseModelCreated = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Unix()

func (a *app) openaiModels(ctx context.Context, userID int64) ([]openaiModel, error) {
	out := []openaiModel{}
	for _, m := range trainer.BaseModels {
		out = append(out, openaiModel{ID: m.ID, Object: "model", Created: baseModelCreated, OwnedBy: "tunelab"})
	}
	deps, err := a.store.Deployments(ctx, userID)
	if err != nil {
		return nil, err
	}
	for _, d := range deps {
		if d.Live() {
			out = append(out, openaiModel{ID: d.Name, Object: "model", Created: d.CreatedAt.Unix(), OwnedBy: "user"})
		}
	}
	return out, nil
}

func (a *app) openaiListModels(w http.ResponseWriter, r *http.Request) {
	models, err := a.openaiModels(r.Context(), apiUser(r))
	if err != nil {
		a.openaiServerError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": models})
}

func (a *app) openaiShowModel(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	models, err := a.openaiModels(r.Context(), apiUser(r))
	if err != nil {
		a.openaiServerError(w, r, err)
		return
	}
	for _, m := range models {
		if m.ID == id {
			writeJSON(w, http.StatusOK, m)
			return
		}
	}
	openaiModelNotFound(w, id)
}

func (a *app) openaiServerError(w http.ResponseWriter, r *http.Request, err error) {
	a.log.ErrorContext(r.Context(), "openai api", "path", r.URL.Path, "err", err)
	if store.IsDiskFull(err) {
		w.Header().Set("Retry-After", diskFullRetry)
		openaiError(w, http.StatusServiceUnavailable, "server_error", "", "disk_full", diskFullMessage)
		return
	}
	openaiError(w, http.StatusInternalServerError, "server_error", "", "", "The server had an error while processing your request; try again.")
}

// openaiFinish maps why generation ended to OpenAI's finish_reason.
func openaiFinish(reason string) string {
	if reason == trainer.FinishMaxTokens {
		return "length"
	}
	return "stop"
}

// openaiID makes a response id like OpenAI's ("chatcmpl-..." or "cmpl-...").
func openaiID(prefix string) string {
	return prefix + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
}

// stopList reads stop: null, a string, or an array of up to 4 strings.
func stopList(raw json.RawMessage) ([]string, bool) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, true
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return []string{one}, len(one) > 0 && len(one) <= playgroundMaxStopLen
	}
	var many []string
	if json.Unmarshal(raw, &many) != nil || len(many) > playgroundMaxStops {
		return nil, false
	}
	for _, s := range many {
		if s == "" || len(s) > playgroundMaxStopLen {
			return nil, false
		}
	}
	return many, true
}

// openaiUsage counts bytes, this model's tokens.
type openaiUsage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

func usageOf(prompt, completion string) openaiUsage {
	return openaiUsage{PromptTokens: len(prompt), CompletionTokens: len(completion), TotalTokens: len(prompt) + len(completion)}
}

// sampling is what both endpoints share: the body fields that shape generation.
type sampling struct {
	Model               string          `json:"model"`
	Temperature         *float64        `json:"temperature"`
	TopP                *float64        `json:"top_p"`
	MaxTokens           *int            `json:"max_tokens"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	Stop                json.RawMessage `json:"stop"`
	Seed                *int64          `json:"seed"`
	N                   *int            `json:"n"`
	Stream              bool            `json:"stream"`
	StreamOptions       *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
}

// options checks the shared fields; on a bad one it answers 400 naming the parameter.
func (s sampling) options(w http.ResponseWriter, defaultMax int) (trainer.SampleOptions, bool) {
	o := trainer.SampleOptions{MaxBytes: defaultMax, Temperature: 1, TopP: 1}
	if s.Model == "" {
		openaiBadParam(w, "model", "You must provide a model parameter.")
		return o, false
	}
	if s.N != nil && *s.N != 1 {
		openaiBadParam(w, "n", "Only n=1 is supported: one choice per request.")
		return o, false
	}
	if t := s.Temperature; t != nil {
		if *t < 0 || *t > playgroundMaxTemp {
			openaiBadParam(w, "temperature", "temperature must be a number from 0 to 2.")
			return o, false
		}
		o.Temperature = *t
	}
	if p := s.TopP; p != nil {
		if !(*p > 0 && *p <= 1) {
			openaiBadParam(w, "top_p", "top_p must be a number above 0 and at most 1.")
			return o, false
		}
		o.TopP = *p
	}
	for _, m := range []struct {
		name string
		v    *int
	}{{"max_tokens", s.MaxTokens}, {"max_completion_tokens", s.MaxCompletionTokens}} {
		if m.v == nil {
			continue
		}
		if *m.v < 1 || *m.v > openaiMaxTokens {
			openaiBadParam(w, m.name, m.name+" must be a whole number from 1 to "+strconv.Itoa(openaiMaxTokens)+" (tokens are bytes here).")
			return o, false
		}
		o.MaxBytes = *m.v
	}
	stops, ok := stopList(s.Stop)
	if !ok {
		openaiBadParam(w, "stop", "stop must be a string or an array of up to 4 strings, each 1 to 32 bytes.")
		return o, false
	}
	o.Stop = stops
	if s.Seed != nil {
		o.Seed = *s.Seed
	}
	return o, true
}

// decodeOpenAI reads the body as JSON, ignoring fields this server does not use (the
// SDKs send several), and answers 400 when it is not a JSON object.
func decodeOpenAI(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, openaiMaxBody)).Decode(v); err != nil {
		msg := "The body is not valid JSON: " + err.Error()
		if strings.Contains(err.Error(), "cannot unmarshal") {
			msg = "A parameter has the wrong type: " + err.Error()
		}
		openaiError(w, http.StatusBadRequest, "invalid_request_error", "", "", msg)
		return false
	}
	return true
}

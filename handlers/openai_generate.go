package handlers

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"tunelab/store"
	"tunelab/trainer"
)

// Generation for /v1/chat/completions and /v1/completions, in-process on the built-in
// model. Loaded weights stay in a small cache so a deployment reads its snapshot once;
// each person shares the playground's generation slots, so a busy person gets 429.

const deployCacheSize = 8 // models kept loaded across all people

// deployCache keeps the most recently used loaded models, keyed by snapshot or base model.
type deployCache struct {
	mu    sync.Mutex
	order []string
	m     map[string]*trainer.Model
}

func (c *deployCache) get(key string, load func() (*trainer.Model, error)) (*trainer.Model, error) {
	c.mu.Lock()
	if m, ok := c.m[key]; ok {
		c.mu.Unlock()
		return m, nil
	}
	c.mu.Unlock()
	m, err := load()
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]*trainer.Model{}
	}
	if _, ok := c.m[key]; !ok {
		c.order = append(c.order, key)
		if len(c.order) > deployCacheSize {
			delete(c.m, c.order[0])
			c.order = c.order[1:]
		}
	}
	c.m[key] = m
	return m, nil
}

// openaiLoad finds the model the request names: a base model, or the person's live
// deployment. Anything else (another person's, stopped, unknown) is store.ErrNotFound.
func (a *app) openaiLoad(r *http.Request, userID int64, name string) (*trainer.Model, error) {
	if bm, ok := trainer.BaseModelByID(name); ok {
		return a.deployed.get(playgroundBasePrefix+bm.ID, func() (*trainer.Model, error) {
			return trainer.NewModel(bm.Size, playgroundBaseSeed), nil
		})
	}
	d, err := a.store.LiveDeploymentByName(r.Context(), userID, name)
	if err != nil {
		return nil, err
	}
	ref := playgroundSnapPrefix + strconv.FormatInt(d.SnapshotID, 10)
	return a.deployed.get(ref, func() (*trainer.Model, error) { return a.playgroundModel(r, userID, ref) })
}

type chatRequest struct {
	sampling
	Messages []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
}

type completionRequest struct {
	sampling
	Prompt json.RawMessage `json:"prompt"`
}

// messageText reads a message's content: a string, or an array of text parts.
func messageText(raw json.RawMessage) (string, bool) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, true
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if json.Unmarshal(raw, &parts) != nil {
		return "", false
	}
	var b strings.Builder
	for _, p := range parts {
		if p.Type != "text" {
			return "", false
		}
		b.WriteString(p.Text)
	}
	return b.String(), true
}

func (a *app) openaiChat(w http.ResponseWriter, r *http.Request) {
	var req chatRequest
	if !decodeOpenAI(w, r, &req) {
		return
	}
	o, ok := req.options(w, openaiMaxTokens)
	if !ok {
		return
	}
	if len(req.Messages) == 0 {
		openaiBadParam(w, "messages", "messages must hold at least one message.")
		return
	}
	var msgs []trainer.Message
	for i, m := range req.Messages {
		text, ok := messageText(m.Content)
		role := m.Role
		if role == "developer" {
			role = "system"
		}
		if !ok || (role != "system" && role != "user" && role != "assistant") {
			openaiBadParam(w, fmt.Sprintf("messages[%d]", i), "Each message needs a role (system, developer, user or assistant) and text content.")
			return
		}
		msgs = append(msgs, trainer.Message{Role: role, Content: text})
	}
	a.openaiGenerate(w, r, req.sampling, o, trainer.ChatPrompt(msgs), true)
}

func (a *app) openaiCompletion(w http.ResponseWriter, r *http.Request) {
	var req completionRequest
	if !decodeOpenAI(w, r, &req) {
		return
	}
	o, ok := req.options(w, openaiDefaultComplete)
	if !ok {
		return
	}
	var prompt string
	if json.Unmarshal(req.Prompt, &prompt) != nil {
		var many []string
		if json.Unmarshal(req.Prompt, &many) != nil || len(many) != 1 {
			openaiBadParam(w, "prompt", "prompt must be a string (or an array of exactly one string).")
			return
		}
		prompt = many[0]
	}
	a.openaiGenerate(w, r, req.sampling, o, prompt, false)
}

// openaiGenerate answers one generation, whole or as server-sent chunks.
func (a *app) openaiGenerate(w http.ResponseWriter, r *http.Request, s sampling, o trainer.SampleOptions, prompt string, chat bool) {
	if len(prompt) > playgroundMaxPrompt {
		param := "prompt"
		if chat {
			param = "messages"
		}
		openaiBadParam(w, param, fmt.Sprintf("The prompt is %d bytes; keep it under %d.", len(prompt), playgroundMaxPrompt))
		return
	}
	userID := apiUser(r)
	model, err := a.openaiLoad(r, userID, s.Model)
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, errPlaygroundUnknown) {
		openaiModelNotFound(w, s.Model)
		return
	}
	if err != nil {
		a.openaiServerError(w, r, err)
		return
	}
	release, ok := a.playground.acquire(userID)
	if !ok {
		openaiError(w, http.StatusTooManyRequests, "requests", "", "rate_limit_exceeded",
			fmt.Sprintf("You already have %d answers generating; wait for one to finish and try again.", playgroundStreamsPerPerson))
		return
	}
	defer release()
	ctx, cancel := context.WithTimeout(r.Context(), playgroundTimeout)
	defer cancel()
	id, created := openaiID("cmpl"), time.Now().Unix()
	object := "text_completion"
	if chat {
		id, object = openaiID("chatcmpl"), "chat.completion"
	}
	if !s.Stream {
		var out strings.Builder
		reason, err := model.Stream(ctx, prompt, o, func(t string) error { out.WriteString(t); return nil })
		if err != nil && r.Context().Err() != nil {
			return
		}
		finish := openaiFinish(reason)
		if err != nil {
			finish = "length" // stopped at the time limit
		}
		choice := map[string]any{"index": 0, "finish_reason": finish, "logprobs": nil}
		if chat {
			choice["message"] = map[string]any{"role": "assistant", "content": out.String(), "refusal": nil}
		} else {
			choice["text"] = out.String()
		}
		writeJSON(w, http.StatusOK, map[string]any{"id": id, "object": object, "created": created, "model": s.Model,
			"choices": []any{choice}, "usage": usageOf(prompt, out.String())})
		return
	}
	rc := http.NewResponseController(w)
	rc.SetWriteDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 1024)
	if chat {
		object = "chat.completion.chunk"
	}
	send := func(choice map[string]any, usage *openaiUsage) error {
		chunk := map[string]any{"id": id, "object": object, "created": created, "model": s.Model, "choices": []any{}}
		if choice != nil {
			chunk["choices"] = []any{choice}
		}
		if usage != nil {
			chunk["usage"] = usage
		}
		b, _ := json.Marshal(chunk)
		bw.WriteString("data: ")
		bw.Write(b)
		bw.WriteString("\n\n")
		if err := bw.Flush(); err != nil {
			return err
		}
		return rc.Flush()
	}
	piece := func(text string, finish any) map[string]any {
		c := map[string]any{"index": 0, "finish_reason": finish, "logprobs": nil}
		if chat {
			delta := map[string]any{}
			if text != "" {
				delta["content"] = text
			}
			c["delta"] = delta
		} else {
			c["text"] = text
		}
		return c
	}
	if chat {
		first := piece("", nil)
		first["delta"] = map[string]any{"role": "assistant", "content": ""}
		if send(first, nil) != nil {
			return
		}
	}
	var all strings.Builder
	reason, err := model.Stream(ctx, prompt, o, func(t string) error { all.WriteString(t); return send(piece(t, nil), nil) })
	if err != nil && r.Context().Err() != nil {
		return
	}
	finish := openaiFinish(reason)
	if err != nil {
		finish = "length"
	}
	send(piece("", finish), nil)
	if s.StreamOptions != nil && s.StreamOptions.IncludeUsage {
		u := usageOf(prompt, all.String())
		send(nil, &u)
	}
	bw.WriteString("data: [DONE]\n\n")
	bw.Flush()
	rc.Flush()
}

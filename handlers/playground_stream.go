package handlers

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"html"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"tunelab/store"
	"tunelab/trainer"
)

// The answer of one model to a saved prompt, over SSE: each unnamed message is a piece of
// text (whole UTF-8 characters, HTML-escaped in a span) that htmx appends to the output;
// the last one puts how it ended into the status line (out of band), then "done" closes
// the stream. Generation runs in the request's goroutine, bounded three ways: a byte cap
// (playgroundMaxTokens), playgroundStreamsPerPerson at once per person, and
// playgroundTimeout.

const (
	playgroundStreamsPerPerson = 2 // a comparison streams two at once
	playgroundTimeout          = 60 * time.Second
	// playgroundBaseSeed is the seed the untrained base models are built from: the
	// weights a lora run with the default seed starts from.
	playgroundBaseSeed = 42
)

var (
	errPlaygroundUnknown = errors.New("Pick a model from the list: that snapshot is not one of yours, or it was deleted.")
	errPlaygroundDeploy  = errors.New("That snapshot comes from a GPU run; it generates on a deployment: deploy it on its run page, then pick its deployment here.")
)

// playgroundSlots counts the answers each person is generating.
type playgroundSlots struct {
	mu sync.Mutex
	n  map[int64]int
}

func (s *playgroundSlots) acquire(userID int64) (release func(), ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n == nil {
		s.n = map[int64]int{}
	}
	if s.n[userID] >= playgroundStreamsPerPerson {
		return nil, false
	}
	s.n[userID]++
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.n[userID]--; s.n[userID] <= 0 {
			delete(s.n, userID)
		}
	}, true
}

// playgroundModel loads what ref names for the person: an untrained base model, or one
// of their snapshots of the built-in model. errPlaygroundUnknown covers an unknown
// reference and another person's snapshot alike.
func (a *app) playgroundModel(r *http.Request, userID int64, ref string) (*trainer.Model, error) {
	if id, ok := strings.CutPrefix(ref, playgroundBasePrefix); ok {
		m, found := trainer.BaseModelByID(id)
		if !found {
			return nil, errPlaygroundUnknown
		}
		return trainer.NewModel(m.Size, playgroundBaseSeed), nil
	}
	raw, ok := strings.CutPrefix(ref, playgroundSnapPrefix)
	sid, err := strconv.ParseInt(raw, 10, 64)
	if !ok || err != nil || sid <= 0 {
		return nil, errPlaygroundUnknown
	}
	sn, err := a.store.PlaygroundSnapshotByID(r.Context(), userID, sid)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errPlaygroundUnknown
	}
	if err != nil {
		return nil, err
	}
	if _, builtIn := trainer.BaseModelByID(sn.BaseModel); !builtIn {
		return nil, errPlaygroundDeploy
	}
	f, err := a.vault.Open(sn.FileID)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	body, format := sniffSnapshot(f)
	if format != formatSafetensors {
		return nil, errPlaygroundDeploy
	}
	m, err := trainer.ReadModel(body, nil)
	if err != nil {
		return nil, fmt.Errorf("playground: snapshot %d: %w", sid, err)
	}
	return m, nil
}

func (a *app) playgroundStream(w http.ResponseWriter, r *http.Request) {
	u, _ := userFrom(r.Context())
	pid, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	slot := r.PathValue("slot")
	if err != nil || (slot != "a" && slot != "b") {
		a.notFound(w, r)
		return
	}
	p, err := a.store.PlaygroundPromptByID(r.Context(), u.ID, pid)
	if errors.Is(err, store.ErrNotFound) {
		a.notFound(w, r)
		return
	}
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	ref := p.ModelA
	if slot == "b" {
		ref = p.ModelB
	}
	if ref == "" {
		a.notFound(w, r)
		return
	}
	if strings.HasPrefix(ref, playgroundDeployPrefix) {
		a.playgroundDeploymentStream(w, r, u.ID, p, slot, ref)
		return
	}
	model, modelErr := a.playgroundModel(r, u.ID, ref)
	if errors.Is(modelErr, errPlaygroundUnknown) {
		a.notFound(w, r)
		return
	}
	rc := http.NewResponseController(w)
	rc.SetWriteDeadline(time.Time{}) // the answer may outlast the server's WriteTimeout
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 1024)
	statusID := "playground-status-" + slot
	finish := func(status, tone string) {
		fmt.Fprintf(bw, "data: <span id=\"%s\" hx-swap-oob=\"innerHTML\"><span class=\"playground-end playground-end-%s\" data-testid=\"playground-end\">%s</span></span>\n\n",
			statusID, tone, html.EscapeString(status))
		bw.WriteString("event: done\ndata: {}\n\n")
		bw.Flush()
		rc.Flush()
	}
	switch {
	case errors.Is(modelErr, errPlaygroundDeploy):
		finish(modelErr.Error(), "warning")
		return
	case modelErr != nil:
		a.log.ErrorContext(r.Context(), "playground model", "prompt", p.ID, "err", modelErr)
		finish("This snapshot could not be read, so it cannot generate.", "danger")
		return
	}
	release, ok := a.playground.acquire(u.ID)
	if !ok {
		finish(fmt.Sprintf("You already have %d answers generating; wait for them to finish, then run this again.", playgroundStreamsPerPerson), "warning")
		return
	}
	defer release()
	ctx, cancel := context.WithTimeout(r.Context(), playgroundTimeout)
	defer cancel()
	sent, blank, started := 0, true, time.Now()
	reason, err := model.Stream(ctx, playgroundText(p), trainer.SampleOptions{MaxBytes: p.MaxTokens, Temperature: p.Temperature,
		TopP: p.TopP, Seed: p.Seed, Stop: p.Stop}, func(text string) error {
		sent += len(text)
		blank = blank && strings.TrimSpace(text) == ""
		bw.WriteString("data: <span>")
		bw.WriteString(strings.ReplaceAll(html.EscapeString(text), "\n", "\ndata: "))
		bw.WriteString("</span>\n\n")
		if err := bw.Flush(); err != nil {
			return err
		}
		return rc.Flush()
	})
	switch {
	case errors.Is(err, context.DeadlineExceeded) && r.Context().Err() == nil:
		finish(fmt.Sprintf("Stopped after %s, the most one answer may take.", playgroundTimeout), "warning")
	case err != nil:
		return // the person left
	default:
		status := fmt.Sprintf("%s · %d bytes · %s", playgroundReasons[reason], sent, time.Since(started).Round(time.Millisecond))
		if blank && sent > 0 {
			status += " · only spaces and line breaks"
		}
		finish(status, "success")
	}
}

// playgroundReasons say why an answer ended.
var playgroundReasons = map[string]string{
	trainer.FinishEOS:       "The model ended its answer",
	trainer.FinishMaxTokens: "Reached max tokens",
	trainer.FinishStop:      "Met a stop sequence",
}

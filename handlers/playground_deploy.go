package handlers

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"net/http"
	"strconv"
	"strings"
	"time"

	"tunelab/store"
)

// The playground on a GPU deployment: a snapshot of a Python-worker run generates on its
// deployment's inference server, so the playground picks the deployment
// ("deployment:<id>") and streams its answer through the same proxy as /v1
// (deploy_proxy.go), turning the OpenAI chunks into the playground's SSE pieces.

const playgroundDeployPrefix = "deployment:"

var errPlaygroundStopped = errors.New("That deployment has stopped; deploy its snapshot again on its run page, then pick the new deployment.")

// playgroundDeployment finds the person's worker deployment a reference names. Another
// person's, an unknown one or a built-in one is errPlaygroundUnknown.
func (a *app) playgroundDeployment(ctx context.Context, userID int64, ref string) (store.Deployment, error) {
	raw, _ := strings.CutPrefix(ref, playgroundDeployPrefix)
	id, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || id <= 0 {
		return store.Deployment{}, errPlaygroundUnknown
	}
	d, err := a.store.DeploymentByID(ctx, userID, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !d.Worker) {
		return store.Deployment{}, errPlaygroundUnknown
	}
	if err != nil {
		return d, err
	}
	if !d.Live() {
		return d, errPlaygroundStopped
	}
	return d, nil
}

// checkPlaygroundRef says whether a model reference can be picked: a base model, a
// built-in snapshot, or a live GPU deployment of the person's.
func (a *app) checkPlaygroundRef(r *http.Request, userID int64, ref string) error {
	if strings.HasPrefix(ref, playgroundDeployPrefix) {
		_, err := a.playgroundDeployment(r.Context(), userID, ref)
		return err
	}
	_, err := a.playgroundModel(r, userID, ref)
	return err
}

// playgroundDeploymentOptions are the person's live GPU deployments for the model lists,
// and the snapshots they serve.
func (a *app) playgroundDeploymentOptions(ctx context.Context, userID int64) (opts [][2]string, served map[int64]bool, err error) {
	deps, err := a.store.Deployments(ctx, userID)
	if err != nil {
		return nil, nil, err
	}
	served = map[int64]bool{}
	for _, d := range deps {
		if !d.Worker || !d.Live() {
			continue
		}
		served[d.SnapshotID] = true
		opts = append(opts, [2]string{playgroundDeployPrefix + strconv.FormatInt(d.ID, 10),
			fmt.Sprintf("%s · %s · step %s", d.Name, d.RunName, formatCount(int64(d.Step)))})
	}
	return opts, served, nil
}

// playgroundDeploymentRequest is the OpenAI request a saved prompt makes of a deployment.
func playgroundDeploymentRequest(d store.Deployment, p store.PlaygroundPrompt) (path string, body []byte) {
	req := map[string]any{"model": d.Name, "max_tokens": p.MaxTokens, "temperature": p.Temperature, "top_p": p.TopP,
		"seed": p.Seed, "stream": true}
	if len(p.Stop) > 0 {
		req["stop"] = p.Stop
	}
	path = "/v1/completions"
	if p.Mode == playgroundModeChat {
		var msgs []map[string]string
		if p.System != "" {
			msgs = append(msgs, map[string]string{"role": "system", "content": p.System})
		}
		req["messages"] = append(msgs, map[string]string{"role": "user", "content": p.Prompt})
		path = "/v1/chat/completions"
	} else {
		req["prompt"] = p.Prompt
	}
	body, _ = json.Marshal(req)
	return path, body
}

// playgroundDeploymentStream streams a deployment's answer to a saved prompt as the
// playground's SSE (playground_stream.go has the format).
func (a *app) playgroundDeploymentStream(w http.ResponseWriter, r *http.Request, userID int64, p store.PlaygroundPrompt, slot, ref string) {
	d, depErr := a.playgroundDeployment(r.Context(), userID, ref)
	if errors.Is(depErr, errPlaygroundUnknown) {
		a.notFound(w, r)
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
	finish := func(status, tone string) {
		fmt.Fprintf(bw, "data: <span id=\"playground-status-%s\" hx-swap-oob=\"innerHTML\"><span class=\"playground-end playground-end-%s\" data-testid=\"playground-end\">%s</span></span>\n\n",
			slot, tone, html.EscapeString(status))
		bw.WriteString("event: done\ndata: {}\n\n")
		bw.Flush()
		rc.Flush()
	}
	if depErr != nil {
		if errors.Is(depErr, errPlaygroundStopped) {
			finish(depErr.Error(), "warning")
			return
		}
		a.log.ErrorContext(r.Context(), "playground deployment", "prompt", p.ID, "err", depErr)
		finish("This deployment could not be read, so it cannot generate.", "danger")
		return
	}
	if state := d.State(a.now(), a.proxyStale()); state != store.DeployLive || d.Job.URL == "" {
		finish(fmt.Sprintf("The deployment %s is %s; its answer can come once the Deployments page says Live.", d.Name, deploymentStates[state][0]), "warning")
		return
	}
	release, ok := a.playground.acquire(userID)
	if !ok {
		finish(fmt.Sprintf("You already have %d answers generating; wait for them to finish, then run this again.", playgroundStreamsPerPerson), "warning")
		return
	}
	defer release()
	key, err := a.serveKey(d)
	if err != nil {
		a.log.ErrorContext(r.Context(), "playground deployment key", "deployment", d.ID, "err", err)
		finish("This deployment could not be reached.", "danger")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), playgroundTimeout)
	defer cancel()
	path, body := playgroundDeploymentRequest(d, p)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, d.Job.URL+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	started := time.Now()
	resp, err := proxyClient.Do(req)
	if err != nil {
		a.log.WarnContext(r.Context(), "playground deployment", "deployment", d.ID, "err", err)
		finish("The deployment's inference server could not be reached; try again.", "danger")
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error openaiErr `json:"error"`
		}
		msg := fmt.Sprintf("The deployment's inference server answered %d.", resp.StatusCode)
		if json.NewDecoder(resp.Body).Decode(&e) == nil && e.Error.Message != "" && resp.StatusCode == http.StatusBadRequest {
			msg = e.Error.Message
		}
		finish(msg, "danger")
		return
	}
	sent, reason := 0, ""
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok || data == "[DONE]" {
			continue
		}
		var c struct {
			Choices []struct {
				Text  string `json:"text"`
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
				FinishReason *string `json:"finish_reason"`
			} `json:"choices"`
		}
		if json.Unmarshal([]byte(data), &c) != nil || len(c.Choices) == 0 {
			continue
		}
		ch := c.Choices[0]
		if ch.FinishReason != nil {
			reason = *ch.FinishReason
		}
		text := ch.Text + ch.Delta.Content
		if text == "" {
			continue
		}
		sent += len(text)
		bw.WriteString("data: <span>")
		bw.WriteString(strings.ReplaceAll(html.EscapeString(text), "\n", "\ndata: "))
		bw.WriteString("</span>\n\n")
		if bw.Flush() != nil || rc.Flush() != nil {
			return // the person left
		}
	}
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded) && r.Context().Err() == nil:
		finish(fmt.Sprintf("Stopped after %s, the most one answer may take.", playgroundTimeout), "warning")
	case r.Context().Err() != nil:
	case reason == "":
		finish("The deployment's answer broke off.", "danger")
	default:
		why := "The model ended its answer or met a stop sequence"
		if reason == "length" {
			why = "Reached max tokens"
		}
		finish(fmt.Sprintf("%s · %d bytes · %s · on %s", why, sent, time.Since(started).Round(time.Millisecond), d.Name), "success")
	}
}

// deploymentPromptText is what a deployment is sent: the text to continue, or the chat
// messages, which its inference server lays out with the model's own chat template.
func deploymentPromptText(p store.PlaygroundPrompt) string {
	if p.Mode != playgroundModeChat {
		return p.Prompt
	}
	var b strings.Builder
	b.WriteString("Chat messages, laid out by the model's own chat template on its inference server:\n")
	if p.System != "" {
		b.WriteString("system: " + p.System + "\n")
	}
	b.WriteString("user: " + p.Prompt)
	return b.String()
}

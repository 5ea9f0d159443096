package handlers

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"

	"tunelab/store"
	"tunelab/trainer"
	"tunelab/views"
)

// The playground: a person picks the built-in model (untrained) or one of their snapshots
// of it, writes a prompt and reads the answer as it is sampled. The POST checks and saves
// the prompt in the history, then redirects to /playground?run=<id>; that page fetches one
// stream per model (playgroundStream), so two models answer side by side. Snapshots of GPU
// runs (ZIPs from the Python worker) generate on their deployment (playground_deploy.go).

const (
	playgroundMaxTokens   = 512  // bytes sampled at most per answer
	playgroundMaxPrompt   = 4000 // bytes of prompt (system message included)
	playgroundMaxStops    = 4
	playgroundMaxStopLen  = 32
	playgroundMaxTemp     = 2.0
	playgroundBasePrefix  = "base:"
	playgroundSnapPrefix  = "snapshot:"
	playgroundModeChat    = "chat"
	playgroundModeComplet = "completion"
)

func playgroundDefaults() views.PlaygroundValues {
	return views.PlaygroundValues{Mode: playgroundModeComplet, ModelA: playgroundBasePrefix + trainer.BaseModels[0].ID,
		Temperature: "0.7", TopP: "0.9", MaxTokens: "120", Seed: "0"}
}

// showPlayground renders the form: empty, prefilled from ?a= and ?b= (snapshots to
// compare), or with ?run= an earlier prompt of the history, run again.
func (a *app) showPlayground(w http.ResponseWriter, r *http.Request) {
	u, _ := userFrom(r.Context())
	v := playgroundDefaults()
	q := r.URL.Query()
	var errs map[string]string
	for _, pick := range []struct {
		key, field string
		dst        *string
	}{{"a", "model_a", &v.ModelA}, {"b", "model_b", &v.ModelB}} {
		ref := q.Get(pick.key)
		if ref == "" {
			continue
		}
		err := a.checkPlaygroundRef(r, u.ID, ref)
		switch {
		case errors.Is(err, errPlaygroundUnknown):
			a.notFound(w, r)
			return
		case errors.Is(err, errPlaygroundDeploy) || errors.Is(err, errPlaygroundStopped):
			errs = map[string]string{pick.field: err.Error()} // the person's own GPU snapshot: say why it cannot be picked
		case err != nil:
			a.serverError(w, r, err)
			return
		default:
			*pick.dst = ref
		}
	}
	var prompt *store.PlaygroundPrompt
	if id := q.Get("run"); id != "" {
		pid, _ := strconv.ParseInt(id, 10, 64)
		p, err := a.store.PlaygroundPromptByID(r.Context(), u.ID, pid)
		if errors.Is(err, store.ErrNotFound) {
			a.notFound(w, r)
			return
		}
		if err != nil {
			a.serverError(w, r, err)
			return
		}
		prompt, v = &p, promptValues(p)
	}
	a.renderPlayground(w, r, http.StatusOK, v, errs, prompt)
}

// runPlayground checks the form and saves the prompt; the answer streams on the page it
// redirects to. Refused input saves nothing and names what to fix.
func (a *app) runPlayground(w http.ResponseWriter, r *http.Request) {
	u, _ := userFrom(r.Context())
	v := views.PlaygroundValues{
		Mode: r.PostFormValue("mode"), System: r.PostFormValue("system"), Prompt: r.PostFormValue("prompt"),
		ModelA: r.PostFormValue("model_a"), ModelB: r.PostFormValue("model_b"),
		Temperature: strings.TrimSpace(r.PostFormValue("temperature")), TopP: strings.TrimSpace(r.PostFormValue("top_p")),
		MaxTokens: strings.TrimSpace(r.PostFormValue("max_tokens")), Stop: r.PostFormValue("stop"),
		Seed: strings.TrimSpace(r.PostFormValue("seed")),
	}
	p, errs := a.parsePlayground(r, u.ID, v)
	if len(errs) > 0 {
		a.renderPlayground(w, r, http.StatusUnprocessableEntity, v, errs, nil)
		return
	}
	saved, err := a.store.SavePlaygroundPrompt(r.Context(), p)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	redirect(w, r, fmt.Sprintf("/playground?run=%d", saved.ID))
}

// parsePlayground turns the form into a prompt to save, or messages by field name.
func (a *app) parsePlayground(r *http.Request, userID int64, v views.PlaygroundValues) (store.PlaygroundPrompt, map[string]string) {
	errs := map[string]string{}
	p := store.PlaygroundPrompt{UserID: userID, Mode: v.Mode, System: v.System, Prompt: v.Prompt, ModelA: v.ModelA, ModelB: v.ModelB}
	if p.Mode != playgroundModeChat && p.Mode != playgroundModeComplet {
		errs["mode"] = "Pick completion or chat."
	}
	if p.Mode != playgroundModeChat {
		p.System = ""
	}
	switch {
	case strings.TrimSpace(p.Prompt) == "":
		errs["prompt"] = "Write a prompt for the model to continue."
	case len(p.Prompt)+len(p.System) > playgroundMaxPrompt:
		errs["prompt"] = fmt.Sprintf("The prompt is %d bytes; keep it (with the system message) under %d.", len(p.Prompt)+len(p.System), playgroundMaxPrompt)
	}
	for _, m := range []struct{ field, ref string }{{"model_a", p.ModelA}, {"model_b", p.ModelB}} {
		if m.field == "model_b" && m.ref == "" {
			continue
		}
		if err := a.checkPlaygroundRef(r, userID, m.ref); err != nil {
			errs[m.field] = err.Error()
		}
	}
	t, err := strconv.ParseFloat(v.Temperature, 64)
	if err != nil || math.IsNaN(t) || t < 0 || t > playgroundMaxTemp {
		errs["temperature"] = fmt.Sprintf("Temperature is a number from 0 to %g; 0 always picks the likeliest next byte.", playgroundMaxTemp)
	}
	p.Temperature = t
	tp, err := strconv.ParseFloat(v.TopP, 64)
	if err != nil || !(tp > 0 && tp <= 1) {
		errs["top_p"] = "Top-p is a number above 0 and at most 1; 1 samples from every byte."
	}
	p.TopP = tp
	n, err := strconv.Atoi(v.MaxTokens)
	if err != nil || n < 1 || n > playgroundMaxTokens {
		errs["max_tokens"] = fmt.Sprintf("Max tokens is a whole number from 1 to %d (this model's tokens are bytes).", playgroundMaxTokens)
	}
	p.MaxTokens = n
	if v.Seed == "" {
		v.Seed = "0"
	}
	if p.Seed, err = strconv.ParseInt(v.Seed, 10, 64); err != nil {
		errs["seed"] = "The seed is a whole number; the same seed and settings give the same answer."
	}
	if p.Stop, err = parseStops(v.Stop); err != nil {
		errs["stop"] = err.Error()
	}
	return p, errs
}

// parseStops reads one stop sequence per line; \n in a line stands for a line break.
func parseStops(text string) ([]string, error) {
	var out []string
	for line := range strings.Lines(text) {
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			continue
		}
		line = strings.ReplaceAll(line, `\n`, "\n")
		if len(line) > playgroundMaxStopLen {
			return nil, fmt.Errorf("Each stop sequence is at most %d bytes.", playgroundMaxStopLen)
		}
		out = append(out, line)
	}
	if len(out) > playgroundMaxStops {
		return nil, fmt.Errorf("At most %d stop sequences, one per line.", playgroundMaxStops)
	}
	return out, nil
}

func promptValues(p store.PlaygroundPrompt) views.PlaygroundValues {
	stops := make([]string, len(p.Stop))
	for i, s := range p.Stop {
		stops[i] = strings.ReplaceAll(s, "\n", `\n`)
	}
	return views.PlaygroundValues{Mode: p.Mode, System: p.System, Prompt: p.Prompt, ModelA: p.ModelA, ModelB: p.ModelB,
		Temperature: formatFloat(p.Temperature), TopP: formatFloat(p.TopP), MaxTokens: strconv.Itoa(p.MaxTokens),
		Stop: strings.Join(stops, "\n"), Seed: strconv.FormatInt(p.Seed, 10)}
}

// playgroundText is what the model continues: the prompt as typed, or a chat rendered
// with the role markers the trainer formats chat rows with (trainer.ChatPrompt).
func playgroundText(p store.PlaygroundPrompt) string {
	if p.Mode != playgroundModeChat {
		return p.Prompt
	}
	var msgs []trainer.Message
	if p.System != "" {
		msgs = append(msgs, trainer.Message{Role: "system", Content: p.System})
	}
	return trainer.ChatPrompt(append(msgs, trainer.Message{Role: "user", Content: p.Prompt}))
}

func (a *app) renderPlayground(w http.ResponseWriter, r *http.Request, status int, v views.PlaygroundValues, errs map[string]string, run *store.PlaygroundPrompt) {
	u, _ := userFrom(r.Context())
	snaps, err := a.store.PlaygroundSnapshots(r.Context(), u.ID)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	history, err := a.store.PlaygroundPrompts(r.Context(), u.ID)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	d := views.Playground{Action: "/playground", Values: v, Errors: errs, MaxTokensCap: strconv.Itoa(playgroundMaxTokens)}
	if len(errs) > 0 {
		d.FormError = "Some settings need a change; see the messages beside the fields."
	}
	d.Modes = []views.PlaygroundMode{
		{Value: playgroundModeComplet, Label: "Completion", Help: "the model continues your text", Checked: v.Mode != playgroundModeChat},
		{Value: playgroundModeChat, Label: "Chat", Help: "your message is sent as a user turn, as chat datasets are trained", Checked: v.Mode == playgroundModeChat},
	}
	labels := map[string]string{}
	for _, m := range trainer.BaseModels {
		o := views.PlaygroundModel{Value: playgroundBasePrefix + m.ID, Label: m.Name + ", untrained (random weights)", Group: "Base models"}
		d.Models = append(d.Models, o)
		labels[o.Value] = o.Label
	}
	deps, served, err := a.playgroundDeploymentOptions(r.Context(), u.ID)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	for _, dep := range deps {
		o := views.PlaygroundModel{Value: dep[0], Label: dep[1], Group: "Your GPU deployments"}
		d.Models = append(d.Models, o)
		labels[o.Value] = o.Label
	}
	for _, s := range snaps {
		label := snapshotLabel(s)
		if _, ok := trainer.BaseModelByID(s.BaseModel); !ok {
			if !served[s.ID] {
				d.NeedsDeployment = append(d.NeedsDeployment, label)
			}
			continue
		}
		o := views.PlaygroundModel{Value: playgroundSnapPrefix + strconv.FormatInt(s.ID, 10), Label: label, Group: "Your snapshots"}
		d.Models = append(d.Models, o)
		labels[o.Value] = o.Label
	}
	modelName := func(ref string) string {
		if l, ok := labels[ref]; ok {
			return l
		}
		if strings.HasPrefix(ref, playgroundDeployPrefix) {
			return "A deployment that has stopped"
		}
		return "A snapshot that is no longer available"
	}
	if run != nil {
		for _, slot := range []struct{ id, ref string }{{"a", run.ModelA}, {"b", run.ModelB}} {
			if slot.ref == "" {
				continue
			}
			o := views.PlaygroundOutput{Slot: slot.id, Title: modelName(slot.ref),
				StreamURL: fmt.Sprintf("/playground/%d/stream/%s", run.ID, slot.id),
				TargetID:  "playground-out-" + slot.id, StatusID: "playground-status-" + slot.id, Prompt: playgroundText(*run)}
			if strings.HasPrefix(slot.ref, playgroundDeployPrefix) {
				o.Prompt = deploymentPromptText(*run)
			}
			if _, ok := labels[slot.ref]; !ok {
				o.Unavailable = "This snapshot was deleted, so it cannot answer; pick another model and generate again."
				if strings.HasPrefix(slot.ref, playgroundDeployPrefix) {
					o.Unavailable = errPlaygroundStopped.Error()
				}
			}
			d.Outputs = append(d.Outputs, o)
		}
	}
	for _, h := range history {
		models := modelName(h.ModelA)
		if h.ModelB != "" {
			models += " vs " + modelName(h.ModelB)
		}
		excerpt := h.Prompt
		if len(excerpt) > 120 {
			excerpt = strings.ToValidUTF8(excerpt[:120], "") + "…"
		}
		d.History = append(d.History, views.PlaygroundHistoryRow{When: h.CreatedAt.Format("2 Jan 15:04"), Mode: h.Mode,
			Models: models, Excerpt: excerpt, RunURL: fmt.Sprintf("/playground?run=%d", h.ID),
			Settings: fmt.Sprintf("temperature %s · top-p %s · %d max tokens · seed %d",
				formatFloat(h.Temperature), formatFloat(h.TopP), h.MaxTokens, h.Seed)})
	}
	a.render(w, r, status, a.page(r, "Playground", "playground"), views.PlaygroundPage(d))
}

func snapshotLabel(s store.PlaygroundSnapshot) string {
	label := fmt.Sprintf("%s · step %s", s.RunName, formatCount(int64(s.Step)))
	if s.Final {
		label += " (final)"
	}
	return label
}

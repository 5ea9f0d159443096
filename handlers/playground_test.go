package handlers

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"tunelab/gpu"
	"tunelab/store"
	"tunelab/trainer"
)

// greeting is what the test snapshot was trained to answer.
const greetPrompt, greetAnswer = "Greet:", " hello there"

// trainedGreeter trains a tiny built-in model on one row until it answers it.
func trainedGreeter(t *testing.T) []byte {
	t.Helper()
	cfg := trainer.DefaultConfig()
	cfg.Method, cfg.Epochs, cfg.LearningRate, cfg.BatchSize = trainer.MethodFull, 30, 1e-2, 8
	cfg.MaxSeqLen, cfg.ContextChars, cfg.EmbedDim, cfg.HiddenDim, cfg.Seed, cfg.LogEvery = 64, 6, 8, 32, 7, 50
	rows := make([]trainer.Example, 16)
	for i := range rows {
		rows[i] = trainer.Example{Prompt: greetPrompt, Completion: greetAnswer}
	}
	var snap []byte
	_, err := trainer.Train(context.Background(), cfg, trainer.TrainingData{Examples: rows, EvalExamples: rows[:2]}, trainer.Hooks{
		Snapshot: func(_ int, final bool, write func(io.Writer) error) error {
			if final {
				var b bytes.Buffer
				if err := write(&b); err != nil {
					return err
				}
				snap = b.Bytes()
			}
			return nil
		}})
	if err != nil || snap == nil {
		t.Fatalf("train: %v", err)
	}
	return snap
}

// storedSnapshot runs a finished run of base with body as its snapshot at step 40.
func (ts *testServer) storedSnapshot(t *testing.T, c *http.Client, base string, body []byte, contentType string) int64 {
	t.Helper()
	v := runValues(ts.datasetFor(c, completionLines(20)))
	v.Set("base_model", base)
	run := ts.startRun(c, v)
	claimed, tok := ts.claim(t)
	if claimed != run {
		t.Fatalf("claimed %d, want %d", claimed, run)
	}
	ts.post(run, "heartbeat", tok, `{"step":40,"total_steps":40}`)
	sum := sha256.Sum256(body)
	r := ts.workerCall("PUT", fmt.Sprintf("/api/v1/worker/runs/%d/snapshots/40", run), tok, bytes.NewReader(body),
		map[string]string{"X-Snapshot-SHA256": hex.EncodeToString(sum[:]), "X-Snapshot-Final": "true", "Content-Type": contentType})
	if r.status != http.StatusCreated {
		t.Fatalf("snapshot: %d %s", r.status, r.body)
	}
	ts.post(run, "finish", tok, `{"status":"succeeded"}`)
	snaps, err := ts.store.Snapshots(context.Background(), mustUserID(t, ts, c), run)
	if err != nil || len(snaps) != 1 {
		t.Fatalf("snapshots: %v %v", snaps, err)
	}
	return snaps[0].ID
}

func mustUserID(t *testing.T, ts *testServer, c *http.Client) int64 {
	t.Helper()
	page := ts.do(c, "GET", "/settings", nil, nil)
	m := regexp.MustCompile(`data-testid="user-email"[^>]*title="([^"]+)"`).FindStringSubmatch(page.body)
	if m == nil {
		t.Fatalf("no email on the settings page")
	}
	u, err := ts.store.UserByEmail(context.Background(), html.UnescapeString(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	return u.ID
}

func playgroundValues(modelA string) url.Values {
	return url.Values{"mode": {"completion"}, "prompt": {greetPrompt}, "model_a": {modelA}, "model_b": {""},
		"temperature": {"0"}, "top_p": {"1"}, "max_tokens": {"40"}, "stop": {""}, "seed": {"0"}}
}

var runLocation = regexp.MustCompile(`^/playground\?run=(\d+)$`)

// generate posts the form and returns the saved prompt's id.
func (ts *testServer) generate(t *testing.T, c *http.Client, v url.Values) string {
	t.Helper()
	r := ts.do(c, "POST", "/playground", v, nil)
	m := runLocation.FindStringSubmatch(r.header.Get("Location"))
	if r.status != http.StatusSeeOther || m == nil {
		t.Fatalf("generate: %d %q\n%s", r.status, r.header.Get("Location"), r.body)
	}
	return m[1]
}

type sseAnswer struct {
	chunks []string
	status string
	done   bool
}

func (a sseAnswer) text() string { return strings.Join(a.chunks, "") }

var (
	chunkSpan  = regexp.MustCompile(`(?s)^<span>(.*)</span>$`)
	statusSpan = regexp.MustCompile(`data-testid="playground-end">([^<]*)<`)
)

// readAnswer fetches one stream and parses its events: text chunks, the status, done.
func (ts *testServer) readAnswer(t *testing.T, c *http.Client, path string) sseAnswer {
	t.Helper()
	r := ts.do(c, "GET", path, nil, nil)
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("stream %s: %d %s", path, r.status, r.body)
	}
	var a sseAnswer
	for _, ev := range strings.Split(strings.TrimSpace(r.body), "\n\n") {
		name, data := "", []string{}
		for _, line := range strings.Split(ev, "\n") {
			if v, ok := strings.CutPrefix(line, "event: "); ok {
				name = v
			} else if v, ok := strings.CutPrefix(line, "data: "); ok {
				data = append(data, v)
			}
		}
		d := strings.Join(data, "\n")
		switch {
		case name == "done":
			a.done = true
		case a.done:
			t.Fatalf("an event after done: %q", ev)
		case statusSpan.MatchString(d):
			a.status = html.UnescapeString(statusSpan.FindStringSubmatch(d)[1])
		case chunkSpan.MatchString(d):
			a.chunks = append(a.chunks, html.UnescapeString(chunkSpan.FindStringSubmatch(d)[1]))
		default:
			t.Fatalf("unexpected event %q", ev)
		}
	}
	if !a.done {
		t.Fatalf("stream %s ended without done:\n%s", path, r.body)
	}
	return a
}

func TestPlaygroundTrainedSnapshotAnswersLikeItsDataAndBaseDoesNot(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.signUp("play@example.com")
	sid := ts.storedSnapshot(t, c, "tunelab/byte-mlp-small", trainedGreeter(t), "application/octet-stream")

	page := ts.do(c, "GET", "/playground", nil, nil)
	if page.status != 200 || !strings.Contains(page.body, fmt.Sprintf(`value="snapshot:%d"`, sid)) || !strings.Contains(page.body, `data-testid="nav-playground"`) {
		t.Fatalf("playground page: %d\n%s", page.status, page.body)
	}
	v := playgroundValues(fmt.Sprintf("snapshot:%d", sid))
	v.Set("model_b", "base:tunelab/byte-mlp-small")
	id := ts.generate(t, c, v)
	run := ts.do(c, "GET", "/playground?run="+id, nil, nil)
	for _, slot := range []string{"a", "b"} {
		if want := fmt.Sprintf(`hx-get="/playground/%s/stream/%s"`, id, slot); !strings.Contains(run.body, want) {
			t.Fatalf("the page does not fetch %s:\n%s", want, run.body)
		}
	}
	trained := ts.readAnswer(t, c, "/playground/"+id+"/stream/a")
	if trained.text() != greetAnswer || trained.status == "" || !strings.HasPrefix(trained.status, "The model ended its answer") {
		t.Fatalf("trained snapshot answered %q (%q); it was trained to answer %q", trained.text(), trained.status, greetAnswer)
	}
	base := ts.readAnswer(t, c, "/playground/"+id+"/stream/b")
	if base.text() == greetAnswer || strings.Contains(base.text(), "hello") {
		t.Fatalf("the untrained base answered the training row: %q", base.text())
	}
	// Greedy is repeatable: the same prompt streams the same text again.
	if again := ts.readAnswer(t, c, "/playground/"+id+"/stream/b"); again.text() != base.text() {
		t.Fatalf("greedy base: %q then %q", base.text(), again.text())
	}
	// A seeded sample is repeatable too.
	v.Set("temperature", "1.2")
	v.Set("seed", "11")
	id2 := ts.generate(t, c, v)
	s1, s2 := ts.readAnswer(t, c, "/playground/"+id2+"/stream/b"), ts.readAnswer(t, c, "/playground/"+id2+"/stream/b")
	if s1.text() != s2.text() {
		t.Fatalf("seeded sample: %q then %q", s1.text(), s2.text())
	}
	hist := ts.do(c, "GET", "/playground", nil, nil)
	if n := strings.Count(hist.body, `data-testid="playground-history-row"`); n != 2 || !strings.Contains(hist.body, "/playground?run="+id) {
		t.Fatalf("history shows %d rows:\n%s", n, hist.body)
	}
}

func TestPlaygroundHonoursMaxTokensAndStop(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.signUp("play-stop@example.com")
	sid := ts.storedSnapshot(t, c, "tunelab/byte-mlp-small", trainedGreeter(t), "application/octet-stream")
	v := playgroundValues(fmt.Sprintf("snapshot:%d", sid))
	v.Set("max_tokens", "4")
	capped := ts.readAnswer(t, c, "/playground/"+ts.generate(t, c, v)+"/stream/a")
	if capped.text() != greetAnswer[:4] || !strings.HasPrefix(capped.status, "Reached max tokens") {
		t.Fatalf("max tokens 4: %q (%q)", capped.text(), capped.status)
	}
	v.Set("max_tokens", "40")
	v.Set("stop", "x\nll")
	stopped := ts.readAnswer(t, c, "/playground/"+ts.generate(t, c, v)+"/stream/a")
	if stopped.text() != " he" || !strings.HasPrefix(stopped.status, "Met a stop sequence") {
		t.Fatalf("stop ll: %q (%q)", stopped.text(), stopped.status)
	}
	// A stop sequence written with \n stands for a line break.
	v.Set("stop", `\nUser:`)
	id := ts.generate(t, c, v)
	if p := ts.do(c, "GET", "/playground?run="+id, nil, nil); !strings.Contains(p.body, `\nUser:</textarea>`) {
		t.Fatalf("the stop sequence does not round-trip:\n%s", p.body)
	}
}

func TestPlaygroundChatModeUsesTheTrainersChatFormat(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.signUp("play-chat@example.com")
	v := playgroundValues("base:tunelab/byte-mlp-small")
	v.Set("mode", "chat")
	v.Set("system", "Be brief.")
	v.Set("prompt", "Hi there")
	id := ts.generate(t, c, v)
	page := ts.do(c, "GET", "/playground?run="+id, nil, nil)
	want := html.EscapeString(trainer.ChatPrompt([]trainer.Message{{Role: "system", Content: "Be brief."}, {Role: "user", Content: "Hi there"}}))
	if !strings.Contains(page.body, want) || !strings.Contains(page.body, "System: Be brief.\nUser: Hi there\nAssistant: ") {
		t.Fatalf("the chat prompt is not shown as the model reads it:\n%s", page.body)
	}
	if a := ts.readAnswer(t, c, "/playground/"+id+"/stream/a"); !a.done || a.status == "" {
		t.Fatalf("chat answer: %+v", a)
	}
}

func TestPlaygroundRefusesBadInputAndSavesNothing(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.signUp("play-bad@example.com")
	uid := mustUserID(t, ts, c)
	for _, tc := range []struct{ field, value, want string }{
		{"temperature", "-0.5", "Temperature is a number from 0 to 2"},
		{"temperature", "abc", "Temperature is a number from 0 to 2"},
		{"max_tokens", "5000", "Max tokens is a whole number from 1 to 512"},
		{"max_tokens", "0", "Max tokens is a whole number from 1 to 512"},
		{"top_p", "0", "Top-p is a number above 0 and at most 1"},
		{"model_a", "snapshot:999", "that snapshot is not one of yours, or it was deleted"},
		{"model_b", "base:nope", "Pick a model from the list"},
		{"prompt", "  ", "Write a prompt"},
		{"stop", "a\nb\nc\nd\ne", "At most 4 stop sequences"},
		{"mode", "poem", "Pick completion or chat"},
	} {
		v := playgroundValues("base:tunelab/byte-mlp-small")
		v.Set(tc.field, tc.value)
		r := ts.do(c, "POST", "/playground", v, nil)
		if r.status != http.StatusUnprocessableEntity || !strings.Contains(html.UnescapeString(r.body), tc.want) ||
			!strings.Contains(r.body, `data-testid="error-`+tc.field+`"`) {
			t.Errorf("%s=%q: %d, want 422 with %q", tc.field, tc.value, r.status, tc.want)
		}
	}
	if list, _ := ts.store.PlaygroundPrompts(context.Background(), uid); len(list) != 0 {
		t.Fatalf("refused prompts were saved: %+v", list)
	}
}

func TestPlaygroundOtherPeoplesSnapshotsAndPromptsAre404(t *testing.T) {
	ts := newTestServer(t, Config{})
	owner := ts.signUp("play-owner@example.com")
	other := ts.signUp("play-other@example.com")
	sid := ts.storedSnapshot(t, owner, "tunelab/byte-mlp-small", trainedGreeter(t), "application/octet-stream")
	ref := fmt.Sprintf("snapshot:%d", sid)
	id := ts.generate(t, owner, playgroundValues(ref))

	if r := ts.do(owner, "GET", "/playground?a="+url.QueryEscape(ref), nil, nil); r.status != 200 {
		t.Fatalf("owner's preselected snapshot: %d", r.status)
	}
	for _, path := range []string{"/playground?a=" + url.QueryEscape(ref), "/playground?b=" + url.QueryEscape(ref),
		"/playground?run=" + id, "/playground/" + id + "/stream/a"} {
		if r := ts.do(other, "GET", path, nil, nil); r.status != http.StatusNotFound {
			t.Errorf("%s as another person: %d, want 404", path, r.status)
		}
	}
	if page := ts.do(other, "GET", "/playground", nil, nil); strings.Contains(page.body, ref) {
		t.Fatalf("another person's playground lists the snapshot")
	}
	r := ts.do(other, "POST", "/playground", playgroundValues(ref), nil)
	if r.status != http.StatusUnprocessableEntity || !strings.Contains(html.UnescapeString(r.body), "not one of yours") {
		t.Fatalf("another person's snapshot in the form: %d", r.status)
	}
	if list, _ := ts.store.PlaygroundPrompts(context.Background(), mustUserID(t, ts, other)); len(list) != 0 {
		t.Fatalf("saved: %+v", list)
	}
	// A deleted snapshot stops answering too.
	u := mustUserID(t, ts, owner)
	snaps, _ := ts.store.PlaygroundSnapshots(context.Background(), u)
	if err := ts.store.DeleteSnapshot(context.Background(), u, snaps[0].RunID, sid); err != nil {
		t.Fatal(err)
	}
	if r := ts.do(owner, "GET", "/playground/"+id+"/stream/a", nil, nil); r.status != http.StatusNotFound {
		t.Fatalf("deleted snapshot's stream: %d", r.status)
	}
	if p := ts.do(owner, "GET", "/playground?run="+id, nil, nil); p.status != 200 || !strings.Contains(p.body, "This snapshot was deleted") ||
		strings.Contains(p.body, "/stream/a") {
		t.Fatalf("the page of a prompt whose snapshot was deleted: %d\n%s", p.status, p.body)
	}
}

// gpuOfferBackend offers a Hugging Face model besides the built-in ones, as a GPU
// backend does.
type gpuOfferBackend struct{ fakeBackend }

func (gpuOfferBackend) Offer() gpu.Offer {
	o := fakeBackend{}.Offer()
	o.Models = append(o.Models, gpu.Model{ID: "Qwen/Qwen2.5-0.5B", Name: "Qwen2.5 0.5B"})
	return o
}

func TestPlaygroundListsGPUSnapshotsAsNeedingADeployment(t *testing.T) {
	ts := newTestServerRuns(t, Config{}, nil, func(r *Runs, _ *store.Store, _ func() time.Time) { r.Backend = gpuOfferBackend{} })
	c := ts.signUp("play-gpu@example.com")
	zipBody := append([]byte("PK\x03\x04"), bytes.Repeat([]byte("adapter"), 50)...)
	sid := ts.storedSnapshot(t, c, "Qwen/Qwen2.5-0.5B", zipBody, "application/zip")
	page := ts.do(c, "GET", "/playground", nil, nil)
	if !strings.Contains(page.body, `data-testid="playground-needs-deployment"`) || !strings.Contains(page.body, "Snapshots of GPU runs generate on a deployment") ||
		strings.Contains(page.body, fmt.Sprintf(`value="snapshot:%d"`, sid)) {
		t.Fatalf("the GPU snapshot is not listed as needing a deployment:\n%s", page.body)
	}
	r := ts.do(c, "POST", "/playground", playgroundValues(fmt.Sprintf("snapshot:%d", sid)), nil)
	if r.status != http.StatusUnprocessableEntity || !strings.Contains(r.body, "it generates on a deployment: deploy it on its run page") {
		t.Fatalf("a GPU snapshot in the form: %d", r.status)
	}
	if p := ts.do(c, "GET", fmt.Sprintf("/playground?a=snapshot:%d", sid), nil, nil); p.status != 200 || !strings.Contains(p.body, `data-testid="error-model_a"`) {
		t.Fatalf("a GPU snapshot in ?a=: %d", p.status)
	}
}

func TestPlaygroundSlotsLimitAnswersPerPerson(t *testing.T) {
	var s playgroundSlots
	var releases []func()
	for range playgroundStreamsPerPerson {
		rel, ok := s.acquire(1)
		if !ok {
			t.Fatal("refused below the limit")
		}
		releases = append(releases, rel)
	}
	if _, ok := s.acquire(1); ok {
		t.Fatal("a third answer at once was allowed")
	}
	if rel, ok := s.acquire(2); !ok {
		t.Fatal("another person was refused")
	} else {
		rel()
	}
	releases[0]()
	if _, ok := s.acquire(1); !ok {
		t.Fatal("refused after a release")
	}
}

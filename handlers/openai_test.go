package handlers

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// Request bodies below are shaped as the official SDKs send them: openai-python and
// openai-node serialise only the parameters given, as a JSON object, with
// "Authorization: Bearer <key>" and "Content-Type: application/json"; stream: true asks
// for server-sent events ending in "data: [DONE]".

var deployForm = regexp.MustCompile(`action="(/runs/\d+/snapshots/\d+/deploy)"`)

// deployGreeter trains the greeter snapshot, deploys it from the run page and returns
// the model id the deployments page shows.
func (ts *testServer) deployGreeter(t *testing.T, c *http.Client) string {
	t.Helper()
	ts.storedSnapshot(t, c, "tunelab/byte-mlp-small", trainedGreeter(t), "application/octet-stream")
	runs := ts.do(c, "GET", "/runs", nil, nil)
	id := regexp.MustCompile(`href="/runs/(\d+)"`).FindStringSubmatch(runs.body)
	if id == nil {
		t.Fatalf("no run listed:\n%s", runs.body)
	}
	page := ts.do(c, "GET", "/runs/"+id[1], nil, nil)
	m := deployForm.FindStringSubmatch(page.body)
	if m == nil {
		t.Fatalf("no Deploy button on the run page")
	}
	r := ts.do(c, "POST", m[1], nil, nil)
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/deployments" {
		t.Fatalf("deploy: %d %q", r.status, r.header.Get("Location"))
	}
	list := ts.do(c, "GET", "/deployments", nil, nil)
	model := regexp.MustCompile(`data-testid="deployment-model">(tl-\d+-\d+)<`).FindStringSubmatch(list.body)
	if list.status != 200 || model == nil || !strings.Contains(list.body, "Live") || !strings.Contains(list.body, model[1]+`&#34;, &#34;messages`) {
		t.Fatalf("deployments page: %d\n%s", list.status, list.body)
	}
	return model[1]
}

func (ts *testServer) openaiPost(key, path, body string) response {
	ts.t.Helper()
	return ts.workerCall("POST", path, key, strings.NewReader(body), map[string]string{"Content-Type": "application/json"})
}

type openaiChoice struct {
	Index        int     `json:"index"`
	Text         *string `json:"text"`
	FinishReason *string `json:"finish_reason"`
	Message      *struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	} `json:"message"`
	Delta *struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	} `json:"delta"`
}

type openaiAnswer struct {
	ID      string         `json:"id"`
	Object  string         `json:"object"`
	Created int64          `json:"created"`
	Model   string         `json:"model"`
	Choices []openaiChoice `json:"choices"`
	Usage   *openaiUsage   `json:"usage"`
}

func decodeAnswer(t *testing.T, r response) openaiAnswer {
	t.Helper()
	var a openaiAnswer
	if r.status != 200 || json.Unmarshal([]byte(r.body), &a) != nil {
		t.Fatalf("answer: %d %s", r.status, r.body)
	}
	return a
}

// readChunks parses an SSE answer: the chunks, and whether it ended with [DONE].
func readChunks(t *testing.T, r response) ([]openaiAnswer, bool) {
	t.Helper()
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("stream: %d %q %s", r.status, r.header.Get("Content-Type"), r.body)
	}
	var out []openaiAnswer
	done := false
	sc := bufio.NewScanner(strings.NewReader(r.body))
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if done {
			t.Fatalf("data after [DONE]: %s", line)
		}
		if line == "[DONE]" {
			done = true
			continue
		}
		var a openaiAnswer
		if err := json.Unmarshal([]byte(line), &a); err != nil {
			t.Fatalf("chunk %q: %v", line, err)
		}
		out = append(out, a)
	}
	return out, done
}

func TestOpenAIChatAndCompletionsOnADeployment(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.signUp("openai@example.com")
	model := ts.deployGreeter(t, c)
	key := ts.makeAPIKey(c, "sdk", "")

	var models struct {
		Object string        `json:"object"`
		Data   []openaiModel `json:"data"`
	}
	if r := ts.apiGet(key, "/v1/models", &models); r.status != 200 || models.Object != "list" || !strings.Contains(r.body, `"id":"`+model+`"`) ||
		!strings.Contains(r.body, `"id":"tunelab/byte-mlp-small"`) {
		t.Fatalf("models: %d %s", r.status, r.body)
	}
	var one openaiModel
	if r := ts.apiGet(key, "/v1/models/"+model, &one); r.status != 200 || one.ID != model || one.Object != "model" {
		t.Fatalf("model: %d %s", r.status, r.body)
	}

	// Completions: the trained answer, whole and streamed.
	body := fmt.Sprintf(`{"model":%q,"prompt":%q,"max_tokens":40,"temperature":0}`, model, greetPrompt)
	whole := decodeAnswer(t, ts.openaiPost(key, "/v1/completions", body))
	if whole.Object != "text_completion" || !strings.HasPrefix(whole.ID, "cmpl-") || whole.Model != model || len(whole.Choices) != 1 ||
		*whole.Choices[0].Text != greetAnswer || *whole.Choices[0].FinishReason != "stop" || whole.Created == 0 ||
		*whole.Usage != (openaiUsage{len(greetPrompt), len(greetAnswer), len(greetPrompt) + len(greetAnswer)}) {
		t.Fatalf("completion: %+v", whole)
	}
	chunks, done := readChunks(t, ts.openaiPost(key, "/v1/completions", strings.Replace(body, "}", `,"stream":true}`, 1)))
	var text strings.Builder
	for _, ch := range chunks {
		if ch.Object != "text_completion" || ch.ID != chunks[0].ID {
			t.Fatalf("chunk: %+v", ch)
		}
		text.WriteString(*ch.Choices[0].Text)
	}
	if !done || text.String() != greetAnswer || *chunks[len(chunks)-1].Choices[0].FinishReason != "stop" {
		t.Fatalf("streamed completion %q, done %v", text.String(), done)
	}
	// max_tokens cuts with finish_reason "length"; stop as an array ends before it.
	capped := decodeAnswer(t, ts.openaiPost(key, "/v1/completions", fmt.Sprintf(`{"model":%q,"prompt":%q,"max_tokens":4,"temperature":0}`, model, greetPrompt)))
	if *capped.Choices[0].Text != greetAnswer[:4] || *capped.Choices[0].FinishReason != "length" {
		t.Fatalf("max_tokens 4: %+v", capped.Choices[0])
	}
	stopped := decodeAnswer(t, ts.openaiPost(key, "/v1/completions", fmt.Sprintf(`{"model":%q,"prompt":%q,"stop":["there"],"temperature":0}`, model, greetPrompt)))
	if *stopped.Choices[0].Text != " hello " || *stopped.Choices[0].FinishReason != "stop" {
		t.Fatalf("stop: %q", *stopped.Choices[0].Text)
	}

	// Chat: as openai-python sends client.chat.completions.create(model=..., messages=[...], temperature=0).
	chat := fmt.Sprintf(`{"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}],"model":%q,"temperature":0,"max_completion_tokens":30,"seed":3}`, model)
	cw := decodeAnswer(t, ts.openaiPost(key, "/v1/chat/completions", chat))
	if cw.Object != "chat.completion" || !strings.HasPrefix(cw.ID, "chatcmpl-") || cw.Choices[0].Message == nil || cw.Choices[0].Message.Role != "assistant" ||
		cw.Usage.CompletionTokens != len(cw.Choices[0].Message.Content) {
		t.Fatalf("chat: %+v", cw)
	}
	cchunks, done := readChunks(t, ts.openaiPost(key, "/v1/chat/completions", strings.Replace(chat, `"seed":3}`, `"seed":3,"stream":true,"stream_options":{"include_usage":true}}`, 1)))
	var ctext strings.Builder
	for i, ch := range cchunks {
		if ch.Object != "chat.completion.chunk" {
			t.Fatalf("chunk object %q", ch.Object)
		}
		if len(ch.Choices) == 1 {
			ctext.WriteString(ch.Choices[0].Delta.Content)
			if i == 0 && ch.Choices[0].Delta.Role != "assistant" {
				t.Fatalf("first delta has no role: %+v", ch.Choices[0].Delta)
			}
		}
	}
	last := cchunks[len(cchunks)-1]
	if !done || ctext.String() != cw.Choices[0].Message.Content || len(last.Choices) != 0 || last.Usage == nil || *last.Usage != *cw.Usage {
		t.Fatalf("streamed chat %q vs %q, done %v, last %+v", ctext.String(), cw.Choices[0].Message.Content, done, last)
	}
	if fin := cchunks[len(cchunks)-2].Choices[0].FinishReason; fin == nil || *fin != *cw.Choices[0].FinishReason {
		t.Fatalf("finish reason of the stream: %v", fin)
	}
	// A base model answers too.
	if r := ts.openaiPost(key, "/v1/chat/completions", `{"model":"tunelab/byte-mlp-small","messages":[{"role":"user","content":[{"type":"text","text":"Hi"}]}],"max_tokens":5}`); r.status != 200 {
		t.Fatalf("base model: %d %s", r.status, r.body)
	}
}

func openaiErrorOf(t *testing.T, r response) openaiErr {
	t.Helper()
	var e struct {
		Error openaiErr `json:"error"`
	}
	if err := json.Unmarshal([]byte(r.body), &e); err != nil || e.Error.Message == "" || e.Error.Type == "" {
		t.Fatalf("not an OpenAI error: %d %s", r.status, r.body)
	}
	return e.Error
}

func TestOpenAIRefusesOthersStoppedBadKeysAndBadValues(t *testing.T) {
	ts := newTestServer(t, Config{})
	owner := ts.signUp("owner@example.com")
	model := ts.deployGreeter(t, owner)
	ownerKey := ts.makeAPIKey(owner, "k", "")
	other := ts.signUp("other@example.com")
	otherKey := ts.makeAPIKey(other, "k", "")

	chat := func(m string) string {
		return fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"Hi"}]}`, m)
	}
	for _, r := range []response{ts.openaiPost(otherKey, "/v1/chat/completions", chat(model)), ts.apiGet(otherKey, "/v1/models/"+model, nil),
		ts.openaiPost(ownerKey, "/v1/completions", `{"model":"tl-999-1","prompt":"x"}`)} {
		if e := openaiErrorOf(t, r); r.status != 404 || *e.Code != "model_not_found" || *e.Param != "model" {
			t.Fatalf("another person's or unknown model: %d %s", r.status, r.body)
		}
	}
	if r := ts.apiGet(otherKey, "/v1/models", nil); strings.Contains(r.body, model) {
		t.Fatalf("another person's deployment listed: %s", r.body)
	}
	// Pages: another person cannot see or stop it.
	if r := ts.do(other, "POST", "/deployments/1/stop", nil, nil); r.status != 404 {
		t.Fatalf("stopping another person's deployment: %d", r.status)
	}
	if r := ts.do(other, "GET", "/deployments", nil, nil); strings.Contains(r.body, model) {
		t.Fatal("another person's deployment on the page")
	}
	if r := ts.do(other, "POST", "/runs/1/snapshots/1/deploy", nil, nil); r.status != 404 {
		t.Fatalf("deploying another person's snapshot: %d", r.status)
	}

	// Bad values: 400 naming the parameter.
	for param, body := range map[string]string{
		"n":           fmt.Sprintf(`{"model":%q,"prompt":"x","n":2}`, model),
		"temperature": fmt.Sprintf(`{"model":%q,"prompt":"x","temperature":3}`, model),
		"top_p":       fmt.Sprintf(`{"model":%q,"prompt":"x","top_p":0}`, model),
		"max_tokens":  fmt.Sprintf(`{"model":%q,"prompt":"x","max_tokens":0}`, model),
		"stop":        fmt.Sprintf(`{"model":%q,"prompt":"x","stop":["a","b","c","d","e"]}`, model),
		"prompt":      fmt.Sprintf(`{"model":%q,"prompt":["a","b"]}`, model),
		"model":       `{"prompt":"x"}`,
	} {
		r := ts.openaiPost(ownerKey, "/v1/completions", body)
		if e := openaiErrorOf(t, r); r.status != 400 || e.Param == nil || *e.Param != param || e.Type != "invalid_request_error" {
			t.Fatalf("%s: %d %s", param, r.status, r.body)
		}
	}
	if r := ts.openaiPost(ownerKey, "/v1/chat/completions", fmt.Sprintf(`{"model":%q,"messages":[{"role":"tool","content":"x"}]}`, model)); r.status != 400 ||
		*openaiErrorOf(t, r).Param != "messages[0]" {
		t.Fatalf("bad role: %d %s", r.status, r.body)
	}

	// Bad and revoked keys: 401 invalid_api_key.
	for _, key := range []string{"", "tl_" + strings.Repeat("x", 32), "sk-nonsense"} {
		r := ts.openaiPost(key, "/v1/chat/completions", chat(model))
		if e := openaiErrorOf(t, r); r.status != 401 || *e.Code != "invalid_api_key" || e.Type != "invalid_request_error" {
			t.Fatalf("key %q: %d %s", key, r.status, r.body)
		}
	}
	keys := ts.do(owner, "GET", "/settings/api-keys", nil, nil)
	revoke := regexp.MustCompile(`action="(/settings/api-keys/\d+/revoke)"`).FindStringSubmatch(keys.body)
	if revoke == nil || ts.do(owner, "POST", revoke[1], nil, nil).status != http.StatusSeeOther {
		t.Fatal("could not revoke the key")
	}
	if r := ts.openaiPost(ownerKey, "/v1/chat/completions", chat(model)); r.status != 401 || *openaiErrorOf(t, r).Code != "invalid_api_key" {
		t.Fatalf("revoked key: %d %s", r.status, r.body)
	}

	// A stopped deployment answers model_not_found and is listed as stopped.
	key2 := ts.makeAPIKey(owner, "k2", "")
	page := ts.do(owner, "GET", "/deployments", nil, nil)
	stop := regexp.MustCompile(`action="(/deployments/\d+/stop)"`).FindStringSubmatch(page.body)
	if stop == nil || ts.do(owner, "POST", stop[1], nil, nil).status != http.StatusSeeOther {
		t.Fatal("could not stop the deployment")
	}
	if r := ts.openaiPost(key2, "/v1/chat/completions", chat(model)); r.status != 404 || *openaiErrorOf(t, r).Code != "model_not_found" {
		t.Fatalf("stopped deployment: %d %s", r.status, r.body)
	}
	if after := ts.do(owner, "GET", "/deployments", nil, nil); !strings.Contains(after.body, "Stopped") || strings.Contains(after.body, `data-testid="deployment-stop"`) {
		t.Fatalf("stopped deployment on the page:\n%s", after.body)
	}
}

// With the person's generation slots (shared with the playground) all taken, a request
// answers 429 rate_limit_exceeded without generating.
func TestOpenAIBusySlotsAnswer429(t *testing.T) {
	a := &app{}
	const uid = int64(5)
	for range playgroundStreamsPerPerson {
		release, ok := a.playground.acquire(uid)
		if !ok {
			t.Fatal("could not take a slot")
		}
		defer release()
	}
	req := httptest.NewRequest("POST", "/v1/completions", strings.NewReader(`{"model":"tunelab/byte-mlp-small","prompt":"x"}`))
	req = req.WithContext(context.WithValue(req.Context(), apiUserKey{}, uid))
	w := httptest.NewRecorder()
	a.openaiCompletion(w, req)
	r := response{status: w.Code, body: w.Body.String(), header: w.Header()}
	if e := openaiErrorOf(t, r); r.status != http.StatusTooManyRequests || *e.Code != "rate_limit_exceeded" {
		t.Fatalf("busy: %d %s", r.status, r.body)
	}
}

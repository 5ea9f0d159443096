package handlers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"tunelab/store"
)

// datasetFor uploads a dataset through the page and returns its id.
func (ts *testServer) datasetFor(c *http.Client, content string) string {
	ts.t.Helper()
	r := ts.upload(c, "", "rows.jsonl", content)
	if r.status != http.StatusSeeOther {
		ts.t.Fatalf("upload: %d %s", r.status, r.body)
	}
	return strings.TrimPrefix(r.header.Get("Location"), "/datasets/")
}

func preferenceLines(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `{"prompt":"Q%d","chosen":"good %d","rejected":"bad %d"}`+"\n", i, i, i)
	}
	return b.String()
}

func runValues(datasetID string) url.Values {
	return url.Values{
		"dataset_id": {datasetID}, "eval_dataset_id": {""}, "base_model": {"tunelab/byte-mlp-small"}, "method": {"lora"},
		"epochs": {"2"}, "learning_rate": {"3e-3"}, "batch_size": {"8"}, "lora_rank": {"8"}, "lora_alpha": {"16"},
		"max_seq_len": {"256"}, "seed": {"7"}, "gpu_type": {"cpu"}, "validation_split": {"10"}, "snapshot_every": {"0"},
	}
}

var runURL = regexp.MustCompile(`^/runs/(\d+)$`)

// startRun posts the form and returns the new run's id.
func (ts *testServer) startRun(c *http.Client, v url.Values) int64 {
	ts.t.Helper()
	r := ts.do(c, "POST", "/runs", v, nil)
	m := runURL.FindStringSubmatch(r.header.Get("Location"))
	if r.status != http.StatusSeeOther || m == nil {
		ts.t.Fatalf("start run: %d %q\n%s", r.status, r.header.Get("Location"), r.body)
	}
	var id int64
	fmt.Sscan(m[1], &id)
	return id
}

func (ts *testServer) runCount(userEmail string) int {
	ts.t.Helper()
	var n int
	users, _, _ := ts.store.ListUsers(context.Background(), 100)
	for _, u := range users {
		if u.Email == userEmail {
			rs, _ := ts.store.Runs(context.Background(), u.ID)
			n = len(rs)
		}
	}
	return n
}

func TestRunFormRefusesImpossibleRunsBesideTheField(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.signUp("form@example.com")
	chat := ts.datasetFor(c, completionLines(20))
	pref := ts.datasetFor(c, preferenceLines(20))

	page := ts.do(c, "GET", "/runs/new", nil, nil)
	if page.status != 200 || !strings.Contains(page.body, `name="learning_rate"`) || !strings.Contains(page.body, "Byte MLP base") {
		t.Fatalf("form: %d\n%s", page.status, page.body)
	}
	for _, c2 := range []struct {
		name  string
		edit  func(url.Values)
		field string
		want  string
	}{
		{"dpo on a completion dataset", func(v url.Values) { v.Set("method", "dpo") }, "dataset_id", "needs a preference dataset"},
		{"lora on a preference dataset", func(v url.Values) { v.Set("dataset_id", pref) }, "dataset_id", "needs a chat or completion dataset"},
		{"qlora on the CPU backend", func(v url.Values) { v.Set("method", "qlora") }, "method", "does not offer qlora"},
		{"a model the backend lacks", func(v url.Values) { v.Set("base_model", "llama-70b") }, "base_model", "does not offer"},
		{"a GPU type the backend lacks", func(v url.Values) { v.Set("gpu_type", "h100") }, "gpu_type", "no GPU type"},
		{"learning rate not a number", func(v url.Values) { v.Set("learning_rate", "fast") }, "learning_rate", "is not a number"},
		{"epochs zero", func(v url.Values) { v.Set("epochs", "0") }, "epochs", "from 1 to 1000"},
		{"no dataset", func(v url.Values) { v.Set("dataset_id", "") }, "dataset_id", "Choose the dataset"},
		{"eval set equal to the training set", func(v url.Values) { v.Set("eval_dataset_id", chat) }, "eval_dataset_id", "different dataset"},
		{"split out of range", func(v url.Values) { v.Set("validation_split", "75") }, "validation_split", "0 to 50"},
	} {
		v := runValues(chat)
		c2.edit(v)
		r := ts.do(c, "POST", "/runs", v, nil)
		if r.status != http.StatusUnprocessableEntity {
			t.Errorf("%s: status %d", c2.name, r.status)
			continue
		}
		if !strings.Contains(r.body, c2.want) {
			t.Errorf("%s: the page does not say %q", c2.name, c2.want)
		}
		// The message sits with its field: the field is marked invalid.
		if !regexp.MustCompile(`name="` + c2.field + `"[^>]*aria-invalid="true"|aria-invalid="true"[^>]*name="` + c2.field + `"`).MatchString(r.body) {
			t.Errorf("%s: field %s is not marked invalid", c2.name, c2.field)
		}
	}
	if n := ts.runCount("form@example.com"); n != 0 {
		t.Fatalf("refused forms stored %d runs", n)
	}
	v := runValues(pref)
	v.Set("method", "dpo")
	id := ts.startRun(c, v)
	if ts.wakes.Load() == 0 {
		t.Error("queuing a run did not wake the dispatcher")
	}
	list := ts.do(c, "GET", "/runs", nil, nil)
	if !strings.Contains(list.body, fmt.Sprintf(`href="/runs/%d"`, id)) || !strings.Contains(list.body, "Queued") {
		t.Fatalf("run list does not show the queued run:\n%s", list.body)
	}
	if page := ts.do(c, "GET", fmt.Sprintf("/runs/%d", id), nil, nil); page.status != 200 || !strings.Contains(page.body, "DPO") {
		t.Fatalf("run page: %d", page.status)
	}
}

// One submit names every problem: bad numbers and a dataset that does not suit the method.
func TestRunFormReportsEveryProblemAtOnce(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.signUp("all-at-once@example.com")
	chat := ts.datasetFor(c, completionLines(20))
	v := runValues(chat)
	v.Set("epochs", "0")
	v.Set("learning_rate", "fast")
	v.Set("method", "dpo")
	r := ts.do(c, "POST", "/runs", v, nil)
	if r.status != http.StatusUnprocessableEntity {
		t.Fatalf("status %d", r.status)
	}
	for field, want := range map[string]string{"epochs": "from 1 to 1000", "learning_rate": "is not a number", "dataset_id": "needs a preference dataset"} {
		if !strings.Contains(r.body, want) {
			t.Errorf("the page does not say %q", want)
		}
		if !regexp.MustCompile(`name="` + field + `"[^>]*aria-invalid="true"|aria-invalid="true"[^>]*name="` + field + `"`).MatchString(r.body) {
			t.Errorf("field %s is not marked invalid", field)
		}
	}
}

// The form's help describes what this (CPU-only) backend runs: the learning rate it
// recommends includes the default it fills in, QLoRA is explained once as not offered, and
// metered time is compute time, not GPU time.
func TestRunFormHelpFitsTheBackend(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.signUp("help@example.com")
	ts.datasetFor(c, completionLines(20))
	page := ts.do(c, "GET", "/runs/new", nil, nil)
	if page.status != 200 {
		t.Fatalf("form: %d", page.status)
	}
	body := html.UnescapeString(page.body)
	if !strings.Contains(body, `value="0.003"`) || !strings.Contains(body, "1e-3 to 1e-2 works, and the default 0.003") {
		t.Error("the learning rate's help does not match its default of 0.003")
	}
	if !strings.Contains(body, "byte-level") {
		t.Error("the help does not say the built-in models are small byte-level models")
	}
	if n := strings.Count(body, "QLoRA"); n != 1 {
		t.Errorf("QLoRA is named %d times; want once, saying why it is not offered", n)
	}
	if !strings.Contains(body, "QLoRA is not offered by this backend") {
		t.Error("the form does not say why QLoRA is missing")
	}
	if strings.Contains(body, "GPU time") || !strings.Contains(body, "compute time") {
		t.Error("a CPU-only backend's form speaks of GPU time")
	}
}

func TestRunsAreTheOwnersOnly(t *testing.T) {
	ts := newTestServer(t, Config{})
	ada := ts.signUp("ada@example.com")
	bob := ts.signUp("bob@example.com")
	adaData := ts.datasetFor(ada, completionLines(20))
	id := ts.startRun(ada, runValues(adaData))

	for _, req := range []struct{ method, path string }{
		{"GET", "/runs/%d"}, {"GET", "/runs/%d/events"}, {"POST", "/runs/%d/cancel"}, {"POST", "/runs/%d/retry"},
		{"POST", "/runs/%d/delete"}, {"GET", "/runs/%d/snapshots/1/download"}, {"GET", "/runs/%d/metrics.csv"},
		{"GET", "/runs/%d/metrics.jsonl"},
	} {
		path := fmt.Sprintf(req.path, id)
		if r := ts.do(bob, req.method, path, url.Values{}, nil); r.status != http.StatusNotFound {
			t.Errorf("bob %s %s: %d, want 404", req.method, path, r.status)
		}
		if r := ts.do(ts.client(), req.method, path, url.Values{}, nil); r.status != http.StatusSeeOther {
			t.Errorf("anonymous %s %s: %d, want a redirect to sign in", req.method, path, r.status)
		}
	}
	// Bob cannot train on Ada's dataset either.
	if r := ts.do(bob, "POST", "/runs", runValues(adaData), nil); r.status != http.StatusUnprocessableEntity || !strings.Contains(r.body, "Choose one of your datasets") {
		t.Errorf("bob trains on ada's dataset: %d", r.status)
	}
	run, err := ts.store.RunByID(context.Background(), id)
	if err != nil || run.Status != store.RunQueued || run.Deleted {
		t.Fatalf("bob changed ada's run: %+v %v", run, err)
	}
	events, _ := ts.store.RecentSecurityEvents(context.Background(), 50)
	denied := 0
	for _, e := range events {
		if e.Kind == store.EventAuthzDenied {
			denied++
		}
	}
	if denied < 8 {
		t.Fatalf("authz_denied events = %d, want one per refused request", denied)
	}
}

func mustAtoi(t *testing.T, s string) int {
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestCancelRetryDeleteRun(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.signUp("life@example.com")
	id := ts.startRun(c, runValues(ts.datasetFor(c, completionLines(20))))

	if r := ts.do(c, "POST", fmt.Sprintf("/runs/%d/cancel", id), url.Values{}, nil); r.status != http.StatusSeeOther {
		t.Fatalf("cancel: %d", r.status)
	}
	run, _ := ts.store.RunByID(context.Background(), id)
	if run.Status != store.RunCancelled {
		t.Fatalf("a queued run is %s after cancel", run.Status)
	}
	page := ts.do(c, "GET", fmt.Sprintf("/runs/%d", id), nil, nil)
	if !strings.Contains(page.body, fmt.Sprintf(`action="/runs/%d/retry"`, id)) || strings.Contains(page.body, fmt.Sprintf(`action="/runs/%d/cancel"`, id)) {
		t.Fatal("an ended run should offer retry and not cancel")
	}
	r := ts.do(c, "POST", fmt.Sprintf("/runs/%d/retry", id), url.Values{}, nil)
	m := runURL.FindStringSubmatch(r.header.Get("Location"))
	if r.status != http.StatusSeeOther || m == nil || m[1] == fmt.Sprint(id) {
		t.Fatalf("retry: %d %q", r.status, r.header.Get("Location"))
	}
	retry, _ := ts.store.RunByID(context.Background(), int64(mustAtoi(t, m[1])))
	if retry.Status != store.RunQueued || retry.RetryOf != id || retry.Config != run.Config || retry.DatasetID != run.DatasetID {
		t.Fatalf("retry = %+v", retry)
	}
	if r := ts.do(c, "POST", fmt.Sprintf("/runs/%d/delete", id), url.Values{}, nil); r.status != http.StatusSeeOther || r.header.Get("Location") != "/runs" {
		t.Fatalf("delete: %d", r.status)
	}
	if r := ts.do(c, "GET", fmt.Sprintf("/runs/%d", id), nil, nil); r.status != http.StatusNotFound {
		t.Fatalf("deleted run page: %d", r.status)
	}
	if list := ts.do(c, "GET", "/runs", nil, nil); strings.Contains(list.body, fmt.Sprintf(`href="/runs/%d"`, id)) {
		t.Fatal("the deleted run is still listed")
	}
}

// claim moves a queued run to starting with a known token, as the dispatcher does.
func (ts *testServer) claim(t testing.TB) (runID int64, token string) {
	t.Helper()
	token = hex.EncodeToString([]byte(fmt.Sprintf("tok-%012d", ts.wakes.Add(1))))[:32]
	sum := sha256.Sum256([]byte(token))
	run, ok, err := ts.store.ClaimQueuedRun(context.Background(), "local", sum[:])
	if err != nil || !ok {
		t.Fatalf("claim: %v %v", ok, err)
	}
	return run.ID, token
}

// The live update carries the header's actions and status out of band, so they follow the
// run without a reload: once it ended, Retry replaces Cancel. A run being cancelled says
// "Cancelling", with no estimate, until the worker confirms.
func TestLiveUpdateCarriesTheHeaderActions(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.signUp("live-actions@example.com")
	id := ts.startRun(c, runValues(ts.datasetFor(c, completionLines(20))))
	page := ts.do(c, "GET", fmt.Sprintf("/runs/%d", id), nil, nil)
	if !regexp.MustCompile(`(?s)<div class="run-actions" id="run-actions"[^>]*>.*?/runs/\d+/cancel`).MatchString(page.body) ||
		!strings.Contains(page.body, `role="status" aria-live="polite"`) || !strings.Contains(page.body, `hx-swap="innerMorph"`) {
		t.Fatalf("the run page's header has no live actions or live region:\n%s", page.body)
	}
	// A queued run is cancelled at once: the stream sends the final panel, then "done".
	if r := ts.do(c, "POST", fmt.Sprintf("/runs/%d/cancel", id), url.Values{}, nil); r.status != http.StatusSeeOther {
		t.Fatalf("cancel: %d", r.status)
	}
	ev := ts.do(c, "GET", fmt.Sprintf("/runs/%d/events", id), nil, nil)
	body := strings.ReplaceAll(ev.body, "\ndata: ", "\n")
	actions := regexp.MustCompile(`(?s)<div id="run-actions" hx-swap-oob="innerMorph">.*?</div>\s*$|(?s)<div id="run-actions" hx-swap-oob="innerMorph">.*`).FindString(body)
	if actions == "" || !strings.Contains(actions, fmt.Sprintf("/runs/%d/retry", id)) || strings.Contains(actions, fmt.Sprintf("/runs/%d/cancel", id)) {
		t.Fatalf("the live update's header actions do not follow the end of the run:\n%s", body)
	}
	for _, want := range []string{`<span id="run-header-status" hx-swap-oob="innerMorph">`, `<p id="run-announce" hx-swap-oob="innerMorph">Run status: Cancelled.</p>`, "event: done"} {
		if !strings.Contains(body, want) {
			t.Errorf("the live update lacks %q", want)
		}
	}
}

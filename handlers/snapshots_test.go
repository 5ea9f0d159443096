package handlers

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"tunelab/store"
	"tunelab/trainer/protocol"
)

// runWithSnapshot starts a run through the form, claims it, sends a heartbeat (running)
// and uploads a snapshot at step 40 through the worker API. It returns the run, its
// token, the snapshot's id and bytes.
func (ts *testServer) runWithSnapshot(t *testing.T, c *http.Client, v url.Values) (run int64, tok string, sid int64, body []byte) {
	t.Helper()
	run = ts.startRun(c, v)
	claimed, tok := ts.claim(t)
	if claimed != run {
		t.Fatalf("claimed run %d, want %d", claimed, run)
	}
	if r := ts.post(run, "heartbeat", tok, `{"step":40,"total_steps":80}`); r.status != 200 {
		t.Fatalf("heartbeat: %d %s", r.status, r.body)
	}
	body = bytes.Repeat([]byte(fmt.Sprintf("run %d weights ", run)), 200)
	sum := sha256.Sum256(body)
	r := ts.workerCall("PUT", fmt.Sprintf("/api/v1/worker/runs/%d/snapshots/40", run), tok, bytes.NewReader(body),
		map[string]string{"X-Snapshot-SHA256": hex.EncodeToString(sum[:]), "X-Snapshot-Final": "false", "Content-Type": "application/octet-stream"})
	if r.status != http.StatusCreated {
		t.Fatalf("snapshot: %d %s", r.status, r.body)
	}
	var sn struct{ ID int64 }
	json.Unmarshal([]byte(r.body), &sn)
	return run, tok, sn.ID, body
}

func securityEventCount(t *testing.T, ts *testServer, kind, detail string) int {
	t.Helper()
	events, err := ts.store.RecentSecurityEvents(context.Background(), 100)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range events {
		if e.Kind == kind && e.Email == detail {
			n++
		}
	}
	return n
}

func TestDeleteSnapshotOfARunningRun(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.signUp("snapdel@example.com")
	other := ts.signUp("other@example.com")
	run, _, sid, body := ts.runWithSnapshot(t, c, runValues(ts.datasetFor(c, completionLines(20))))
	download := fmt.Sprintf("/runs/%d/snapshots/%d/download", run, sid)
	del := fmt.Sprintf("/runs/%d/snapshots/%d/delete", run, sid)

	// The run page offers the delete with its confirmation dialog, outside the live panel.
	page := ts.do(c, "GET", fmt.Sprintf("/runs/%d", run), nil, nil)
	for _, want := range []string{`data-snapshot-delete="` + del + `"`, `data-testid="snapshot-delete-dialog"`,
		`<dialog id="snapshot-delete-dialog"`, `formmethod="dialog"`, `href="/runs/new?snapshot=` + fmt.Sprint(sid) + `"`} {
		if !strings.Contains(page.body, want) {
			t.Errorf("run page lacks %s", want)
		}
	}
	if live := page.body[strings.Index(page.body, `id="run-live"`):strings.Index(page.body, `data-testid="run-charts"`)]; strings.Contains(live, "<dialog") {
		t.Error("the dialog is inside the live panel, which the stream replaces")
	}

	cases := []struct {
		name   string
		client *http.Client
		path   string
		want   int
	}{
		{"another person's snapshot", other, del, http.StatusNotFound},
		{"not a number", c, fmt.Sprintf("/runs/%d/snapshots/x/delete", run), http.StatusNotFound},
		{"a snapshot of another run", c, fmt.Sprintf("/runs/%d/snapshots/%d/delete", run, sid+1), http.StatusNotFound},
		{"signed out", ts.client(), del, http.StatusSeeOther},
	}
	for _, tc := range cases {
		if r := ts.do(tc.client, "POST", tc.path, url.Values{}, nil); r.status != tc.want || (tc.want == http.StatusSeeOther && !strings.HasPrefix(r.header.Get("Location"), "/signin")) {
			t.Errorf("%s: %d %s", tc.name, r.status, r.header.Get("Location"))
		}
	}
	if r := ts.do(c, "GET", download, nil, nil); r.status != 200 || r.body != string(body) {
		t.Fatalf("a refused delete removed the snapshot: %d", r.status)
	}

	r := ts.do(c, "POST", del, url.Values{}, nil)
	if r.status != http.StatusSeeOther || r.header.Get("Location") != fmt.Sprintf("/runs/%d", run) {
		t.Fatalf("delete: %d %s", r.status, r.header.Get("Location"))
	}
	if r := ts.do(c, "GET", download, nil, nil); r.status != http.StatusNotFound {
		t.Fatalf("download after delete: %d", r.status)
	}
	if r := ts.do(c, "POST", del, url.Values{}, nil); r.status != http.StatusNotFound {
		t.Fatalf("second delete: %d", r.status)
	}
	page = ts.do(c, "GET", fmt.Sprintf("/runs/%d", run), nil, nil)
	if strings.Contains(page.body, `data-testid="snapshot-row"`) || !strings.Contains(page.body, "No snapshots yet") {
		t.Fatal("the run page still lists the deleted snapshot")
	}
	if n := securityEventCount(t, ts, store.EventSnapshotDeleted, fmt.Sprintf("run %d snapshot %d", run, sid)); n != 1 {
		t.Fatalf("snapshot_deleted events = %d, want 1", n)
	}
	if got, _ := ts.store.RunByID(context.Background(), run); got.Status != store.RunRunning {
		t.Fatalf("deleting a snapshot changed the run: %s", got.Status)
	}
}

var hiddenInit = regexp.MustCompile(`name="init_snapshot_id" value="(\d+)"`)

func TestContinueFromSnapshot(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.signUp("cont@example.com")
	other := ts.signUp("cont-other@example.com")
	ds := ts.datasetFor(c, completionLines(20))
	src, srcTok, sid, body := ts.runWithSnapshot(t, c, runValues(ds))
	if r := ts.post(src, "finish", srcTok, `{"status":"succeeded"}`); r.status != 200 {
		t.Fatalf("finish: %d %s", r.status, r.body)
	}
	newPath := fmt.Sprintf("/runs/new?snapshot=%d", sid)

	// The form is prefilled from the snapshot's run and carries the snapshot.
	form := ts.do(c, "GET", newPath, nil, nil)
	if m := hiddenInit.FindStringSubmatch(form.body); form.status != 200 || m == nil || m[1] != fmt.Sprint(sid) {
		t.Fatalf("form: %d\n%s", form.status, form.body)
	}
	for _, want := range []string{`data-testid="continue-from"`, fmt.Sprintf("Run %d, snapshot at step 40", src)} {
		if !strings.Contains(form.body, want) {
			t.Errorf("prefilled form lacks %s", want)
		}
	}
	for name, value := range map[string]string{"seed": "7", "lora_rank": "8", "max_seq_len": "256", "batch_size": "8"} {
		if !regexp.MustCompile(`name="` + name + `"[^>]*value="` + value + `"`).MatchString(form.body) {
			t.Errorf("prefilled form: %s is not %s", name, value)
		}
	}
	if r := ts.do(c, "GET", "/runs/new", nil, nil); strings.Contains(r.body, `name="init_snapshot_id"`) {
		t.Error("a fresh form carries an init snapshot")
	}
	for _, p := range []string{newPath, "/runs/new?snapshot=x", "/runs/new?snapshot=99999"} {
		if r := ts.do(other, "GET", p, nil, nil); r.status != http.StatusNotFound {
			t.Errorf("another person's GET %s: %d", p, r.status)
		}
	}

	cont := func(mutate func(url.Values)) url.Values {
		v := runValues(ds)
		v.Set("init_snapshot_id", fmt.Sprint(sid))
		v.Set("epochs", "3")
		v.Set("learning_rate", "1e-3")
		mutate(v)
		return v
	}
	otherDS := ts.datasetFor(other, completionLines(20))
	refused := []struct {
		name   string
		client *http.Client
		form   url.Values
		field  string
		text   string
	}{
		{"another base model", c, cont(func(v url.Values) { v.Set("base_model", "tunelab/byte-mlp-base") }), "base_model", "choose Byte MLP small"},
		{"another method", c, cont(func(v url.Values) { v.Set("method", "full") }), "method", "choose LoRA"},
		{"another rank", c, cont(func(v url.Values) { v.Set("lora_rank", "4") }), "lora_rank", "rank 8"},
		{"not a number", c, cont(func(v url.Values) { v.Set("init_snapshot_id", "abc") }), "init_snapshot_id", "not a snapshot of yours"},
		{"another person's snapshot", other, cont(func(v url.Values) { v.Set("dataset_id", otherDS) }), "init_snapshot_id", "no longer available"},
	}
	for _, tc := range refused {
		r := ts.do(tc.client, "POST", "/runs", tc.form, nil)
		re := regexp.MustCompile(`data-testid="error-` + tc.field + `"[^>]*>[^<]*` + regexp.QuoteMeta(tc.text))
		if r.status != http.StatusUnprocessableEntity || !re.MatchString(r.body) {
			t.Errorf("%s: %d, want 422 with %q beside %s\n%s", tc.name, r.status, tc.text, tc.field, r.body)
		}
		if !strings.Contains(r.body, `name="init_snapshot_id"`) {
			t.Errorf("%s: the refused form dropped the snapshot", tc.name)
		}
	}
	if n := ts.runCount("cont-other@example.com"); n != 0 {
		t.Fatalf("a refused run was saved for the other person: %d", n)
	}

	next := ts.startRun(c, cont(func(url.Values) {}))
	got, _ := ts.store.RunByID(context.Background(), next)
	if got.Config.InitSnapshotID != sid || got.Config.Epochs != 3 || got.Config.LearningRate != 1e-3 {
		t.Fatalf("continued run config = %+v", got.Config)
	}
	// Both timelines link the runs.
	page := ts.do(c, "GET", fmt.Sprintf("/runs/%d", next), nil, nil)
	link := fmt.Sprintf(`<a href="/runs/%d" data-testid="timeline-link">Continued from run %d, snapshot at step 40</a>`, src, src)
	if !strings.Contains(page.body, link) {
		t.Fatalf("the continued run's timeline lacks %s\n%s", link, page.body)
	}
	page = ts.do(c, "GET", fmt.Sprintf("/runs/%d", src), nil, nil)
	if !strings.Contains(page.body, `data-testid="continued-runs"`) || !strings.Contains(page.body, fmt.Sprintf(`<a href="/runs/%d">Run %d</a>`, next, next)) {
		t.Fatalf("the source run does not list the run continued from it\n%s", page.body)
	}

	// The person deletes the snapshot while the run waits: the worker still gets it.
	if r := ts.do(c, "POST", fmt.Sprintf("/runs/%d/snapshots/%d/delete", src, sid), url.Values{}, nil); r.status != http.StatusSeeOther {
		t.Fatalf("delete: %d", r.status)
	}
	if r := ts.do(c, "POST", "/runs", cont(func(url.Values) {}), nil); r.status != http.StatusUnprocessableEntity ||
		!strings.Contains(r.body, `data-testid="error-init_snapshot_id"`) {
		t.Fatalf("continuing from a deleted snapshot: %d", r.status)
	}
	claimed, tok := ts.claim(t)
	if claimed != next {
		t.Fatalf("claimed %d, want %d", claimed, next)
	}
	spec := ts.workerCall("GET", fmt.Sprintf("/api/v1/worker/runs/%d/job", next), tok, nil, nil)
	var job struct {
		InitSnapshot *protocol.InitSnapshot `json:"init_snapshot"`
	}
	json.Unmarshal([]byte(spec.body), &job)
	sum := sha256.Sum256(body)
	want := protocol.InitSnapshot{URL: fmt.Sprintf("/api/v1/worker/runs/%d/init-snapshot", next), RunID: src, Step: 40,
		SHA256: hex.EncodeToString(sum[:]), SizeBytes: int64(len(body))}
	if spec.status != 200 || job.InitSnapshot == nil || *job.InitSnapshot != want {
		t.Fatalf("job spec: %d %s", spec.status, spec.body)
	}
	dl := ts.workerCall("GET", want.URL, tok, nil, nil)
	if dl.status != 200 || dl.body != string(body) || dl.header.Get("X-Snapshot-SHA256") != want.SHA256 {
		t.Fatalf("init snapshot download: %d, %d bytes", dl.status, len(dl.body))
	}
	// Only the new run's token opens it.
	if r := ts.workerCall("GET", want.URL, srcTok, nil, nil); r.status != http.StatusUnauthorized {
		t.Fatalf("the ended source run's token: %d", r.status)
	}
	third := ts.startRun(c, runValues(ds))
	_, thirdTok := ts.claim(t)
	if r := ts.workerCall("GET", want.URL, thirdTok, nil, nil); r.status != http.StatusForbidden {
		t.Fatalf("another live run's token: %d", r.status)
	}
	if r := ts.workerCall("GET", fmt.Sprintf("/api/v1/worker/runs/%d/init-snapshot", third), thirdTok, nil, nil); r.status != http.StatusNotFound || errorCode(t, r) != "not_found" {
		t.Fatalf("init snapshot of a fresh run: %d %s", r.status, r.body)
	}
	if r := ts.workerCall("GET", fmt.Sprintf("/api/v1/worker/runs/%d/job", third), thirdTok, nil, nil); !strings.Contains(r.body, `"init_snapshot":null`) {
		t.Fatalf("a fresh run's job spec: %s", r.body)
	}
}

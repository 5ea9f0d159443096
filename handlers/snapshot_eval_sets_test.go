package handlers

import (
	"context"
	"database/sql"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"tunelab/store"
	"tunelab/store/storetest"
)

func (ts *testServer) namedDataset(c *http.Client, name, content string) int64 {
	ts.t.Helper()
	r := ts.upload(c, name, "rows.jsonl", content)
	if r.status != http.StatusSeeOther {
		ts.t.Fatalf("upload: %d", r.status)
	}
	id, err := strconv.ParseInt(strings.TrimPrefix(r.header.Get("Location"), "/datasets/"), 10, 64)
	if err != nil {
		ts.t.Fatal(err)
	}
	return id
}

// Evaluate all on an uploaded dataset scores every snapshot on its rows; the scores are
// kept apart from the held-out set's, and the leaderboard shows the set picked.
func TestEvaluateAllOnAnUploadedDatasetKeepsScoresPerSet(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.signUp("eval-set@example.com")
	early, final := greeterSnapshots(t)
	run, snaps := ts.evalRun(t, c, "tunelab/byte-mlp-small", early, final)
	u := mustUserID(t, ts, c)
	set := ts.namedDataset(c, "greetings test", greetChat(12))
	r := ts.do(c, "POST", fmt.Sprintf("/runs/%d/evaluate", run), url.Values{"set": {fmt.Sprint(set)}, "metric": {"exact_match"}}, nil)
	if want := fmt.Sprintf("/runs/%d?metric=exact_match&set=%d#checkpoints", run, set); r.status != http.StatusSeeOther || r.header.Get("Location") != want {
		t.Fatalf("evaluate all on the dataset: %d %q, want %q", r.status, r.header.Get("Location"), want)
	}
	evals := ts.waitEvalsOn(t, u, run, set)
	e1, e60 := evals[snaps[0].ID], evals[snaps[1].ID]
	if e1.Status != store.EvalDone || e60.Status != store.EvalDone || e60.Rows != 12 || e60.ExactMatch.Float64 != 1 || e1.ExactMatch.Float64 != 0 || e60.DatasetID != set {
		t.Fatalf("on the dataset: early %+v, final %+v", e1, e60)
	}
	if held, _ := ts.store.SnapshotEvals(context.Background(), u, run, 0); len(held) != 0 {
		t.Fatalf("the held-out set was scored too: %+v", held)
	}
	page := ts.do(c, "GET", fmt.Sprintf("/runs/%d?set=%d", run, set), nil, nil)
	body := html.UnescapeString(page.body)
	if m := bestStep.FindStringSubmatch(page.body); page.status != 200 || m == nil || m[1] != "60" {
		t.Fatalf("best on the dataset: %d %v", page.status, m)
	}
	for _, want := range []string{"Scored on all 12 rows of your dataset “greetings test”.", `<option value="` + fmt.Sprint(set) + `" selected>“greetings test” (chat, 12 rows)</option>`, `name="set" value="` + fmt.Sprint(set) + `"`} {
		if !strings.Contains(body, want) {
			t.Errorf("the leaderboard on the dataset lacks %q", want)
		}
	}
	// The held-out set has no scores yet: nothing marked best there.
	if p := ts.do(c, "GET", fmt.Sprintf("/runs/%d/checkpoints?set=heldout", run), nil, nil); p.status != 200 || bestStep.MatchString(p.body) {
		t.Fatalf("held-out set: %d, best marked %v", p.status, bestStep.FindStringSubmatch(p.body))
	}
	// Each set marks its own best: made-up held-out scores where step 1 wins.
	for i, loss := range []float64{0.1, 0.9} {
		if err := ts.store.QueueSnapshotEval(context.Background(), u, run, snaps[i].ID, 0); err != nil {
			t.Fatal(err)
		}
		ts.do(c, "POST", fmt.Sprintf("/runs/%d/snapshots/%d/evaluate", run, snaps[i].ID), url.Values{"set": {"heldout"}}, nil)
		held := ts.waitEvals(t, u, run)
		if err := ts.store.FinishEval(context.Background(), held[snaps[i].ID].ID, 2, loss, nullFloat(0), nullFloat(0)); err != nil {
			t.Fatal(err)
		}
	}
	for set, want := range map[string]string{"heldout": "1", fmt.Sprint(set): "60"} {
		p := ts.do(c, "GET", fmt.Sprintf("/runs/%d/checkpoints?set=%s", run, set), nil, nil)
		if m := bestStep.FindStringSubmatch(p.body); m == nil || m[1] != want {
			t.Errorf("set %s: best %v, want step %s", set, m, want)
		}
	}
}

// Sets that cannot be scored on get a message that says what to pick, and nothing is
// queued: another person's dataset, a wrong format, an empty dataset, a deleted one.
func TestEvaluationOnABadEvalSetSaysWhyAndQueuesNothing(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.signUp("eval-bad-set@example.com")
	other := ts.signUp("eval-bad-set-other@example.com")
	early, final := greeterSnapshots(t)
	run, snaps := ts.evalRun(t, c, "tunelab/byte-mlp-small", early, final)
	u := mustUserID(t, ts, c)
	theirs := ts.namedDataset(other, "theirs", greetChat(10))
	prefs := ts.namedDataset(c, "prefs", preferenceLines(10))
	empty := ts.namedDataset(c, "hollow", greetChat(10))
	gone := ts.namedDataset(c, "gone soon", greetChat(10))
	// Uploads refuse a file without rows; a row count of 0 stands for one from elsewhere.
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(filepath.Dir(ts.vaultDir), storetest.DBFile)+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("UPDATE datasets SET row_count = 0 WHERE id = ?", empty); err != nil {
		t.Fatal(err)
	}
	if r := ts.do(c, "POST", fmt.Sprintf("/datasets/%d/delete", gone), url.Values{}, nil); r.status != http.StatusSeeOther {
		t.Fatalf("delete: %d", r.status)
	}
	cases := []struct{ set, want string }{
		{fmt.Sprint(theirs), notYourSetMessage},
		{"9999", notYourSetMessage},
		{"bleu", notYourSetMessage},
		{fmt.Sprint(prefs), "“prefs” is a preference dataset; this run's snapshots (full) are scored on chat or completion data. Choose a dataset of that format."},
		{fmt.Sprint(empty), "“hollow” has no rows to score: choose a dataset with rows."},
		{fmt.Sprint(gone), "“gone soon” was deleted, so it cannot be scored on: choose another of your datasets, or the run's held-out rows."},
	}
	for _, k := range cases {
		for _, path := range []string{fmt.Sprintf("/runs/%d/evaluate", run), fmt.Sprintf("/runs/%d/snapshots/%d/evaluate", run, snaps[0].ID)} {
			r := ts.do(c, "POST", path, url.Values{"set": {k.set}}, nil)
			if r.status != http.StatusBadRequest || !strings.Contains(html.UnescapeString(r.body), k.want) || !strings.Contains(r.body, `data-testid="checkpoints-error"`) {
				t.Errorf("set %s on %s: %d, want 400 saying %q", k.set, path, r.status, k.want)
			}
		}
		want := k.want
		if k.set == fmt.Sprint(gone) { // a page may still show a deleted dataset's kept scores; it has none
			want = "“gone soon” was deleted and holds no scores of this run: choose another of your datasets, or the run's held-out rows."
		}
		if p := ts.do(c, "GET", fmt.Sprintf("/runs/%d/checkpoints?set=%s", run, k.set), nil, nil); p.status != http.StatusBadRequest || !strings.Contains(html.UnescapeString(p.body), want) {
			t.Errorf("leaderboard on set %s: %d", k.set, p.status)
		}
	}
	page := html.UnescapeString(ts.do(c, "GET", fmt.Sprintf("/runs/%d", run), nil, nil).body)
	for _, absent := range []string{"theirs", "“prefs”", "“hollow”", "gone soon"} {
		if strings.Contains(page, absent) {
			t.Errorf("the eval set list offers %s", absent)
		}
	}
	for _, set := range []int64{0, theirs, prefs, empty, gone} {
		if evals, _ := ts.store.SnapshotEvals(context.Background(), u, run, set); len(evals) != 0 {
			t.Fatalf("queued on %d: %+v", set, evals)
		}
	}
}

// A dataset deleted after its job was queued: the job fails saying so when its turn
// comes; scores finished before the delete stay, shown as a deleted dataset's.
func TestEvalSetDeletedMeanwhile(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.signUp("eval-deleted-set@example.com")
	early, final := greeterSnapshots(t)
	run, snaps := ts.evalRun(t, c, "tunelab/byte-mlp-small", early, final)
	u := mustUserID(t, ts, c)
	set := ts.namedDataset(c, "short lived", greetChat(10))
	ctx := context.Background()
	ts.do(c, "POST", fmt.Sprintf("/runs/%d/snapshots/%d/evaluate", run, snaps[1].ID), url.Values{"set": {fmt.Sprint(set)}}, nil)
	if e := ts.waitEvalsOn(t, u, run, set); e[snaps[1].ID].Status != store.EvalDone {
		t.Fatalf("scored: %+v", e)
	}
	// The early snapshot's job is queued (as the form would), then the dataset deleted
	// before the loop gets to it; an evaluation on the held-out rows wakes the loop.
	if err := ts.store.QueueSnapshotEval(ctx, u, run, snaps[0].ID, set); err != nil {
		t.Fatal(err)
	}
	if r := ts.do(c, "POST", fmt.Sprintf("/datasets/%d/delete", set), url.Values{}, nil); r.status != http.StatusSeeOther {
		t.Fatalf("delete: %d", r.status)
	}
	ts.do(c, "POST", fmt.Sprintf("/runs/%d/snapshots/%d/evaluate", run, snaps[0].ID), url.Values{"set": {"heldout"}}, nil)
	ts.waitEvals(t, u, run)
	evals := ts.waitEvalsOn(t, u, run, set)
	if e := evals[snaps[0].ID]; e.Status != store.EvalFailed || e.Error != "“short lived” was deleted, so it cannot be scored on: choose another of your datasets, or the run's held-out rows." {
		t.Fatalf("the job on the deleted dataset: %+v", e)
	}
	if e := evals[snaps[1].ID]; e.Status != store.EvalDone {
		t.Fatalf("the kept scores: %+v", e)
	}
	p := ts.do(c, "GET", fmt.Sprintf("/runs/%d?set=%d", run, set), nil, nil)
	body := html.UnescapeString(p.body)
	if p.status != 200 || !strings.Contains(body, "“short lived” (deleted, scores kept)") || !strings.Contains(body, "Scores kept from “short lived”, deleted since") ||
		strings.Contains(body, `data-testid="checkpoint-evaluate"`) || strings.Contains(body, `data-testid="evaluate-all"`) {
		t.Fatalf("the deleted dataset's scores: %d", p.status)
	}
	if m := bestStep.FindStringSubmatch(p.body); m == nil || m[1] != "60" {
		t.Fatalf("best among the kept scores: %v", m)
	}
}

// A dataset longer than the cap is scored on its first evalMaxRows rows, as the held-out
// set is; completion rows score loss only (no reference answers to match).
func TestEvalOnADatasetIsCappedLikeTheHeldOutSet(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.signUp("eval-set-cap@example.com")
	early, final := greeterSnapshots(t)
	run, snaps := ts.evalRun(t, c, "tunelab/byte-mlp-small", early, final)
	u := mustUserID(t, ts, c)
	set := ts.namedDataset(c, "many numbers", completionLines(evalMaxRows+30))
	ts.do(c, "POST", fmt.Sprintf("/runs/%d/snapshots/%d/evaluate", run, snaps[1].ID), url.Values{"set": {fmt.Sprint(set)}}, nil)
	e := ts.waitEvalsOn(t, u, run, set)[snaps[1].ID]
	if e.Status != store.EvalDone || e.Rows != evalMaxRows || e.ExactMatch.Valid || e.Contains.Valid || !e.EvalLoss.Valid {
		t.Fatalf("scored: %+v", e)
	}
	page := html.UnescapeString(ts.do(c, "GET", fmt.Sprintf("/runs/%d?set=%d", run, set), nil, nil).body)
	if want := fmt.Sprintf("Scored on the first %d of the %d rows of your dataset “many numbers”.", evalMaxRows, evalMaxRows+30); !strings.Contains(page, want) {
		t.Errorf("the leaderboard does not say %q", want)
	}
}

// Two people share the evaluation loop: A's two jobs are queued (as "Evaluate all" does)
// before B's one, and the loop, woken by B's request, does A's first, then B's, then A's
// second. The order is read from the claim counter (one job at a time, so the order of
// completion), not from timings.
func TestEvalLoopTakesTurnsBetweenTwoPeople(t *testing.T) {
	ts := newTestServer(t, Config{})
	a := ts.signUp("eval-turns-a@example.com")
	b := ts.signUp("eval-turns-b@example.com")
	early, final := greeterSnapshots(t)
	runA, snapsA := ts.evalRun(t, a, "tunelab/byte-mlp-small", early, final)
	runB, snapsB := ts.evalRun(t, b, "tunelab/byte-mlp-small", early, final)
	ua, ub := mustUserID(t, ts, a), mustUserID(t, ts, b)
	ctx := context.Background()
	for _, s := range snapsA { // queued without waking the loop, so nothing starts yet
		if err := ts.store.QueueSnapshotEval(ctx, ua, runA, s.ID, 0); err != nil {
			t.Fatal(err)
		}
	}
	if r := ts.do(b, "POST", fmt.Sprintf("/runs/%d/snapshots/%d/evaluate", runB, snapsB[1].ID), url.Values{"set": {"heldout"}}, nil); r.status != http.StatusSeeOther {
		t.Fatalf("B's evaluation: %d", r.status)
	}
	ts.waitEvals(t, ua, runA)
	ts.waitEvals(t, ub, runB)
	db := openRaw(t, ts)
	rows, err := db.Query("SELECT snapshot_id FROM snapshot_evals ORDER BY turn")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var order []int64
	for rows.Next() {
		var id int64
		rows.Scan(&id)
		order = append(order, id)
	}
	if want := []int64{snapsA[0].ID, snapsB[1].ID, snapsA[1].ID}; fmt.Sprint(order) != fmt.Sprint(want) {
		t.Fatalf("order of completion %v, want %v (A's first, B's, A's second)", order, want)
	}
}

package main

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"tunelab/store"
)

// A run continued from another run's final snapshot, through the real server, the local
// backend and `tunelab worker`: its first eval loss is where the first run ended, far below
// where the first run began.
func TestRunContinuedFromSnapshotEndToEnd(t *testing.T) {
	dir, env := t.TempDir(), runEnv(t)
	addr, _ := startServerWith(t, env, dir)
	app := newAppClient(t, "http://"+addr)
	st := openStore(t, dir)
	dataset := app.signUpWithSample("continue@example.com")
	first := app.startRun(dataset, "lora", 3)
	run := waitRun(t, st, first, "success", 4*time.Minute, func(r store.Run) bool { return r.Final() })
	if run.Status != store.RunSucceeded {
		t.Fatalf("first run ended %s: %s", run.Status, run.Reason)
	}
	snaps, _ := st.Snapshots(context.Background(), run.UserID, first)
	final := snaps[len(snaps)-1]

	code, form, _ := app.get(fmt.Sprintf("/runs/new?snapshot=%d", final.ID))
	if code != 200 || !strings.Contains(string(form), fmt.Sprintf(`name="init_snapshot_id" value="%d"`, final.ID)) {
		t.Fatalf("continue form: %d", code)
	}
	v := url.Values{
		"dataset_id": {fmt.Sprint(dataset)}, "base_model": {"tunelab/byte-mlp-small"}, "method": {"lora"},
		"epochs": {"1"}, "learning_rate": {"0.001"}, "batch_size": {"16"}, "lora_rank": {"8"},
		"lora_alpha": {"16"}, "max_seq_len": {"256"}, "seed": {"3"}, "gpu_type": {"cpu"}, "validation_split": {"10"},
		"snapshot_every": {"0"}, "init_snapshot_id": {fmt.Sprint(final.ID)},
	}
	st2, loc := app.post("/runs", v)
	if st2 != http.StatusSeeOther {
		t.Fatalf("start the continued run: %d", st2)
	}
	next := idFrom(t, loc)
	cont := waitRun(t, st, next, "success", 4*time.Minute, func(r store.Run) bool { return r.Final() })
	if cont.Status != store.RunSucceeded {
		t.Fatalf("continued run ended %s: %s", cont.Status, cont.Reason)
	}
	a, b := metricSeries(t, st, first)["eval_loss"], metricSeries(t, st, next)["eval_loss"]
	start, end, resumed := a[0].Value, a[len(a)-1].Value, b[0].Value
	t.Logf("first run eval loss %.3f -> %.3f; continued run starts at %.3f", start, end, resumed)
	if b[0].Step != 0 || math.Abs(resumed-end) > 0.01*end || !(resumed < 0.8*start) {
		t.Fatalf("the continued run started at eval loss %.3f; the first went %.3f -> %.3f", resumed, start, end)
	}
	logs, _ := st.LogTail(context.Background(), next, 500)
	found := false
	for _, l := range logs {
		found = found || strings.Contains(l.Line, fmt.Sprintf("starting from the weights of run %d's snapshot", first))
	}
	if !found {
		t.Fatalf("the continued run's log does not say where it started: %+v", logs)
	}
	_, page, _ := app.get(fmt.Sprintf("/runs/%d", next))
	if !strings.Contains(string(page), fmt.Sprintf("Continued from run %d, snapshot at step", first)) {
		t.Fatal("the continued run's timeline does not name its source")
	}
}

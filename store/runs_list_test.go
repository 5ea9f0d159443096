package store

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestNewRunsGetADefaultNameAndLabelsAreValidated(t *testing.T) {
	f := newRunFixture(t)
	ctx := context.Background()
	cfg := testRunConfig("lora")
	cfg.BaseModel = "tunelab/tiny-chat"
	r, err := f.s.CreateRun(ctx, NewRun{UserID: f.ada.ID, DatasetID: f.chat.ID, Config: cfg, Backend: "local"})
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^tiny-chat · lora · [0-9a-f]{4}$`).MatchString(r.Name) {
		t.Fatalf("default name %q", r.Name)
	}
	for _, c := range []struct {
		labels RunLabels
		bad    []string
	}{
		{RunLabels{Name: "sweep a", Tags: ParseTags("Baseline, lr-3e-3 v1.2  baseline")}, nil},
		{RunLabels{Name: "", Tags: nil}, []string{"name"}},
		{RunLabels{Name: strings.Repeat("é", 101)}, []string{"name"}},
		{RunLabels{Name: strings.Repeat("é", 100)}, nil},
		{RunLabels{Name: "x", Tags: ParseTags("a b c d e f g h i j k")}, []string{"tags"}},
		{RunLabels{Name: "x", Tags: ParseTags("ok, no/slash")}, []string{"tags"}},
		{RunLabels{Name: "x", Tags: ParseTags(strings.Repeat("a", 33))}, []string{"tags"}},
		{RunLabels{Name: "x", Notes: strings.Repeat("n", MaxRunNotesLen+1)}, []string{"notes"}},
	} {
		bad := c.labels.Validate()
		if len(bad) != len(c.bad) {
			t.Errorf("%+v: messages %v, want fields %v", c.labels.Tags, bad, c.bad)
		}
		for _, k := range c.bad {
			if bad[k] == "" {
				t.Errorf("no message for %s: %v", k, bad)
			}
		}
	}
	l := RunLabels{Name: "sweep a", Tags: ParseTags("Baseline, lr-3e-3 v1.2  baseline"), Notes: "first try"}
	if err := f.s.SetRunLabels(ctx, f.bob.ID, r.ID, l); err != ErrNotFound {
		t.Fatalf("another person's run: %v", err)
	}
	if err := f.s.SetRunLabels(ctx, f.ada.ID, r.ID, l); err != nil {
		t.Fatal(err)
	}
	got, _ := f.s.Run(ctx, f.ada.ID, r.ID)
	if got.Name != "sweep a" || strings.Join(got.Tags, ",") != "baseline,lr-3e-3,v1.2" || got.Notes != "first try" {
		t.Fatalf("labels: %q %q %q", got.Name, got.Tags, got.Notes)
	}
}

// TestRunListPagesFiltersAndSearches walks 120 runs page by page both ways, with each
// filter, and checks that the queries use their indexes.
func TestRunListPagesFiltersAndSearches(t *testing.T) {
	f := newRunFixture(t)
	ctx := context.Background()
	var all []int64 // newest first
	for i := range 120 {
		d, method := f.chat, MethodLoRA
		if i%3 == 0 {
			d, method = f.pref, MethodDPO
		}
		cfg := testRunConfig(method)
		r, err := f.s.CreateRun(ctx, NewRun{UserID: f.ada.ID, DatasetID: d.ID, Config: cfg, Backend: "local", Name: fmt.Sprintf("Sweep_%03d", i)})
		if err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			f.clock.advance(time.Second) // some runs share a created time: the id breaks the tie
		}
		all = append([]int64{r.ID}, all...)
	}
	f.queue(t, "lora", f.bobChat) // someone else's never shows
	ids := func(p RunPage) []int64 {
		var out []int64
		for _, r := range p.Runs {
			out = append(out, r.ID)
		}
		return out
	}
	// Older all the way down, then newer all the way back.
	var seen []int64
	p, err := f.s.ListRuns(ctx, f.ada.ID, RunFilter{})
	if err != nil {
		t.Fatal(err)
	}
	pages := []RunPage{p}
	for {
		if len(p.Runs) > 50 || p.HasNewer != (len(pages) > 1) {
			t.Fatalf("page %d: %d rows, newer %v", len(pages), len(p.Runs), p.HasNewer)
		}
		seen = append(seen, ids(p)...)
		if !p.HasOlder {
			break
		}
		c := p.Runs[len(p.Runs)-1].Cursor()
		if p, err = f.s.ListRuns(ctx, f.ada.ID, RunFilter{Before: &c}); err != nil {
			t.Fatal(err)
		}
		pages = append(pages, p)
	}
	if fmt.Sprint(seen) != fmt.Sprint(all) || len(pages) != 3 {
		t.Fatalf("older walk: %d pages\n%v\nwant\n%v", len(pages), seen, all)
	}
	c := pages[2].Runs[0].Cursor()
	back, err := f.s.ListRuns(ctx, f.ada.ID, RunFilter{After: &c})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(ids(back)) != fmt.Sprint(ids(pages[1])) || !back.HasNewer || !back.HasOlder {
		t.Fatalf("newer: %v (newer %v older %v), want %v", ids(back), back.HasNewer, back.HasOlder, ids(pages[1]))
	}
	c = back.Runs[0].Cursor()
	first, _ := f.s.ListRuns(ctx, f.ada.ID, RunFilter{After: &c})
	if fmt.Sprint(ids(first)) != fmt.Sprint(ids(pages[0])) || first.HasNewer || !first.HasOlder {
		t.Fatalf("back to the first page: %v newer %v", ids(first), first.HasNewer)
	}

	for _, c := range []struct {
		name   string
		filter RunFilter
		want   int
	}{
		{"method", RunFilter{Method: "dpo", Limit: 200}, 40},
		{"dataset", RunFilter{DatasetID: f.chat.ID, Limit: 200}, 80},
		{"status", RunFilter{Status: RunQueued, Limit: 200}, 120},
		{"status none", RunFilter{Status: RunRunning}, 0},
		{"name prefix, any case", RunFilter{Name: "sweep_01", Limit: 200}, 10},
		{"underscore is literal", RunFilter{Name: "Sweep0"}, 0},
		{"name and method", RunFilter{Name: "sweep_00", Method: "dpo"}, 4},
	} {
		p, err := f.s.ListRuns(ctx, f.ada.ID, c.filter)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Runs) != c.want {
			t.Errorf("%s: %d runs, want %d", c.name, len(p.Runs), c.want)
		}
	}

	// Every list query walks an index, never the whole table.
	for _, q := range []struct{ where, index string }{
		{"r.user_id = 1 AND r.deleted_at IS NULL AND (r.created_at, r.id) < (5, 5) ORDER BY r.created_at DESC, r.id DESC", "runs_list"},
		{"r.user_id = 1 AND r.deleted_at IS NULL AND r.status = 'failed' ORDER BY r.created_at DESC, r.id DESC", "runs_list_status"},
		{"r.user_id = 1 AND r.deleted_at IS NULL AND r.method = 'dpo' ORDER BY r.created_at DESC, r.id DESC", "runs_list_method"},
		{"r.user_id = 1 AND r.deleted_at IS NULL AND r.dataset_id = 2 ORDER BY r.created_at DESC, r.id DESC", "runs_list_dataset"},
		{`r.user_id = 1 AND r.deleted_at IS NULL AND r.name LIKE 'ab%' ESCAPE '\'`, "runs_list_name"},
	} {
		rows, err := f.s.r.QueryContext(ctx, "EXPLAIN QUERY PLAN SELECT r.id FROM runs r WHERE "+q.where+" LIMIT 51")
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			rows.Scan(&id, &parent, &unused, &detail)
			plan = append(plan, detail)
		}
		rows.Close()
		if !strings.Contains(strings.Join(plan, "; "), "INDEX "+q.index+" ") {
			t.Errorf("%s: plan %q, want index %s", q.where, plan, q.index)
		}
	}
}

func TestRunCountsAndMonthlyGPUSecondsSurviveDeletes(t *testing.T) {
	f := newRunFixture(t)
	ctx := context.Background()
	a := f.queue(t, "lora", f.chat)
	b := f.queue(t, "lora", f.chat)
	f.queue(t, "lora", f.chat)
	f.queue(t, "lora", f.bobChat)
	if _, err := f.s.Heartbeat(ctx, a.ID, 1, 10); err != nil {
		t.Fatal(err)
	}
	f.clock.advance(90 * time.Second)
	if _, err := f.s.FinishRun(ctx, a.ID, RunSucceeded, "", f.clock.now()); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.CancelRun(ctx, f.ada.ID, b.ID); err != nil {
		t.Fatal(err)
	}
	counts, err := f.s.RunCounts(ctx, f.ada.ID)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(counts) != "map[cancelled:1 queued:1 succeeded:1]" {
		t.Fatalf("counts %v", counts)
	}
	sec, _ := f.s.GPUSecondsInPeriod(ctx, f.ada.ID, f.clock.now())
	if sec != 90 {
		t.Fatalf("gpu seconds %d, want 90", sec)
	}
	if err := f.s.DeleteRun(ctx, f.ada.ID, a.ID); err != nil {
		t.Fatal(err)
	}
	counts, _ = f.s.RunCounts(ctx, f.ada.ID)
	if fmt.Sprint(counts) != "map[cancelled:1 queued:1]" {
		t.Fatalf("counts after delete %v", counts)
	}
	// The purge keeps the ledger, so the month's figure stays.
	f.clock.advance(48 * time.Hour)
	if _, err := f.s.Purge(ctx, f.v, PurgeOptions{DatasetRetention: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if sec, _ := f.s.GPUSecondsInPeriod(ctx, f.ada.ID, f.clock.now()); sec != 90 {
		t.Fatalf("gpu seconds after delete and purge %d, want 90", sec)
	}
	if tomb, err := f.s.RunByID(ctx, a.ID); err != nil || tomb.Name != "" || tomb.Notes != "" || len(tomb.Tags) != 0 {
		t.Fatalf("the purged run keeps its labels: %q %q %v (%v)", tomb.Name, tomb.Notes, tomb.Tags, err)
	}
	if sec, _ := f.s.GPUSecondsInPeriod(ctx, f.ada.ID, f.clock.now().AddDate(0, 1, 0)); sec != 0 {
		t.Fatalf("next month %d, want 0", sec)
	}
	if sec, _ := f.s.GPUSecondsInPeriod(ctx, f.bob.ID, f.clock.now()); sec != 0 {
		t.Fatalf("bob %d", sec)
	}
}

func TestDatasetListPages(t *testing.T) {
	f := newRunFixture(t)
	ctx := context.Background()
	for range 60 {
		if _, err := f.s.CreateDataset(ctx, f.v, NewDataset{UserID: f.ada.ID, Name: "d", Content: strings.NewReader(strings.Join(rows(chatRow, 10), "\n")), MaxSize: 1 << 20}); err != nil {
			t.Fatal(err)
		}
	}
	p, err := f.s.ListDatasets(ctx, f.ada.ID, 0, 0, 50)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Datasets) != 50 || !p.HasOlder || p.HasNewer {
		t.Fatalf("first page: %d older %v newer %v", len(p.Datasets), p.HasOlder, p.HasNewer)
	}
	older, _ := f.s.ListDatasets(ctx, f.ada.ID, p.Datasets[49].ID, 0, 50)
	if len(older.Datasets) != 12 || older.HasOlder || !older.HasNewer { // 60 + the fixture's 2
		t.Fatalf("older page: %d older %v newer %v", len(older.Datasets), older.HasOlder, older.HasNewer)
	}
	newer, _ := f.s.ListDatasets(ctx, f.ada.ID, 0, older.Datasets[0].ID, 50)
	if len(newer.Datasets) != 50 || newer.Datasets[0].ID != p.Datasets[0].ID || newer.HasNewer || !newer.HasOlder {
		t.Fatalf("back: %d first %d", len(newer.Datasets), newer.Datasets[0].ID)
	}
}

package store

import (
	"context"
	"testing"
	"time"
)

func TestFineTuneJobDeployOnceAndOnlyWhenSucceeded(t *testing.T) {
	f := newRunFixture(t)
	ctx := context.Background()
	queued := f.queue(t, "lora", f.chat)
	done := f.finishedRunWithOutput(t, f.chat)
	plain := f.finishedRunWithOutput(t, f.chat) // made on the run form: no job row
	for _, id := range []int64{queued.ID, done.ID} {
		if err := f.s.CreateFineTuneJob(ctx, FineTuneJob{RunID: id, UserID: f.ada.ID, Suffix: "s", Metadata: map[string]string{"k": "v"}}); err != nil {
			t.Fatal(err)
		}
	}
	pending, err := f.s.SucceededUndeployedJobs(ctx)
	if err != nil || len(pending) != 1 || pending[0].RunID != done.ID || pending[0].Suffix != "s" || pending[0].BaseModel != "m" {
		t.Fatalf("pending: %+v %v", pending, err)
	}
	snaps, _ := f.s.Snapshots(ctx, f.ada.ID, done.ID)
	for range 2 { // a second deploy (the sweep and a read at once) changes nothing
		if err := f.s.DeployFineTuneJob(ctx, done.ID, snaps[0].ID, "ft:m:s:ftjob-1", f.clock.now()); err != nil {
			t.Fatal(err)
		}
	}
	deps, _ := f.s.Deployments(ctx, f.ada.ID)
	if len(deps) != 1 || deps[0].Name != "ft:m:s:ftjob-1" || !deps[0].Live() {
		t.Fatalf("deployments: %+v", deps)
	}
	jobs, err := f.s.FineTuneJobs(ctx, f.ada.ID, []int64{queued.ID, done.ID, plain.ID})
	if err != nil || len(jobs) != 2 || jobs[done.ID].FineTunedModel != "ft:m:s:ftjob-1" || !jobs[done.ID].Checked || jobs[queued.ID].Checked ||
		jobs[queued.ID].Metadata["k"] != "v" {
		t.Fatalf("jobs: %+v %v", jobs, err)
	}
	if pending, _ := f.s.SucceededUndeployedJobs(ctx); len(pending) != 0 {
		t.Fatalf("still pending: %+v", pending)
	}
	// Another person sees none of it.
	if theirs, _ := f.s.FineTuneJobs(ctx, f.bob.ID, []int64{done.ID}); len(theirs) != 0 {
		t.Fatalf("another person's job extras: %+v", theirs)
	}
}

func TestJobEventsMergeTimelineAndLogNewestFirst(t *testing.T) {
	f := newRunFixture(t)
	ctx := context.Background()
	r := f.queue(t, "lora", f.chat)
	f.clock.advance(time.Second)
	f.s.ClaimQueuedRun(ctx, "local", []byte("h"))
	f.clock.advance(time.Second)
	f.s.AppendLogs(ctx, r.ID, []string{"one", "two"})
	f.clock.advance(time.Second)
	f.s.FinishRun(ctx, r.ID, RunFailed, "out of memory", f.clock.now())
	var got []string
	var after *JobEventCursor
	for {
		page, more, err := f.s.JobEvents(ctx, r.ID, after, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page {
			got = append(got, string(e.Status)+e.Text)
		}
		if !more {
			break
		}
		last := page[len(page)-1]
		c, err := f.s.JobEventAt(ctx, r.ID, last.FromLog, last.ID)
		if err != nil {
			t.Fatal(err)
		}
		after = &c
	}
	want := []string{"failedout of memory", "two", "one", "starting", "queued"}
	if len(got) != len(want) {
		t.Fatalf("events %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("events %q, want %q", got, want)
		}
	}
	// A cursor from another run is not found.
	other := f.queue(t, "lora", f.chat)
	if _, err := f.s.JobEventAt(ctx, other.ID, false, 1); err != ErrNotFound {
		t.Fatalf("another run's event: %v", err)
	}
}

func TestPurgedRunTakesItsFineTuneJobExtras(t *testing.T) {
	f := newRunFixture(t)
	ctx := context.Background()
	r := f.finishedRunWithOutput(t, f.chat)
	if err := f.s.CreateFineTuneJob(ctx, FineTuneJob{RunID: r.ID, UserID: f.ada.ID, Suffix: "s", Metadata: map[string]string{"secret": "v"}}); err != nil {
		t.Fatal(err)
	}
	if err := f.s.DeleteRun(ctx, f.ada.ID, r.ID); err != nil {
		t.Fatal(err)
	}
	f.clock.advance(30*24*time.Hour + time.Hour)
	if rep, err := f.s.Purge(ctx, f.v, PurgeOptions{}); err != nil || rep.Runs != 1 {
		t.Fatalf("purge: %+v %v", rep, err)
	}
	var n int
	f.s.r.QueryRow("SELECT COUNT(*) FROM fine_tuning_jobs WHERE run_id = ?", r.ID).Scan(&n)
	if n != 0 {
		t.Fatal("the purged run's suffix and metadata are still stored")
	}
}

package handlers

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"

	"tunelab/store"
)

// BenchmarkCheckRules: what evaluating metric rules adds to one stored batch of 1,000
// points (10 metrics x 100 steps, no rule holding), for a run without rules and for one
// with all four. Compare with the ingest of the batch itself (BenchmarkIngestHTTP).
func BenchmarkCheckRules(b *testing.B) {
	ts := newTestServer(b, Config{})
	c := ts.signUp("bench-rules@example.com")
	ds := ts.datasetFor(c, completionLines(20))
	plain := ts.startRun(c, runValues(ds))
	ruled := ts.startRun(c, runValues(ds))
	u := ts.userByEmail("bench-rules@example.com")
	if err := ts.store.SaveMetricRules(context.Background(), u.ID, ruled, []store.MetricRule{
		{Kind: store.RuleNaNLoss, Notify: true}, {Kind: store.RuleEvalLossRising, Threshold: 3, Notify: true},
		{Kind: store.RuleGradNormAbove, Threshold: 1e9, Stop: true}, {Kind: store.RuleStaleMetrics, Threshold: 10, Notify: true}}); err != nil {
		b.Fatal(err)
	}
	a := newApp(Deps{Store: ts.store, SessionStore: ts.store.Sessions(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Runs: Runs{Backend: fakeBackend{}}, Now: ts.clock})
	names := []string{"loss", "learning_rate", "grad_norm", "tokens_per_sec", "epoch", "accuracy", "gpu_util", "gpu_mem", "step_time", "tokens"}
	batch := make([]store.MetricPoint, 0, 1000)
	for s := range 100 {
		for _, n := range names {
			batch = append(batch, store.MetricPoint{Name: n, Step: s, Value: 1})
		}
	}
	for _, run := range []struct {
		name string
		id   int64
	}{{"no-rules", plain}, {"four-rules", ruled}} {
		b.Run(fmt.Sprint(run.name), func(b *testing.B) {
			ctx := context.Background()
			for b.Loop() {
				a.checkRules(ctx, "", run.id, batch)
			}
		})
	}
}

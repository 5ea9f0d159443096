package store

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkClaimNextEval: one claim with 2,000 jobs queued by 10 people (200 each), the
// fair claim against the first-in-first-out one it replaced (the baseline). Each round
// finishes the job and queues it again, so the queue stays as long.
func BenchmarkClaimNextEval(b *testing.B) {
	dir := b.TempDir()
	f := &closeFixture{dir: dir, clock: &testClock{t: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}}
	var err error
	if f.s, err = Open(context.Background(), filepath.Join(dir, "tunelab.db"), Options{Argon2: cheapArgon2, Now: f.clock.now}); err != nil {
		b.Fatal(err)
	}
	defer f.s.Close()
	if f.v, err = NewVault(filepath.Join(dir, "files"), bytes.Repeat([]byte{7}, 32)); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for p := range 10 {
		u, run, snaps := evalPerson(b, f, fmt.Sprintf("bench-%d@example.com", p), 200)
		for _, id := range snaps {
			if err := f.s.QueueSnapshotEval(ctx, u, run, id, 0); err != nil {
				b.Fatal(err)
			}
		}
	}
	fifo := func(ctx context.Context) (SnapshotEval, error) { // the claim of migration 0026's time
		return scanEval(f.s.w.QueryRowContext(ctx, `UPDATE snapshot_evals SET status = 'running', updated_at = ?
			WHERE id = (SELECT id FROM snapshot_evals WHERE status = 'queued' ORDER BY created_at, id LIMIT 1)
			RETURNING `+evalColumns, ms(f.s.now())))
	}
	for _, c := range []struct {
		name  string
		claim func(context.Context) (SnapshotEval, error)
	}{{"fair", f.s.ClaimNextEval}, {"fifo-baseline", fifo}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				job, err := c.claim(ctx)
				if err != nil {
					b.Fatal(err)
				}
				f.s.FinishEval(ctx, job.ID, 1, 1, nullF(0), nullF(0))
				f.s.QueueSnapshotEval(ctx, job.UserID, job.RunID, job.SnapshotID, job.DatasetID)
			}
		})
	}

	// The pick alone (a read, no commit): what the fair order costs over the old one.
	picks := map[string]string{
		"pick-fair": `SELECT j.id FROM snapshot_evals j
			WHERE j.status = 'queued' AND j.user_id = (
				SELECT p.user_id FROM (SELECT DISTINCT user_id FROM snapshot_evals WHERE status = 'queued') p
				ORDER BY (SELECT coalesce(max(t.turn), 0) FROM snapshot_evals t WHERE t.user_id = p.user_id),
					(SELECT min(o.created_at) FROM snapshot_evals o WHERE o.status = 'queued' AND o.user_id = p.user_id),
					p.user_id
				LIMIT 1)
			ORDER BY j.created_at, j.id LIMIT 1`,
		"pick-fifo-baseline": `SELECT id FROM snapshot_evals WHERE status = 'queued' ORDER BY created_at, id LIMIT 1`,
	}
	for _, name := range []string{"pick-fair", "pick-fifo-baseline"} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				var id int64
				if err := f.s.r.QueryRowContext(ctx, picks[name]).Scan(&id); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

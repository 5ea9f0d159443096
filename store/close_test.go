package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// closeFixture is a store in one data directory (database and vault side by side), so a
// test can read every file under it.
type closeFixture struct {
	s     *Store
	v     *Vault
	dir   string
	clock *testClock
}

func newCloseFixture(t *testing.T) *closeFixture {
	t.Helper()
	dir := t.TempDir()
	f := &closeFixture{dir: dir, clock: &testClock{t: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}}
	var err error
	if f.s, err = Open(context.Background(), filepath.Join(dir, "tunelab.db"), Options{Argon2: cheapArgon2, Now: f.clock.now}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.s.Close() })
	if f.v, err = NewVault(filepath.Join(dir, "files"), bytes.Repeat([]byte{7}, 32)); err != nil {
		t.Fatal(err)
	}
	return f
}

// grepDir lists the files under dir that contain marker.
func grepDir(t *testing.T, dir, marker string) []string {
	t.Helper()
	var hits []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if bytes.Contains(b, []byte(marker)) {
			hits = append(hits, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hits
}

// TestClosedAccountLeavesNoByteBehind: a marker in a dataset (its name and rows), a run's
// name, notes, logs and metric name, a snapshot, a worker log and a half-written upload; the
// account closes, the clock passes the reopen window, the purge runs, and no file under the
// data directory (database, -wal, -shm, vault, worker logs) holds the marker.
func TestClosedAccountLeavesNoByteBehind(t *testing.T) {
	f := newCloseFixture(t)
	ctx := context.Background()
	const marker = "MARKER-7f3a9c-privacy"
	workers := filepath.Join(f.dir, "workers")
	os.MkdirAll(workers, 0o700)
	u, err := f.s.CreateUser(ctx, NewUser{Email: "marker7f3a9c@example.com", Password: "close passphrase 1", TermsVersion: "v"})
	if err != nil {
		t.Fatal(err)
	}
	other, _ := f.s.CreateUser(ctx, NewUser{Email: "other@example.com", Password: "close passphrase 2", TermsVersion: "v"})
	row := func(i int) string {
		return `{"messages":[{"role":"user","content":"` + marker + ` question"},{"role":"assistant","content":"answer"}]}`
	}
	d, err := f.s.CreateDataset(ctx, f.v, NewDataset{UserID: u.ID, Name: marker, Content: strings.NewReader(strings.Join(rows(row, 12), "\n")), MaxSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	keep, err := f.s.CreateDataset(ctx, f.v, NewDataset{UserID: other.ID, Name: "kept", Content: strings.NewReader(strings.Join(rows(chatRow, 12), "\n")), MaxSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	run, err := f.s.CreateRun(ctx, NewRun{UserID: u.ID, DatasetID: d.ID, Config: testRunConfig("lora"), Backend: "local", Name: marker})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.s.SetRunLabels(ctx, u.ID, run.ID, RunLabels{Name: marker, Notes: marker}); err != nil {
		t.Fatal(err)
	}
	f.s.ClaimQueuedRun(ctx, "local", []byte("worker-token-hash"))
	f.s.Heartbeat(ctx, run.ID, 0, 10)
	f.clock.advance(10 * time.Second)
	if _, err := f.s.AppendMetrics(ctx, run.ID, []MetricPoint{{Name: "loss_" + marker, Step: 1, Value: 2}}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.AppendLogs(ctx, run.ID, []string{"step 1 " + marker}); err != nil {
		t.Fatal(err)
	}
	snap := []byte(marker + " weights")
	sum := sha256.Sum256(snap)
	if _, err := f.s.CreateSnapshot(ctx, f.v, NewSnapshot{RunID: run.ID, Step: 10, Final: true, SHA256: hex.EncodeToString(sum[:]), MaxBytes: 1 << 20}, bytes.NewReader(snap)); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(workers, workerLogName(run.ID)), []byte("worker says "+marker), 0o600)
	// A half-written upload (the request died): a vault temporary file.
	w, err := f.v.Create()
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(marker))
	if _, _, err := f.s.CreateAPIKey(ctx, u.ID, marker, time.Time{}); err != nil {
		t.Fatal(err)
	}
	f.s.RecordSecurityEvent(ctx, SecurityEvent{Kind: EventSignIn, UserID: u.ID, Email: u.Email, IP: "10.0.0.1", UserAgent: marker})

	closed, err := f.s.CloseAccount(ctx, u.ID, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(closed.Runs) != 1 || closed.Runs[0] != run.ID {
		t.Fatalf("closing stopped runs %v, want [%d]", closed.Runs, run.ID)
	}
	// The worker hears the stop, then finishes; the ledger records its GPU seconds.
	if cancel, err := f.s.Heartbeat(ctx, run.ID, 5, 10); err != nil || !cancel {
		t.Fatalf("heartbeat after close: cancel=%v err=%v, want the stop", cancel, err)
	}
	if _, err := f.s.FinishRun(ctx, run.ID, RunCancelled, "cancelled", f.clock.now()); err != nil {
		t.Fatal(err)
	}
	if keys, _ := f.s.APIKeys(ctx, u.ID); len(keys) != 1 || keys[0].RevokedAt.IsZero() {
		t.Fatalf("API keys after close: %+v, want one revoked", keys)
	}
	// Inside the window nothing is purged.
	f.clock.advance(ReopenWindow - time.Hour)
	if rep, err := f.s.Purge(ctx, f.v, PurgeOptions{WorkerLogDir: workers}); err != nil || rep.Accounts != 0 {
		t.Fatalf("purge inside the reopen window: %+v %v", rep, err)
	}
	f.clock.advance(2 * time.Hour)
	w.Abort() // the upload's request is long gone; its file is the purge's to remove
	w2, _ := f.v.Create()
	w2.Write([]byte(marker))
	f.clock.advance(StaleUploadAge + time.Hour)
	os.Chtimes(filepath.Join(f.dir, "files"), f.clock.now(), f.clock.now())
	rep, err := f.s.Purge(ctx, f.v, PurgeOptions{WorkerLogDir: workers})
	if err != nil || rep.Accounts != 1 {
		t.Fatalf("purge after the window: %+v %v", rep, err)
	}
	w2.Abort()
	if hits := grepDir(t, f.dir, marker); len(hits) > 0 {
		t.Fatalf("the marker is still in %v after the purge", hits)
	}
	if hits := grepDir(t, f.dir, "marker7f3a9c"); len(hits) > 0 {
		t.Fatalf("the email is still in %v after the purge", hits)
	}
	// The other person's dataset is untouched; the kept billing ledger points at a tombstone.
	if _, err := f.s.Dataset(ctx, other.ID, keep.ID); err != nil {
		t.Fatalf("another person's dataset went too: %v", err)
	}
	got, err := f.s.UserByID(ctx, u.ID)
	if err != nil || strings.Contains(got.Email, "marker") {
		t.Fatalf("tombstone: %+v %v", got, err)
	}
	if _, err := f.s.Authenticate(ctx, u.Email, "close passphrase 1"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("sign-in to a purged account: %v", err)
	}
	// The whole job well inside the promise.
	if f.clock.now().Sub(got.ClosedAt) > AccountPurgeLimit {
		t.Fatal("purged later than promised")
	}
}

func TestReopenOnlyInsideTheWindow(t *testing.T) {
	f := newCloseFixture(t)
	ctx := context.Background()
	u, _ := f.s.CreateUser(ctx, NewUser{Email: "reopen@example.com", Password: "close passphrase 1", TermsVersion: "v"})
	if _, err := f.s.CloseAccount(ctx, u.ID, u.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.CloseAccount(ctx, u.ID, u.ID); !errors.Is(err, ErrAccountClosed) {
		t.Fatalf("closing twice: %v", err)
	}
	got, _ := f.s.UserByID(ctx, u.ID)
	if got.ClosedAt.IsZero() || !f.s.CanReopen(got.ClosedAt) {
		t.Fatalf("closed account: %+v", got)
	}
	f.clock.advance(ReopenWindow - time.Minute)
	if err := f.s.ReopenAccount(ctx, u.ID); err != nil {
		t.Fatalf("reopen on day 13: %v", err)
	}
	f.s.CloseAccount(ctx, u.ID, u.ID)
	f.clock.advance(ReopenWindow + time.Minute)
	got, _ = f.s.UserByID(ctx, u.ID)
	if f.s.CanReopen(got.ClosedAt) {
		t.Fatal("CanReopen after the window")
	}
	if err := f.s.ReopenAccount(ctx, u.ID); !errors.Is(err, ErrAccountClosed) {
		t.Fatalf("reopen after the window: %v", err)
	}
	var actions []string
	entries, _ := f.s.AuditFor(ctx, u.ID, 10)
	for _, e := range entries {
		actions = append(actions, e.Action)
	}
	if strings.Join(actions, ",") != "account_closed,account_reopened,account_closed" {
		t.Fatalf("audit log: %v", actions)
	}
}

// TestAuditLogIsAppendOnly: the database itself refuses to change or remove an entry.
func TestAuditLogIsAppendOnly(t *testing.T) {
	f := newCloseFixture(t)
	ctx := context.Background()
	if err := f.s.RecordAudit(ctx, AuditEntry{ActorID: 1, SubjectID: 1, Action: AuditRunDeleted, Target: "run 4"}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"UPDATE audit_log SET target = 'x'", "DELETE FROM audit_log"} {
		if _, err := f.s.w.ExecContext(ctx, q); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Fatalf("%s: %v, want refused", q, err)
		}
	}
	all, _ := f.s.RecentAudit(ctx, 10)
	if len(all) != 1 || all[0].Target != "run 4" {
		t.Fatalf("audit log: %+v", all)
	}
}

// TestEveryTableHasAPurgeDecision: each table says what purging a closed account does
// with it, so a new table cannot hold someone's data past the promise unnoticed.
func TestEveryTableHasAPurgeDecision(t *testing.T) {
	f := newCloseFixture(t)
	tables, err := column[string](context.Background(), f.s, "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range tables {
		if accountTables[name] == "" {
			t.Errorf("table %s: no decision in accountTables (store/close.go) for a closed account's purge", name)
		}
	}
}

// TestDeletedRunAndDatasetLeaveNoByteBehind: the same marker grep after the owner deletes
// a run (with its snapshot and worker log) and a dataset, without closing the account.
func TestDeletedRunAndDatasetLeaveNoByteBehind(t *testing.T) {
	f := newCloseFixture(t)
	ctx := context.Background()
	const marker = "MARKER-51c2e0-delete"
	workers := filepath.Join(f.dir, "workers")
	os.MkdirAll(workers, 0o700)
	u, _ := f.s.CreateUser(ctx, NewUser{Email: "keeps@example.com", Password: "close passphrase 1", TermsVersion: "v"})
	d, err := f.s.CreateDataset(ctx, f.v, NewDataset{UserID: u.ID, Name: marker, Content: strings.NewReader(strings.Join(rows(chatRow, 12), "\n")), MaxSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	run, err := f.s.CreateRun(ctx, NewRun{UserID: u.ID, DatasetID: d.ID, Config: testRunConfig("lora"), Backend: "local", Name: marker})
	if err != nil {
		t.Fatal(err)
	}
	f.s.SetRunLabels(ctx, u.ID, run.ID, RunLabels{Name: marker, Notes: marker})
	f.s.ClaimQueuedRun(ctx, "local", []byte("worker-token-hash"))
	f.s.Heartbeat(ctx, run.ID, 0, 10)
	f.s.AppendLogs(ctx, run.ID, []string{marker})
	f.s.AppendMetrics(ctx, run.ID, []MetricPoint{{Name: "m_" + marker, Step: 1, Value: 1}})
	snap := []byte(marker)
	sum := sha256.Sum256(snap)
	if _, err := f.s.CreateSnapshot(ctx, f.v, NewSnapshot{RunID: run.ID, Step: 1, Final: true, SHA256: hex.EncodeToString(sum[:]), MaxBytes: 1 << 20}, bytes.NewReader(snap)); err != nil {
		t.Fatal(err)
	}
	f.s.FinishRun(ctx, run.ID, RunSucceeded, "", f.clock.now())
	os.WriteFile(filepath.Join(workers, workerLogName(run.ID)), []byte(marker), 0o600)
	if err := f.s.DeleteRun(ctx, u.ID, run.ID); err != nil {
		t.Fatal(err)
	}
	if err := f.s.DeleteDataset(ctx, u.ID, d.ID); err != nil {
		t.Fatal(err)
	}
	f.clock.advance(PurgeDelay + time.Hour)
	rep, err := f.s.Purge(ctx, f.v, PurgeOptions{WorkerLogDir: workers})
	if err != nil || rep.Runs != 1 || rep.Datasets != 1 {
		t.Fatalf("purge: %+v %v", rep, err)
	}
	if hits := grepDir(t, f.dir, marker); len(hits) > 0 {
		t.Fatalf("the marker is still in %v after the purge", hits)
	}
	if n, _ := os.ReadDir(filepath.Join(f.dir, "files")); len(n) != 0 {
		t.Fatalf("vault files left: %d", len(n))
	}
}

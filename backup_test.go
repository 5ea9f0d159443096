package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tunelab/store"
)

// tableCounts counts the rows of every table of the database at path.
func tableCounts(t *testing.T, st *store.Store) map[string]int64 {
	t.Helper()
	counts, err := st.TableCounts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return counts
}

// TestBackupRestoreDrill: back up while the store is open and written to, destroy the data
// directory, restore, and compare every table's row count and a dataset's decrypted bytes.
// Old backups are pruned; an expired backup and a restore over a database are refused.
func TestBackupRestoreDrill(t *testing.T) {
	ctx := context.Background()
	dataDir, backups := filepath.Join(t.TempDir(), "data"), t.TempDir()
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	os.MkdirAll(dataDir, 0o700)
	st, err := store.Open(ctx, dbPath(dataDir), store.Options{Now: clock, Argon2: store.Argon2Params{Time: 1, Memory: 64, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	vault, err := store.NewVault(filepath.Join(dataDir, "files"), make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	u, err := st.CreateUser(ctx, store.NewUser{Email: "drill@example.com", Password: "drill passphrase 1", TermsVersion: "v"})
	if err != nil {
		t.Fatal(err)
	}
	content := `{"prompt":"a","completion":"b"}` + "\n" + `{"prompt":"c","completion":"d"}`
	d, err := st.CreateDataset(ctx, vault, store.NewDataset{UserID: u.ID, Name: "drill", Content: strings.NewReader(strings.Join([]string{content, content, content, content, content}, "\n")), MaxSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	// Backups older than the retention go, younger ones stay.
	old := filepath.Join(backups, backupPrefix+now.Add(-BackupRetention-time.Hour).Format(backupTimeFormat))
	young := filepath.Join(backups, backupPrefix+now.Add(-BackupRetention+time.Hour).Format(backupTimeFormat))
	os.MkdirAll(old, 0o700)
	os.MkdirAll(young, 0o700)

	var out bytes.Buffer
	if err := runBackup(ctx, []string{"--data", dataDir, backups}, func(string) string { return "" }, &out, clock); err != nil {
		t.Fatal(err)
	}
	// The server keeps writing after the backup: not in the copy.
	st.CreateUser(ctx, store.NewUser{Email: "after@example.com", Password: "drill passphrase 2", TermsVersion: "v"})
	want := tableCounts(t, st)
	want["users"]--     // the account made after the backup
	want["audit_log"]-- // the backup's own entry, written after the copy
	list := sortedBackups(backups)
	if len(list) != 2 || list[0] != filepath.Base(young) {
		t.Fatalf("backups after pruning: %v (old %s)", list, filepath.Base(old))
	}
	taken := filepath.Join(backups, list[1])
	st.Close()

	// Disaster: the data directory is gone.
	if err := os.RemoveAll(dataDir); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := runRestore(ctx, []string{"--data", dataDir, taken}, func(string) string { return "" }, &out, clock); err != nil {
		t.Fatal(err)
	}
	st2, err := store.Open(ctx, dbPath(dataDir), store.Options{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	got := tableCounts(t, st2)
	got["audit_log"]-- // the restore's own entry
	for table, n := range want {
		if got[table] != n {
			t.Errorf("table %s: %d rows after restore, %d at the backup", table, got[table], n)
		}
	}
	if err := store.IntegrityCheck(ctx, dbPath(dataDir)); err != nil {
		t.Fatal(err)
	}
	vault2, _ := store.NewVault(filepath.Join(dataDir, "files"), make([]byte, 32))
	d2, err := st2.Dataset(ctx, u.ID, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := vault2.Open(d2.FileID)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if !strings.Contains(string(b), `"completion":"d"`) {
		t.Fatalf("restored dataset reads %q", b)
	}

	// A restore over a database is refused; so is a backup past the retention.
	if err := runRestore(ctx, []string{"--data", dataDir, taken}, func(string) string { return "" }, &out, clock); err == nil || !strings.Contains(err.Error(), "move it away") {
		t.Fatalf("restore over a database: %v", err)
	}
	later := func() time.Time { return now.Add(BackupRetention + time.Hour) }
	if err := runRestore(ctx, []string{"--data", filepath.Join(t.TempDir(), "d"), taken}, func(string) string { return "" }, &out, later); err == nil || !strings.Contains(err.Error(), "past the") {
		t.Fatalf("restore of an expired backup: %v", err)
	}
	if BackupRetention+store.PurgeDelay > 30*24*time.Hour || BackupRetention+store.ReopenWindow > store.AccountPurgeLimit {
		t.Fatal(fmt.Sprint("backup retention outlives a deletion promise: ", BackupRetention))
	}
}

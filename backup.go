package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"tunelab/store"
)

// Backups (README "Your data: export, close, backups"). `tunelab backup DIR` writes
// DIR/tunelab-<UTC time>/ with the database (VACUUM INTO: consistent while the server
// runs) and the vault's encrypted files, then deletes backups in DIR older than
// BackupRetention, so no backup outlives the deletion windows the product promises. The
// secret key is never copied into a backup: keep it apart (TUNELAB_SECRET_KEY).

// BackupRetention is how long a backup is kept, and the oldest one restore accepts. A run
// deleted is purged after store.PurgeDelay; a backup taken just before then is gone 21
// days later, inside the 30-day promise for runs and snapshots, and a closed account
// (purged after store.ReopenWindow) is gone from backups within 35 days, inside 90.
const BackupRetention = 21 * 24 * time.Hour

const backupPrefix = "tunelab-"
const backupTimeFormat = "20060102T150405Z"

func dataDirFlag(fs *flag.FlagSet) *string {
	return fs.String("data", "", "data directory (default TUNELAB_DATA_DIR or ./data)")
}

func resolveDataDir(flagValue string, getenv func(string) string) string {
	if flagValue != "" {
		return flagValue
	}
	if d := getenv("TUNELAB_DATA_DIR"); d != "" {
		return d
	}
	return "./data"
}

// runBackup is `tunelab backup [--data D] DIR`.
func runBackup(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer, now func() time.Time) error {
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	data := dataDirFlag(fs)
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		return errors.New("backup: usage: tunelab backup [--data DIR] BACKUP_DIR")
	}
	dataDir, dest := resolveDataDir(*data, getenv), fs.Arg(0)
	if _, err := os.Stat(dbPath(dataDir)); err != nil {
		return fmt.Errorf("backup: no database in %s: %w", dataDir, err)
	}
	if err := os.MkdirAll(dest, 0o700); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	at := now().UTC()
	final := filepath.Join(dest, backupPrefix+at.Format(backupTimeFormat))
	partial := final + ".partial"
	os.RemoveAll(partial) // a backup cut short earlier
	if err := os.MkdirAll(partial, 0o700); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	st, err := store.Open(ctx, dbPath(dataDir), store.Options{Now: now})
	if err != nil {
		return err
	}
	defer st.Close()
	// The database first: a vault file is written before the row naming it, so every file
	// the copy names exists by now (unless purged since, which the copy would purge too).
	if err := st.BackupTo(ctx, filepath.Join(partial, "tunelab.db")); err != nil {
		return err
	}
	n, err := copyTree(filepath.Join(dataDir, "files"), filepath.Join(partial, "files"))
	if err != nil {
		return fmt.Errorf("backup: vault files: %w", err)
	}
	if err := store.IntegrityCheck(ctx, filepath.Join(partial, "tunelab.db")); err != nil {
		return fmt.Errorf("backup: the copy failed its check: %w", err)
	}
	if err := os.Rename(partial, final); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := st.RecordAudit(ctx, store.AuditEntry{Action: store.AuditBackupTaken, Target: filepath.Base(final)}); err != nil {
		return err
	}
	pruned, err := pruneBackups(dest, at)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "backed up to %s (%d vault files); removed %d backups older than %d days\n",
		final, n, pruned, int(BackupRetention/(24*time.Hour)))
	return nil
}

// backupTime reads the time in a backup folder's name.
func backupTime(name string) (time.Time, bool) {
	if !strings.HasPrefix(name, backupPrefix) {
		return time.Time{}, false
	}
	t, err := time.Parse(backupTimeFormat, strings.TrimPrefix(name, backupPrefix))
	return t, err == nil
}

// pruneBackups deletes the backups in dir older than BackupRetention at now.
func pruneBackups(dir string, now time.Time) (int, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("backup: prune: %w", err)
	}
	n := 0
	for _, e := range entries {
		t, ok := backupTime(e.Name())
		if !ok || !e.IsDir() || now.Sub(t) <= BackupRetention {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return n, fmt.Errorf("backup: prune %s: %w", e.Name(), err)
		}
		n++
	}
	return n, nil
}

// runRestore is `tunelab restore [--data D] BACKUP`: the server must be stopped, and the
// data directory must hold no database (move the old one away first).
func runRestore(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer, now func() time.Time) error {
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	data := dataDirFlag(fs)
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		return errors.New("restore: usage: tunelab restore [--data DIR] BACKUP_DIR/tunelab-<time>")
	}
	dataDir, src := resolveDataDir(*data, getenv), filepath.Clean(fs.Arg(0))
	t, ok := backupTime(filepath.Base(src))
	if !ok {
		return fmt.Errorf("restore: %s is not a backup folder (tunelab-<time>)", src)
	}
	// An expired backup is beyond use: restoring it could bring back data whose deletion
	// was promised.
	if age := now().Sub(t); age > BackupRetention {
		return fmt.Errorf("restore: %s is %d days old, past the %d days a backup may be used; it should have been deleted",
			filepath.Base(src), int(age/(24*time.Hour)), int(BackupRetention/(24*time.Hour)))
	}
	if err := store.IntegrityCheck(ctx, filepath.Join(src, "tunelab.db")); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if _, err := os.Stat(dbPath(dataDir)); err == nil {
		return fmt.Errorf("restore: %s exists; stop the server and move it away first", dbPath(dataDir))
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	for _, side := range []string{"-wal", "-shm"} { // left from a database moved away
		os.Remove(dbPath(dataDir) + side)
	}
	n, err := copyTree(filepath.Join(src, "files"), filepath.Join(dataDir, "files"))
	if err != nil {
		return fmt.Errorf("restore: vault files: %w", err)
	}
	if err := copyFile(filepath.Join(src, "tunelab.db"), dbPath(dataDir)+".partial"); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if err := os.Rename(dbPath(dataDir)+".partial", dbPath(dataDir)); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	st, err := store.Open(ctx, dbPath(dataDir), store.Options{Now: now})
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.RecordAudit(ctx, store.AuditEntry{Action: store.AuditBackupRestored, Target: filepath.Base(src)}); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "restored %s into %s (%d vault files)\n", filepath.Base(src), dataDir, n)
	return nil
}

// copyTree copies the regular files under src into dst (made if needed); a missing src
// copies nothing. Vault temporary files (half-written uploads) are left out.
func copyTree(src, dst string) (int, error) {
	n := 0
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && p == src {
			return filepath.SkipAll
		}
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o700)
		}
		if !d.Type().IsRegular() || strings.HasPrefix(d.Name(), ".") {
			return nil
		}
		if err := copyFile(p, filepath.Join(dst, rel)); err != nil {
			return err
		}
		n++
		return nil
	})
	return n, err
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// sortedBackups lists the backup folders in dir, oldest first (for tests and operators).
func sortedBackups(dir string) []string {
	entries, _ := os.ReadDir(dir)
	var out []string
	for _, e := range entries {
		if _, ok := backupTime(e.Name()); ok && e.IsDir() {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out
}

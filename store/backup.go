package store

import (
	"context"
	"database/sql"
	"fmt"
	"os"
)

// BackupTo writes a consistent copy of the database to path with VACUUM INTO: one read
// transaction, so the copy is a single point in time even while the server writes, and a
// single file with no WAL beside it. path must not exist.
func (s *Store) BackupTo(ctx context.Context, path string) error {
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("store: backup: %s exists already", path)
	}
	if _, err := s.w.ExecContext(ctx, "VACUUM INTO ?", path); err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	return nil
}

// IntegrityCheck opens the database file at path read-only and runs PRAGMA integrity_check.
func IntegrityCheck(ctx context.Context, path string) error {
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		return err
	}
	defer db.Close()
	var res string
	if err := db.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&res); err != nil {
		return fmt.Errorf("store: integrity check of %s: %w", path, err)
	}
	if res != "ok" {
		return fmt.Errorf("store: integrity check of %s: %s", path, res)
	}
	return nil
}

// TableCounts counts the rows of every table (the restore drill compares them).
func (s *Store) TableCounts(ctx context.Context) (map[string]int64, error) {
	names, err := column[string](ctx, s, "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
	if err != nil {
		return nil, err
	}
	out := make(map[string]int64, len(names))
	for _, n := range names {
		var c int64
		if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM "`+n+`"`).Scan(&c); err != nil {
			return nil, fmt.Errorf("store: count %s: %w", n, err)
		}
		out[n] = c
	}
	return out, nil
}

package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// UsagePeriod is the billing period containing t: its calendar month in UTC, "2026-11".
func UsagePeriod(t time.Time) string { return t.UTC().Format("2006-01") }

// GPUSecondsInPeriod is the GPU seconds the usage ledger holds for the user's runs that
// ended in the calendar month (UTC) containing t. It reads the per-month total the
// database keeps as the ledger grows, so it costs one row however many runs there are,
// and deleting or purging a run never lowers it (the ledger is a billing record).
func (s *Store) GPUSecondsInPeriod(ctx context.Context, userID int64, t time.Time) (int64, error) {
	var n int64
	stmt, err := s.cachedStmt(ctx, "SELECT seconds FROM usage_monthly WHERE user_id = ? AND period = ?")
	if err == nil {
		err = stmt.QueryRowContext(ctx, userID, UsagePeriod(t)).Scan(&n)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("store: gpu seconds in period: %w", err)
	}
	return n, nil
}

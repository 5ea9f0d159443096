package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// SecurityFilter narrows the admin review's list of events; zero fields do not filter.
type SecurityFilter struct {
	Email string // exact account email, or what was typed for an unknown one
	IP    string
	Kind  string
	From  time.Time // inclusive
	To    time.Time // exclusive
	Limit int
}

// SearchSecurityEvents returns the newest events that match f.
func (s *Store) SearchSecurityEvents(ctx context.Context, f SecurityFilter) ([]SecurityEvent, error) {
	where, args := securityWhere(f)
	if f.Limit <= 0 {
		f.Limit = 200
	}
	rows, err := s.r.QueryContext(ctx, "SELECT "+securityEventColumns+" FROM security_events"+where+" ORDER BY id DESC LIMIT ?", append(args, f.Limit)...)
	if err != nil {
		return nil, fmt.Errorf("store: search security events: %w", err)
	}
	defer rows.Close()
	return scanSecurityEvents(rows)
}

func securityWhere(f SecurityFilter) (string, []any) {
	var conds []string
	var args []any
	add := func(cond string, arg any) { conds, args = append(conds, cond), append(args, arg) }
	if f.Email != "" {
		add("email = ?", strings.ToLower(strings.TrimSpace(f.Email)))
	}
	if f.IP != "" {
		add("ip = ?", f.IP)
	}
	if f.Kind != "" {
		add("kind = ?", f.Kind)
	}
	if !f.From.IsZero() {
		add("created_at >= ?", ms(f.From))
	}
	if !f.To.IsZero() {
		add("created_at < ?", ms(f.To))
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

// FailureCount is how many failures one account or address had, and when the last was.
type FailureCount struct {
	Key   string
	Count int64
	Last  time.Time
}

// SecurityFailures counts events of the given kinds since a time, grouped by the account
// email and by the IP address, most first.
func (s *Store) SecurityFailures(ctx context.Context, kinds []string, since time.Time) (byAccount, byIP []FailureCount, err error) {
	if len(kinds) == 0 {
		return nil, nil, nil
	}
	marks := strings.TrimSuffix(strings.Repeat("?,", len(kinds)), ",")
	args := []any{ms(since)}
	for _, k := range kinds {
		args = append(args, k)
	}
	group := func(col string) ([]FailureCount, error) {
		rows, err := s.r.QueryContext(ctx, `SELECT `+col+`, COUNT(*), MAX(created_at) FROM security_events
			WHERE created_at >= ? AND kind IN (`+marks+`) AND `+col+` <> '' GROUP BY 1 ORDER BY 2 DESC, 3 DESC LIMIT 20`, args...)
		if err != nil {
			return nil, fmt.Errorf("store: security failures: %w", err)
		}
		defer rows.Close()
		var out []FailureCount
		for rows.Next() {
			var c FailureCount
			var last int64
			if err := rows.Scan(&c.Key, &c.Count, &last); err != nil {
				return nil, fmt.Errorf("store: security failures: %w", err)
			}
			c.Last = fromMS(last)
			out = append(out, c)
		}
		return out, rows.Err()
	}
	if byAccount, err = group("email"); err != nil {
		return nil, nil, err
	}
	byIP, err = group("ip")
	return byAccount, byIP, err
}

// NewCountrySignIns returns sign-ins since a time from a country the account had not signed
// up or signed in from before (within the kept telemetry), newest first.
func (s *Store) NewCountrySignIns(ctx context.Context, since time.Time, limit int) ([]SecurityEvent, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+securityEventColumns+` FROM security_events e
		WHERE e.kind = 'signin' AND e.country <> '' AND e.user_id IS NOT NULL AND e.created_at >= ?
		AND EXISTS (SELECT 1 FROM security_events p WHERE p.user_id = e.user_id AND p.kind IN ('signin', 'signup')
			AND p.country <> '' AND p.id < e.id)
		AND NOT EXISTS (SELECT 1 FROM security_events p WHERE p.user_id = e.user_id AND p.kind IN ('signin', 'signup')
			AND p.country = e.country AND p.id < e.id)
		ORDER BY e.id DESC LIMIT ?`, ms(since), limit)
	if err != nil {
		return nil, fmt.Errorf("store: new country sign-ins: %w", err)
	}
	defer rows.Close()
	return scanSecurityEvents(rows)
}

// SuspendAccount marks an account suspended and ends all its sessions, in one transaction.
// Suspending a suspended account changes nothing. Its runs are stopped by the caller.
func (s *Store) SuspendAccount(ctx context.Context, userID, byID int64) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var exists bool
		if err := tx.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM users WHERE id = ?)", userID).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			return ErrNotFound
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO account_suspensions (user_id, suspended_at, suspended_by)
			VALUES (?, ?, ?) ON CONFLICT (user_id) DO NOTHING`, userID, ms(s.now()), byID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, "DELETE FROM sessions WHERE user_id = ?", userID)
		return err
	})
	if errors.Is(err, ErrNotFound) {
		return err
	}
	if err != nil {
		return fmt.Errorf("store: suspend account: %w", err)
	}
	return nil
}

// UnsuspendAccount lifts a suspension; it reports whether there was one.
func (s *Store) UnsuspendAccount(ctx context.Context, userID int64) (bool, error) {
	res, err := s.w.ExecContext(ctx, "DELETE FROM account_suspensions WHERE user_id = ?", userID)
	if err != nil {
		return false, fmt.Errorf("store: unsuspend account: %w", err)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// AccountSuspended reports whether an account is suspended.
func (s *Store) AccountSuspended(ctx context.Context, userID int64) (bool, error) {
	var yes bool
	if err := s.r.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM account_suspensions WHERE user_id = ?)", userID).Scan(&yes); err != nil {
		return false, fmt.Errorf("store: account suspended: %w", err)
	}
	return yes, nil
}

// SuspendedAccounts returns the ids of every suspended account and when each was suspended.
func (s *Store) SuspendedAccounts(ctx context.Context) (map[int64]time.Time, error) {
	rows, err := s.r.QueryContext(ctx, "SELECT user_id, suspended_at FROM account_suspensions")
	if err != nil {
		return nil, fmt.Errorf("store: suspended accounts: %w", err)
	}
	defer rows.Close()
	out := map[int64]time.Time{}
	for rows.Next() {
		var id, at int64
		if err := rows.Scan(&id, &at); err != nil {
			return nil, fmt.Errorf("store: suspended accounts: %w", err)
		}
		out[id] = fromMS(at)
	}
	return out, rows.Err()
}

// UnfinishedRunIDs returns the ids of a person's runs that have not ended.
func (s *Store) UnfinishedRunIDs(ctx context.Context, userID int64) ([]int64, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id FROM runs WHERE user_id = ? AND deleted_at IS NULL
		AND status NOT IN ('succeeded', 'failed', 'cancelled')`, userID)
	if err != nil {
		return nil, fmt.Errorf("store: unfinished runs: %w", err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("store: unfinished runs: %w", err)
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// SecurityEventDaily returns the daily counts the purge kept, keyed "day kind country".
func (s *Store) SecurityEventDaily(ctx context.Context) ([]Count, error) {
	var out []Count
	err := s.scanCounts(ctx, `SELECT day || ' ' || kind || ' ' || country, count FROM security_event_daily ORDER BY day, kind, country`,
		func(k string, n int64) { out = append(out, Count{Key: k, Count: n}) })
	return out, err
}

package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Analytics event kinds.
const (
	AnalyticsView   = "view"
	AnalyticsClick  = "click"
	AnalyticsScroll = "scroll"
)

// AnalyticsRetention is how long raw analytics rows are kept; daily counts stay after.
const AnalyticsRetention = 90 * 24 * time.Hour

// AnalyticsEvent is one raw analytics row. There is no IP field: the visitor is a hash with a
// salt that lives one day in memory, and the country is all that is kept of the address.
type AnalyticsEvent struct {
	Kind     string
	Visitor  string
	Path     string
	Target   string // clicks: the element's data-track name
	Depth    int    // scrolls: furthest point reached, percent
	Referrer string // the outside site's host, or ""
	Device   string // phone, tablet, desktop
	Country  string // ISO code, or "" when unknown
}

// RecordAnalytics appends one event.
func (s *Store) RecordAnalytics(ctx context.Context, e AnalyticsEvent) error {
	if e.Kind != AnalyticsView && e.Kind != AnalyticsClick && e.Kind != AnalyticsScroll {
		return fmt.Errorf("store: record analytics: unknown kind %q", e.Kind)
	}
	e.Depth = min(max(e.Depth, 0), 100)
	_, err := s.w.ExecContext(ctx, `INSERT INTO analytics_events
		(created_at, visitor, kind, path, target, depth, referrer, device, country) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		ms(s.now()), clip(e.Visitor, 64), e.Kind, clip(e.Path, 256), clip(e.Target, 64), e.Depth,
		clip(e.Referrer, 128), clip(e.Device, 16), clip(e.Country, 8))
	if err != nil {
		return fmt.Errorf("store: record analytics: %w", err)
	}
	return nil
}

// Count is a key and how often it occurred.
type Count struct {
	Key   string
	Count int64
}

// DayCount is one day's number, day as YYYY-MM-DD.
type DayCount struct {
	Day   string
	Count int64
}

// AnalyticsReport is what the admin analytics page shows for a window of days.
type AnalyticsReport struct {
	Views     []DayCount // page views per day, oldest first, days without views included
	Visitors  []DayCount
	Pages     []Count
	Referrers []Count
	Devices   []Count
	Countries []Count
	Clicks    []Count
	Scroll    []Count // key: "25", "50", "75", "100": visits that scrolled at least that far
}

// analyticsMetrics are the per-key counts, the SQL expression each groups by, and the
// condition of the rows that count.
var analyticsMetrics = []struct{ metric, key, where string }{
	{"page", "path", "kind = 'view'"},
	{"referrer", "referrer", "kind = 'view' AND referrer <> ''"},
	{"device", "device", "kind = 'view'"},
	{"country", "country", "kind = 'view'"},
	{"click", "target", "kind = 'click'"},
	{"scroll", `CASE WHEN depth >= 100 THEN '100' WHEN depth >= 75 THEN '75' WHEN depth >= 50 THEN '50' WHEN depth >= 25 THEN '25' ELSE '0' END`, "kind = 'scroll'"},
}

const dayExpr = `strftime('%Y-%m-%d', created_at / 1000, 'unixepoch')`

// Analytics counts the last days days (today included), from the raw rows and, for days
// already purged, from the daily counts.
func (s *Store) Analytics(ctx context.Context, days int) (AnalyticsReport, error) {
	now := s.now().UTC()
	first := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC).AddDate(0, 0, -(days - 1))
	from, fromDay := ms(first), first.Format(time.DateOnly)
	var rep AnalyticsReport
	perDay := func(metric, expr string) ([]DayCount, error) {
		q := `SELECT day, SUM(n) FROM (
			SELECT ` + dayExpr + ` AS day, ` + expr + ` AS n FROM analytics_events WHERE kind = 'view' AND created_at >= ? GROUP BY day
			UNION ALL SELECT day, count FROM analytics_daily WHERE metric = ? AND key = '' AND day >= ?
		) GROUP BY day`
		got := map[string]int64{}
		if err := s.scanCounts(ctx, q, func(k string, n int64) { got[k] += n }, from, metric, fromDay); err != nil {
			return nil, err
		}
		out := make([]DayCount, days)
		for i := range days {
			d := first.AddDate(0, 0, i).Format(time.DateOnly)
			out[i] = DayCount{Day: d, Count: got[d]}
		}
		return out, nil
	}
	var err error
	if rep.Views, err = perDay("views", "COUNT(*)"); err != nil {
		return rep, err
	}
	if rep.Visitors, err = perDay("visitors", "COUNT(DISTINCT visitor)"); err != nil {
		return rep, err
	}
	targets := []*[]Count{&rep.Pages, &rep.Referrers, &rep.Devices, &rep.Countries, &rep.Clicks, &rep.Scroll}
	for i, m := range analyticsMetrics {
		q := `SELECT key, SUM(n) AS total FROM (
			SELECT ` + m.key + ` AS key, COUNT(*) AS n FROM analytics_events WHERE ` + m.where + ` AND created_at >= ? GROUP BY key
			UNION ALL SELECT key, count FROM analytics_daily WHERE metric = ? AND day >= ?
		) GROUP BY key ORDER BY total DESC, key LIMIT 20`
		if err := s.scanCounts(ctx, q, func(k string, n int64) { *targets[i] = append(*targets[i], Count{k, n}) }, from, m.metric, fromDay); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

func (s *Store) scanCounts(ctx context.Context, q string, add func(string, int64), args ...any) error {
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("store: analytics: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k string
		var n int64
		if err := rows.Scan(&k, &n); err != nil {
			return fmt.Errorf("store: analytics: %w", err)
		}
		add(k, n)
	}
	return rows.Err()
}

// PurgeAnalytics folds raw analytics older than AnalyticsRetention into daily counts and
// deletes the raw rows, one day at a time in one transaction each, so a day is never counted
// twice and a stop halfway loses nothing. It returns how many raw rows went.
func (s *Store) PurgeAnalytics(ctx context.Context) (int64, error) {
	cutoff := ms(s.now().Add(-AnalyticsRetention))
	var total int64
	for {
		var oldest sql.NullInt64
		if err := s.r.QueryRowContext(ctx, "SELECT MIN(created_at) FROM analytics_events WHERE created_at < ?", cutoff).Scan(&oldest); err != nil {
			return total, fmt.Errorf("store: purge analytics: %w", err)
		}
		if !oldest.Valid {
			return total, nil
		}
		day := fromMS(oldest.Int64)
		start := time.Date(day.Year(), day.Month(), day.Day(), 0, 0, 0, 0, time.UTC)
		end := min(ms(start.AddDate(0, 0, 1)), cutoff) // the rest of the day waits its turn
		var n int64
		err := s.tx(ctx, func(tx *sql.Tx) error {
			upsert := ` ON CONFLICT (day, metric, key) DO UPDATE SET count = count + excluded.count`
			span := ` created_at >= ? AND created_at < ?`
			if _, err := tx.ExecContext(ctx, `INSERT INTO analytics_daily (day, metric, key, count)
				SELECT `+dayExpr+`, 'views', '', COUNT(*) FROM analytics_events WHERE kind = 'view' AND`+span+` GROUP BY 1`+upsert,
				ms(start), end); err != nil {
				return err
			}
			// Visitor hashes are per day, so a day's distinct visitors can be counted only once;
			// a day split by the cutoff adds its later part's visitors separately.
			if _, err := tx.ExecContext(ctx, `INSERT INTO analytics_daily (day, metric, key, count)
				SELECT `+dayExpr+`, 'visitors', '', COUNT(DISTINCT visitor) FROM analytics_events WHERE kind = 'view' AND`+span+` GROUP BY 1`+upsert,
				ms(start), end); err != nil {
				return err
			}
			for _, m := range analyticsMetrics {
				if _, err := tx.ExecContext(ctx, `INSERT INTO analytics_daily (day, metric, key, count)
					SELECT `+dayExpr+`, '`+m.metric+`', `+m.key+`, COUNT(*) FROM analytics_events WHERE `+m.where+` AND`+span+` GROUP BY 1, 3`+upsert,
					ms(start), end); err != nil {
					return err
				}
			}
			res, err := tx.ExecContext(ctx, "DELETE FROM analytics_events WHERE"+span, ms(start), end)
			if err != nil {
				return err
			}
			n, _ = res.RowsAffected()
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("store: purge analytics: %w", err)
		}
		total += n
	}
}

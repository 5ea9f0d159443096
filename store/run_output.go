package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// MetricPoint is one value of one metric at one training step. ID orders points for
// live streams; it is 0 until stored.
type MetricPoint struct {
	ID    int64     `json:"id,omitempty"`
	Name  string    `json:"name"`
	Step  int       `json:"step"`
	Value float64   `json:"value"`
	At    time.Time `json:"-"`
}

// AppendMetrics stores a batch in one transaction and returns the points that were new,
// with their ids; a point already stored for that metric and step is skipped, so a worker
// may resend a batch it is not sure arrived.
func (s *Store) AppendMetrics(ctx context.Context, runID int64, pts []MetricPoint) ([]MetricPoint, error) {
	now := ms(s.now())
	var added []MetricPoint
	err := s.tx(ctx, func(tx *sql.Tx) error {
		added = added[:0]
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO metrics (run_id, name, step, value, at) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (run_id, name, step) DO NOTHING RETURNING id`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, p := range pts {
			var id int64
			err := stmt.QueryRowContext(ctx, runID, p.Name, p.Step, p.Value, now).Scan(&id)
			if err == sql.ErrNoRows {
				continue
			}
			if err != nil {
				return err
			}
			p.ID, p.At = id, fromMS(now)
			added = append(added, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: append metrics: %w", err)
	}
	return added, nil
}

// Metrics returns a run's points with id > afterID in id order, at most limit of them.
func (s *Store) Metrics(ctx context.Context, runID, afterID int64, limit int) ([]MetricPoint, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, name, step, value, at FROM metrics
		WHERE run_id = ? AND id > ? ORDER BY id LIMIT ?`, runID, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("store: metrics: %w", err)
	}
	defer rows.Close()
	var out []MetricPoint
	for rows.Next() {
		var p MetricPoint
		var at int64
		if err := rows.Scan(&p.ID, &p.Name, &p.Step, &p.Value, &at); err != nil {
			return nil, fmt.Errorf("store: metrics: %w", err)
		}
		p.At = fromMS(at)
		out = append(out, p)
	}
	return out, rows.Err()
}

// LogLine is one line a worker sent.
type LogLine struct {
	ID   int64
	Line string
	At   time.Time
}

// MaxLogLineBytes bounds one stored log line; longer lines are cut.
const MaxLogLineBytes = 2000

// AppendLogs stores lines in one transaction and returns them with their ids.
func (s *Store) AppendLogs(ctx context.Context, runID int64, lines []string) ([]LogLine, error) {
	now := ms(s.now())
	var out []LogLine
	err := s.tx(ctx, func(tx *sql.Tx) error {
		out = out[:0]
		for _, l := range lines {
			l = strings.ToValidUTF8(clip(l, MaxLogLineBytes), "\uFFFD")
			var id int64
			if err := tx.QueryRowContext(ctx, "INSERT INTO run_logs (run_id, line, at) VALUES (?, ?, ?) RETURNING id",
				runID, l, now).Scan(&id); err != nil {
				return err
			}
			out = append(out, LogLine{ID: id, Line: l, At: fromMS(now)})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: append logs: %w", err)
	}
	return out, nil
}

// LogTail returns a run's last n lines, oldest first.
func (s *Store) LogTail(ctx context.Context, runID int64, n int) ([]LogLine, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, line, at FROM (
		SELECT id, line, at FROM run_logs WHERE run_id = ? ORDER BY id DESC LIMIT ?) ORDER BY id`, runID, n)
	if err != nil {
		return nil, fmt.Errorf("store: log tail: %w", err)
	}
	defer rows.Close()
	var out []LogLine
	for rows.Next() {
		var l LogLine
		var at int64
		if err := rows.Scan(&l.ID, &l.Line, &at); err != nil {
			return nil, fmt.Errorf("store: log tail: %w", err)
		}
		l.At = fromMS(at)
		out = append(out, l)
	}
	return out, rows.Err()
}

package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

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

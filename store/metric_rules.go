package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Metric rules: conditions on a run's metrics that notify its owner and/or stop the run
// cleanly. Account defaults (RunID 0) apply to every run without rules of its own.

// MailRuleFired is the kind of the "a metric rule fired" mail.
const MailRuleFired = "rule_fired"

// Rule kinds.
const (
	RuleNaNLoss        = "nan_loss"         // loss or eval_loss reported NaN or ±Inf
	RuleEvalLossRising = "eval_loss_rising" // eval_loss rose Threshold evaluations in a row
	RuleGradNormAbove  = "grad_norm_above"  // grad_norm above Threshold
	RuleStaleMetrics   = "stale_metrics"    // no new metric point for Threshold minutes
)

// RuleKinds lists the kinds in the order pages show them.
var RuleKinds = []string{RuleNaNLoss, RuleEvalLossRising, RuleGradNormAbove, RuleStaleMetrics}

// MetricRule is one rule: what to watch and what to do when it holds.
type MetricRule struct {
	Kind      string
	Threshold float64
	Notify    bool
	Stop      bool
}

// RuleFiring is a rule that fired on a run (once per rule and run).
type RuleFiring struct {
	Kind    string
	Step    int // where it fired; HasStep false for stale metrics
	HasStep bool
	Message string
	Notify  bool
	Stop    bool
	At      time.Time
}

// MetricRules returns the rules saved for runID (0: the account defaults), in RuleKinds order.
func (s *Store) MetricRules(ctx context.Context, userID, runID int64) ([]MetricRule, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT kind, threshold, notify, stop FROM metric_rules
		WHERE user_id = ? AND COALESCE(run_id, 0) = ?`, userID, runID)
	if err != nil {
		return nil, fmt.Errorf("store: metric rules: %w", err)
	}
	defer rows.Close()
	byKind := map[string]MetricRule{}
	for rows.Next() {
		var m MetricRule
		if err := rows.Scan(&m.Kind, &m.Threshold, &m.Notify, &m.Stop); err != nil {
			return nil, err
		}
		byKind[m.Kind] = m
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var out []MetricRule
	for _, k := range RuleKinds {
		if m, ok := byKind[k]; ok {
			out = append(out, m)
		}
	}
	return out, nil
}

// SaveMetricRules replaces the rules of runID (0: the account defaults) with rules, in one
// transaction.
func (s *Store) SaveMetricRules(ctx context.Context, userID, runID int64, rules []MetricRule) error {
	var run any
	if runID != 0 {
		run = runID
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "DELETE FROM metric_rules WHERE user_id = ? AND COALESCE(run_id, 0) = ?", userID, runID); err != nil {
			return err
		}
		for _, m := range rules {
			if _, err := tx.ExecContext(ctx, "INSERT INTO metric_rules (user_id, run_id, kind, threshold, notify, stop) VALUES (?, ?, ?, ?, ?, ?)",
				userID, run, m.Kind, m.Threshold, m.Notify, m.Stop); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: save metric rules: %w", err)
	}
	return nil
}

// EffectiveRules returns the rules that watch a run: its own when it has any, otherwise
// its owner's defaults. own says which.
func (s *Store) EffectiveRules(ctx context.Context, runID int64) (rules []MetricRule, own bool, err error) {
	var userID int64
	if err := s.r.QueryRowContext(ctx, "SELECT user_id FROM runs WHERE id = ?", runID).Scan(&userID); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, false, ErrNotFound
		}
		return nil, false, fmt.Errorf("store: effective rules: %w", err)
	}
	rules, err = s.MetricRules(ctx, userID, runID)
	if err != nil || len(rules) > 0 {
		return rules, true, err
	}
	rules, err = s.MetricRules(ctx, userID, 0)
	return rules, false, err
}

// FireRule stores a rule's firing on a run and notes it on the run's timeline, once:
// fired is false when this rule already fired on this run.
func (s *Store) FireRule(ctx context.Context, runID int64, f RuleFiring) (fired bool, err error) {
	now := ms(s.now())
	var step any
	if f.HasStep {
		step = f.Step
	}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO metric_rule_firings (run_id, kind, step, message, notify, stop, at)
			VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, kind) DO NOTHING`, runID, f.Kind, step, f.Message, f.Notify, f.Stop, now)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		fired = true
		var status RunStatus
		if err := tx.QueryRowContext(ctx, "SELECT status FROM runs WHERE id = ?", runID).Scan(&status); err != nil {
			return err
		}
		return addRunEvent(ctx, tx, runID, status, "Rule fired: "+f.Message, now)
	})
	if err != nil {
		return false, fmt.Errorf("store: fire rule: %w", err)
	}
	return fired, nil
}

// RuleFirings returns the rules that fired on a run, oldest first.
func (s *Store) RuleFirings(ctx context.Context, runID int64) ([]RuleFiring, error) {
	rows, err := s.r.QueryContext(ctx, "SELECT kind, step, message, notify, stop, at FROM metric_rule_firings WHERE run_id = ? ORDER BY id", runID)
	if err != nil {
		return nil, fmt.Errorf("store: rule firings: %w", err)
	}
	defer rows.Close()
	var out []RuleFiring
	for rows.Next() {
		var f RuleFiring
		var step sql.NullInt64
		var at int64
		if err := rows.Scan(&f.Kind, &step, &f.Message, &f.Notify, &f.Stop, &at); err != nil {
			return nil, err
		}
		f.Step, f.HasStep, f.At = int(step.Int64), step.Valid, time.UnixMilli(at)
		out = append(out, f)
	}
	return out, rows.Err()
}

// RecentFinite returns the last n finite values of a run's metric up to step upTo, oldest
// first (eval_loss_rising reads them when a batch brings new evaluations).
func (s *Store) RecentFinite(ctx context.Context, runID int64, name string, upTo, n int) ([]MetricPoint, error) {
	out, err := s.lastFinite(ctx, runID, name, upTo, n)
	if err != nil {
		return nil, fmt.Errorf("store: recent values: %w", err)
	}
	return out, nil
}

// StaleCandidate is a live run and when it last reported a metric (or started, if never).
type StaleCandidate struct {
	RunID  int64
	LastAt time.Time
}

// LiveRunsLastMetric returns every running run with when its last metric point arrived
// (its first heartbeat when none has): the periodic stale-metrics check reads it.
func (s *Store) LiveRunsLastMetric(ctx context.Context) ([]StaleCandidate, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT r.id, COALESCE((SELECT MAX(ro.last_at) FROM metric_series ms
			JOIN metric_rollups ro ON ro.series_id = ms.id AND ro.level = ? WHERE ms.run_id = r.id),
			r.first_heartbeat_at, r.created_at)
		FROM runs r WHERE r.status = ? AND (EXISTS (SELECT 1 FROM metric_rules m WHERE m.kind = ? AND (m.run_id = r.id OR (m.run_id IS NULL AND m.user_id = r.user_id))))`,
		rollupLevels-1, RunRunning, RuleStaleMetrics)
	if err != nil {
		return nil, fmt.Errorf("store: live runs: %w", err)
	}
	defer rows.Close()
	var out []StaleCandidate
	for rows.Next() {
		var c StaleCandidate
		var at int64
		if err := rows.Scan(&c.RunID, &at); err != nil {
			return nil, err
		}
		c.LastAt = time.UnixMilli(at)
		out = append(out, c)
	}
	return out, rows.Err()
}

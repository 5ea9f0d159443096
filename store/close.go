package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Closing an account (PRODUCT.md promise 4). Closing hides everything at once; for
// ReopenWindow signing in offers to reopen; after it the purge scrubs the account. The
// purge runs hourly, so an account is gone a few hours after its window ends, well inside
// the promised 90 days (AccountPurgeLimit).

// ReopenWindow is how long a closed account can be reopened by signing in.
const ReopenWindow = 14 * 24 * time.Hour

// AccountPurgeLimit is the promise: a closed account's data is gone within this.
const AccountPurgeLimit = 90 * 24 * time.Hour

// ErrAccountClosed is returned when an account is closed already (or cannot be reopened).
var ErrAccountClosed = errors.New("store: account is closed")

// ClosedAccount is what closing changed, for the caller to tell the dispatcher and pages.
type ClosedAccount struct {
	Runs []int64 // runs that were queued, starting or running: cancelled or asked to stop
}

// CloseAccount closes userID's account in one transaction: marks it closed, ends every
// session, revokes every API key, per-run metrics token and worker token, cancels queued
// runs and asks starting or running ones to stop (the dispatcher enforces it, as for a
// cancel), and removes pending password-reset and email links. actorID is who did it
// (the person, or an admin).
func (s *Store) CloseAccount(ctx context.Context, userID, actorID int64) (ClosedAccount, error) {
	var out ClosedAccount
	now := ms(s.now())
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "UPDATE users SET closed_at = ?, updated_at = ? WHERE id = ? AND closed_at IS NULL", now, now, userID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrAccountClosed
		}
		rows, err := tx.QueryContext(ctx, "SELECT id, status FROM runs WHERE user_id = ? AND status IN ('queued', 'starting', 'running')", userID)
		if err != nil {
			return err
		}
		type live struct {
			id     int64
			status RunStatus
		}
		var runs []live
		for rows.Next() {
			var l live
			if err := rows.Scan(&l.id, &l.status); err != nil {
				rows.Close()
				return err
			}
			runs = append(runs, l)
		}
		rows.Close()
		for _, l := range runs {
			out.Runs = append(out.Runs, l.id)
			if l.status == RunQueued {
				if err := finishRunTx(ctx, tx, l.id, RunCancelled, "cancelled: the account was closed", now); err != nil {
					return err
				}
				continue
			}
			if _, err := tx.ExecContext(ctx, "UPDATE runs SET cancel_requested = 1 WHERE id = ?", l.id); err != nil {
				return err
			}
			if err := addRunEvent(ctx, tx, l.id, l.status, "cancel requested: the account was closed", now); err != nil {
				return err
			}
		}
		for _, q := range []string{
			"DELETE FROM sessions WHERE user_id = ?",
			"DELETE FROM session_devices WHERE user_id = ?",
			"DELETE FROM password_resets WHERE user_id = ?",
			"DELETE FROM email_verifications WHERE user_id = ?",
			"UPDATE runs SET ingest_token_hash = NULL WHERE user_id = ?",
		} {
			if _, err := tx.ExecContext(ctx, q, userID); err != nil {
				return err
			}
		}
		// A worker token goes with the run: a queued run's ended above; a starting or
		// running one keeps its token only to hear the stop on its next heartbeat.
		if _, err := tx.ExecContext(ctx, "UPDATE runs SET token_hash = NULL WHERE user_id = ? AND status NOT IN ('starting', 'running')", userID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "UPDATE api_keys SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL", now, userID); err != nil {
			return err
		}
		// Deployments stop too: a built-in one at once, a serve job at its next heartbeat.
		if _, err := tx.ExecContext(ctx, `UPDATE deployments SET stopped_at = ?,
			reason = CASE WHEN kind = 'worker' AND ended_at IS NULL THEN 'stopped: the account was closed' ELSE reason END
			WHERE user_id = ? AND stopped_at IS NULL`, now, userID); err != nil {
			return err
		}
		return recordAudit(ctx, tx, now, AuditEntry{ActorID: actorID, SubjectID: userID, Action: AuditAccountClosed})
	})
	if errors.Is(err, ErrAccountClosed) {
		return out, err
	}
	if err != nil {
		return out, fmt.Errorf("store: close account: %w", err)
	}
	return out, nil
}

// ReopenAccount reopens a closed account inside ReopenWindow. API keys stay revoked and
// cancelled runs stay cancelled; everything else is as it was.
func (s *Store) ReopenAccount(ctx context.Context, userID int64) error {
	now := s.now()
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE users SET closed_at = NULL, updated_at = ? WHERE id = ? AND closed_at IS NOT NULL
			AND closed_at > ? AND purged_at IS NULL`, ms(now), userID, ms(now.Add(-ReopenWindow)))
		if err != nil {
			return fmt.Errorf("store: reopen account: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrAccountClosed
		}
		return recordAudit(ctx, tx, ms(now), AuditEntry{ActorID: userID, SubjectID: userID, Action: AuditAccountReopened})
	})
}

// CanReopen says whether an account closed at closedAt can still be reopened now.
func (s *Store) CanReopen(closedAt time.Time) bool {
	return !closedAt.IsZero() && s.now().Before(closedAt.Add(ReopenWindow))
}

// accountTables says, for every table, what purging a closed account does with it. A
// table missing here fails TestEveryTableHasAPurgeDecision: a new table needs a decision.
var accountTables = map[string]string{
	"users":                "scrubbed into a tombstone: no email, no password; the kept billing records point at it",
	"sessions":             "deleted",
	"session_devices":      "deleted",
	"ended_sessions":       "holds only hashes of ended session tokens, no account",
	"password_resets":      "deleted",
	"email_verifications":  "deleted",
	"user_totp":            "deleted",
	"recovery_codes":       "deleted",
	"api_keys":             "deleted",
	"datasets":             "file removed; a row that a kept run tombstone names stays without name or content, others deleted",
	"runs":                 "tombstone (no name, notes, config, reason) where the usage ledger names the run; others deleted",
	"run_events":           "deleted",
	"run_logs":             "deleted",
	"metrics":              "deleted with the run's series",
	"metric_series":        "deleted",
	"metric_points":        "deleted (cascade from metric_series)",
	"metric_blocks":        "deleted (cascade from metric_series)",
	"metric_rollups":       "deleted (cascade from metric_series)",
	"metric_seq_ranges":    "deleted (cascade from metric_series)",
	"metric_rules":         "deleted",
	"metric_rule_firings":  "deleted",
	"snapshots":            "file removed, row deleted",
	"snapshot_evals":       "deleted",
	"run_counts":           "deleted",
	"usage":                "kept: GPU seconds per run, the billing record the law requires; no personal data",
	"usage_monthly":        "kept: billing totals per period, tied to the tombstone",
	"meter_outbox":         "kept: usage reported to Stripe, tied to the tombstone",
	"billing_accounts":     "kept: Stripe customer and subscription ids for invoices the law requires, tied to the tombstone",
	"stripe_events":        "kept: Stripe event ids only, no account",
	"security_events":      "deleted (those of the account and those naming its email)",
	"security_event_kinds": "a list of kinds, no account",
	"mail_queue":           "deleted (mail to the account's address)",
	"audit_log":            "kept: append-only, ids and action names only, pointing at the tombstone",
	"schema_migrations":    "migration bookkeeping, no account",
	"exports":              "file removed, row deleted",
	"oauth_identities":     "deleted",
	"email_changes":        "deleted",
	"sign_in_devices":      "deleted",
	"playground_prompts":   "deleted",
	"deployments":          "deleted",
	"fine_tuning_jobs":     "deleted",
	"queue_turns":          "deleted",
	"account_suspensions":  "deleted",
	"consent_records":      "kept as proof of each choice, unlinked from the account (they hold no IP, user agent or email)",
	"analytics_events":     "never tied to an account (visitor codes from a daily salt that is not kept); deleted after 90 days",
	"analytics_daily":      "daily totals over all visitors, no account",
	"security_event_daily": "daily counts per kind and country, no account",
}

// PurgeOptions.WorkerLogDir is reused for closed accounts' worker logs.

// purgeClosedAccounts scrubs every account closed longer than ReopenWindow ago.
func (s *Store) purgeClosedAccounts(ctx context.Context, v *Vault, o PurgeOptions) (int, error) {
	ids, err := s.ids(ctx, "SELECT id FROM users WHERE closed_at IS NOT NULL AND closed_at <= ? AND purged_at IS NULL",
		ms(s.now().Add(-ReopenWindow)))
	if err != nil {
		return 0, err
	}
	for i, id := range ids {
		if err := s.purgeAccount(ctx, v, o, id); err != nil {
			return i, err
		}
	}
	return len(ids), nil
}

// purgeAccount removes one closed account's files, then its rows, in that order: a crash
// between leaves rows whose files are gone, and the next purge finishes the job.
func (s *Store) purgeAccount(ctx context.Context, v *Vault, o PurgeOptions, id int64) error {
	files, err := column[string](ctx, s, `SELECT file_id FROM snapshots WHERE run_id IN (SELECT id FROM runs WHERE user_id = ?)
		UNION ALL SELECT file_id FROM datasets WHERE user_id = ? AND purged_at IS NULL
		UNION ALL SELECT file_id FROM exports WHERE user_id = ? AND file_id IS NOT NULL`, id, id, id)
	if err != nil {
		return err
	}
	for _, f := range files {
		if err := v.Remove(f); err != nil {
			return err
		}
	}
	runs, err := s.ids(ctx, "SELECT id FROM runs WHERE user_id = ?", id)
	if err != nil {
		return err
	}
	if o.WorkerLogDir != "" {
		for _, r := range runs {
			err := os.Remove(filepath.Join(o.WorkerLogDir, workerLogName(r)))
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("store: purge account %d: worker log: %w", id, err)
			}
		}
	}
	now := ms(s.now())
	err = s.tx(ctx, func(tx *sql.Tx) error {
		var email string
		if err := tx.QueryRowContext(ctx, "SELECT email FROM users WHERE id = ?", id).Scan(&email); err != nil {
			return err
		}
		mine := "(SELECT id FROM runs WHERE user_id = ?)"
		steps := []struct {
			q    string
			args []any
		}{
			{"DELETE FROM deployments WHERE user_id = ?", []any{id}},
			{"DELETE FROM fine_tuning_jobs WHERE user_id = ?", []any{id}},
			{"DELETE FROM snapshots WHERE run_id IN " + mine, []any{id}},
			{"DELETE FROM metric_series WHERE run_id IN " + mine, []any{id}},
			{"DELETE FROM run_logs WHERE run_id IN " + mine, []any{id}},
			{"DELETE FROM run_events WHERE run_id IN " + mine, []any{id}},
			{"DELETE FROM metric_rule_firings WHERE run_id IN " + mine, []any{id}},
			{"DELETE FROM metric_rules WHERE user_id = ?", []any{id}},
			// Runs the usage ledger names stay as tombstones; the trigger runs_purge_labels
			// clears name, tags and notes when purged_at is set.
			{`UPDATE runs SET config = '{}', reason = '', stop_reason = '', job_id = '', token_hash = NULL, ingest_token_hash = NULL,
				deleted_at = COALESCE(deleted_at, ?), purged_at = ? WHERE user_id = ?`, []any{now, now, id}},
			{`DELETE FROM runs WHERE user_id = ? AND NOT EXISTS (SELECT 1 FROM usage u WHERE u.run_id = runs.id)
				AND NOT EXISTS (SELECT 1 FROM usage u JOIN runs c ON c.id = u.run_id WHERE c.retry_of = runs.id OR c.continued_from_run = runs.id)`, []any{id}},
			{`UPDATE datasets SET name = 'deleted dataset', histogram = '[]', file_id = 'purged-' || id,
				deleted_at = COALESCE(deleted_at, ?), purged_at = COALESCE(purged_at, ?) WHERE user_id = ?`, []any{now, now, id}},
			{`DELETE FROM datasets WHERE user_id = ? AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.dataset_id = datasets.id OR r.eval_dataset_id = datasets.id)`, []any{id}},
			{"DELETE FROM run_counts WHERE user_id = ?", []any{id}},
			{"DELETE FROM sessions WHERE user_id = ?", []any{id}},
			{"DELETE FROM session_devices WHERE user_id = ?", []any{id}},
			{"DELETE FROM password_resets WHERE user_id = ?", []any{id}},
			{"DELETE FROM email_verifications WHERE user_id = ?", []any{id}},
			{"DELETE FROM user_totp WHERE user_id = ?", []any{id}},
			{"DELETE FROM recovery_codes WHERE user_id = ?", []any{id}},
			{"DELETE FROM api_keys WHERE user_id = ?", []any{id}},
			{"DELETE FROM exports WHERE user_id = ?", []any{id}},
			{"DELETE FROM oauth_identities WHERE user_id = ?", []any{id}},
			{"DELETE FROM email_changes WHERE user_id = ?", []any{id}},
			{"DELETE FROM sign_in_devices WHERE user_id = ?", []any{id}},
			{"DELETE FROM playground_prompts WHERE user_id = ?", []any{id}},
			{"DELETE FROM snapshot_evals WHERE user_id = ?", []any{id}},
			{"DELETE FROM queue_turns WHERE user_id = ?", []any{id}},
			{"DELETE FROM account_suspensions WHERE user_id = ?", []any{id}},
			{"UPDATE consent_records SET user_id = NULL WHERE user_id = ?", []any{id}},
			{"DELETE FROM security_events WHERE user_id = ? OR email = ?", []any{id, email}},
			{"DELETE FROM mail_queue WHERE to_addr = ?", []any{email}},
			{`UPDATE users SET email = 'purged-' || id || '@invalid', password_hash = '!', is_admin = 0, run_mails = 0, product_mails = 0, display_name = '',
				email_verified_at = NULL, purged_at = ?, updated_at = ? WHERE id = ?`, []any{now, now, id}},
		}
		for _, st := range steps {
			if _, err := tx.ExecContext(ctx, st.q, st.args...); err != nil {
				return fmt.Errorf("%s: %w", st.q, err)
			}
		}
		return recordAudit(ctx, tx, now, AuditEntry{SubjectID: id, Action: AuditAccountPurged})
	})
	if err != nil {
		return fmt.Errorf("store: purge account %d: %w", id, err)
	}
	return nil
}

// Checkpoint copies the WAL into the database file and truncates the WAL to zero bytes, so
// a purged row's old page images do not linger there (secure_delete zeroes the freed pages
// in the database file itself).
func (s *Store) Checkpoint(ctx context.Context) error {
	var busy, logPages, done int
	if err := s.w.QueryRowContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &logPages, &done); err != nil {
		return fmt.Errorf("store: checkpoint: %w", err)
	}
	if busy != 0 {
		return errors.New("store: checkpoint: a reader kept the WAL busy; the next purge tries again")
	}
	return nil
}

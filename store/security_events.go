package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// SecurityEvent kinds.
const (
	EventSignUp          = "signup"
	EventSignIn          = "signin"
	EventSignInFailed    = "signin_failed"
	EventSignOut         = "signout"
	EventPasswordChanged = "password_changed"
	EventRateLimited     = "rate_limited"
	EventAuthzDenied     = "authz_denied"        // a signed-in person asked for another's item
	EventWorkerMisuse    = "worker_token_misuse" // a worker token used on another run, or a bad one
	EventSignUpExisting  = "signup_existing"     // a sign-up tried with an email that has an account
	EventRunDeleted      = "run_deleted"
	EventDatasetDeleted  = "dataset_deleted"
	EventMetricsExported = "metrics_exported"
	EventSnapshotDeleted = "snapshot_deleted"

	// Account security: two-factor codes, sessions, API keys, password reset, email.
	EventTOTPEnabled           = "totp_enabled"
	EventTOTPDisabled          = "totp_disabled"
	EventTOTPFailed            = "totp_failed"
	EventRecoveryCodeUsed      = "recovery_code_used"
	EventRecoveryCodesRenewed  = "recovery_codes_regenerated"
	EventSessionRevoked        = "session_revoked"
	EventSessionsRevokedOthers = "sessions_revoked_others"
	EventAPIKeyCreated         = "api_key_created"
	EventAPIKeyRevoked         = "api_key_revoked"
	EventAPIKeyFailed          = "api_key_failed"
	EventPasswordResetAsked    = "password_reset_requested"
	EventPasswordReset         = "password_reset"
	EventEmailVerified         = "email_verified"

	// Sign-in with Google or GitHub, the profile, and mail preferences.
	EventOAuthSignIn          = "oauth_signin"
	EventOAuthLinked          = "oauth_linked"
	EventOAuthUnlinked        = "oauth_unlinked"
	EventOAuthFailed          = "oauth_failed" // a callback refused: bad state, nonce, token
	EventPasswordSet          = "password_set" // a first password on an account made through a provider
	EventProfileChanged       = "profile_changed"
	EventEmailChangeRequested = "email_change_requested"
	EventEmailChanged         = "email_changed"
	EventUnsubscribed         = "unsubscribed" // a one-click unsubscribe link was used
	// Admin actions on accounts, and a suspended account's sign-in.
	EventAccountSuspended   = "account_suspended"
	EventAccountUnsuspended = "account_unsuspended"
	EventSignInSuspended    = "signin_suspended"
	// Privacy rights: closing and reopening an account.
	EventAccountClosed    = "account_closed"
	EventAccountReopened  = "account_reopened"
	EventExportRequested  = "data_export_requested"
	EventExportDownloaded = "data_export_downloaded"
)

// EventKinds lists every kind above, for the admin review's labels. Each must also be a row of
// security_event_kinds (a migration inserts it): the events table references that table.
var EventKinds = []string{EventSignUp, EventSignIn, EventSignInFailed, EventSignOut, EventPasswordChanged,
	EventRateLimited, EventAuthzDenied, EventWorkerMisuse, EventSignUpExisting, EventRunDeleted,
	EventDatasetDeleted, EventMetricsExported, EventSnapshotDeleted,
	EventTOTPEnabled, EventTOTPDisabled, EventTOTPFailed, EventRecoveryCodeUsed, EventRecoveryCodesRenewed,
	EventSessionRevoked, EventSessionsRevokedOthers, EventAPIKeyCreated, EventAPIKeyRevoked, EventAPIKeyFailed,
	EventPasswordResetAsked, EventPasswordReset, EventEmailVerified,
	EventOAuthSignIn, EventOAuthLinked, EventOAuthUnlinked, EventOAuthFailed, EventPasswordSet,
	EventProfileChanged, EventEmailChangeRequested, EventEmailChanged, EventUnsubscribed,
	EventAccountSuspended, EventAccountUnsuspended, EventSignInSuspended,
	EventAccountClosed, EventAccountReopened, EventExportRequested, EventExportDownloaded}

// SecurityEvent is one entry of the security telemetry (kept TelemetryRetention).
type SecurityEvent struct {
	ID        int64
	Kind      string
	UserID    int64 // 0 when no account matched
	Email     string
	IP        string
	UserAgent string
	Country   string // ISO code from the local GeoLite2 database; "" when unknown
	CreatedAt time.Time
}

// TelemetryRetention is how long raw security telemetry (with IPs) is kept.
const TelemetryRetention = 90 * 24 * time.Hour

// clip keeps untrusted strings at a bounded size.
func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// RecordSecurityEvent appends one event.
func (s *Store) RecordSecurityEvent(ctx context.Context, e SecurityEvent) error {
	var uid sql.NullInt64
	if e.UserID != 0 {
		uid = sql.NullInt64{Int64: e.UserID, Valid: true}
	}
	_, err := s.w.ExecContext(ctx, `INSERT INTO security_events (kind, user_id, email, ip, user_agent, country, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, e.Kind, uid, clip(e.Email, 254), clip(e.IP, 64), clip(e.UserAgent, 512), clip(e.Country, 8), ms(s.now()))
	if err != nil {
		return fmt.Errorf("store: record security event: %w", err)
	}
	return nil
}

// RecentSecurityEvents returns the newest events first.
func (s *Store) RecentSecurityEvents(ctx context.Context, limit int) ([]SecurityEvent, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+securityEventColumns+`
		FROM security_events ORDER BY id DESC LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("store: recent security events: %w", err)
	}
	defer rows.Close()
	return scanSecurityEvents(rows)
}

const securityEventColumns = `id, kind, COALESCE(user_id, 0), email, ip, user_agent, country, created_at`

func scanSecurityEvents(rows *sql.Rows) ([]SecurityEvent, error) {
	var out []SecurityEvent
	for rows.Next() {
		var e SecurityEvent
		var created int64
		if err := rows.Scan(&e.ID, &e.Kind, &e.UserID, &e.Email, &e.IP, &e.UserAgent, &e.Country, &created); err != nil {
			return nil, fmt.Errorf("store: security events: %w", err)
		}
		e.CreatedAt = fromMS(created)
		out = append(out, e)
	}
	return out, rows.Err()
}

// PurgeSecurityEvents deletes events older than the retention window, in batches so the
// writer is never held long, after adding each batch to the daily counts per kind and
// country (security_event_daily) in the same transaction. It returns how many rows went.
func (s *Store) PurgeSecurityEvents(ctx context.Context) (int64, error) {
	cutoff := ms(s.now().Add(-TelemetryRetention))
	var total int64
	for {
		var n int64
		err := s.tx(ctx, func(tx *sql.Tx) error {
			batch := `SELECT id FROM security_events WHERE created_at < ? ORDER BY id LIMIT 1000`
			if _, err := tx.ExecContext(ctx, `INSERT INTO security_event_daily (day, kind, country, count)
				SELECT strftime('%Y-%m-%d', created_at / 1000, 'unixepoch'), kind, country, COUNT(*)
				FROM security_events WHERE id IN (`+batch+`) GROUP BY 1, 2, 3
				ON CONFLICT (day, kind, country) DO UPDATE SET count = count + excluded.count`, cutoff); err != nil {
				return err
			}
			res, err := tx.ExecContext(ctx, `DELETE FROM security_events WHERE id IN (`+batch+`)`, cutoff)
			if err != nil {
				return err
			}
			n, _ = res.RowsAffected()
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("store: purge security events: %w", err)
		}
		total += n
		if n < 1000 {
			return total, nil
		}
	}
}

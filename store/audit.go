package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Audit actions: what the audit log records. A row names ids, never content.
const (
	AuditRunDeleted       = "run_deleted"
	AuditDatasetDeleted   = "dataset_deleted"
	AuditSnapshotDeleted  = "snapshot_deleted"
	AuditMetricsExported  = "metrics_exported"
	AuditAccountClosed    = "account_closed"
	AuditAccountReopened  = "account_reopened"
	AuditAccountPurged    = "account_purged"
	AuditUserCreated      = "admin_user_created" // an operator made an account from the command line
	AuditBackupTaken      = "backup_taken"
	AuditBackupRestored   = "backup_restored"
	AuditExportRequested  = "export_requested"
	AuditExportDownloaded = "export_downloaded"
	AuditKeyRotated       = "key_rotated"
	// A deployment started or stopped by its owner (deploy.go).
	AuditDeploymentCreated = "deployment_created"
	AuditDeploymentStopped = "deployment_stopped"
)

// AuditActions lists every action above; the views name each in words.
var AuditActions = []string{AuditRunDeleted, AuditDatasetDeleted, AuditSnapshotDeleted, AuditMetricsExported,
	AuditAccountClosed, AuditAccountReopened, AuditAccountPurged, AuditUserCreated, AuditBackupTaken, AuditBackupRestored,
	AuditExportRequested, AuditExportDownloaded, AuditKeyRotated, AuditDeploymentCreated, AuditDeploymentStopped}

// AuditEntry is one row of the audit log.
type AuditEntry struct {
	ID        int64
	At        time.Time
	ActorID   int64 // 0: the server itself (purge, command line)
	SubjectID int64 // 0: no account's data (a backup)
	Action    string
	Target    string // ids only, e.g. "run 40"
	// Filled when read: the accounts' current emails ("" once purged or for 0).
	ActorEmail, SubjectEmail string
}

func nullID(id int64) sql.NullInt64 { return sql.NullInt64{Int64: id, Valid: id != 0} }

// RecordAudit appends one entry. The table refuses updates and deletes (its triggers).
func (s *Store) RecordAudit(ctx context.Context, e AuditEntry) error {
	return recordAudit(ctx, s.w, ms(s.now()), e)
}

// recordAudit appends within a transaction or on the writer.
func recordAudit(ctx context.Context, db interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, at int64, e AuditEntry) error {
	_, err := db.ExecContext(ctx, `INSERT INTO audit_log (at, actor_id, subject_id, action, target) VALUES (?, ?, ?, ?, ?)`,
		at, nullID(e.ActorID), nullID(e.SubjectID), e.Action, clip(e.Target, 200))
	if err != nil {
		return fmt.Errorf("store: record audit: %w", err)
	}
	return nil
}

const auditSelect = `SELECT a.id, a.at, COALESCE(a.actor_id, 0), COALESCE(a.subject_id, 0), a.action, a.target,
	COALESCE(CASE WHEN ua.purged_at IS NULL THEN ua.email END, ''), COALESCE(CASE WHEN us.purged_at IS NULL THEN us.email END, '')
	FROM audit_log a LEFT JOIN users ua ON ua.id = a.actor_id LEFT JOIN users us ON us.id = a.subject_id`

func (s *Store) queryAudit(ctx context.Context, q string, args ...any) ([]AuditEntry, error) {
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: audit log: %w", err)
	}
	defer rows.Close()
	var out []AuditEntry
	for rows.Next() {
		var e AuditEntry
		var at int64
		if err := rows.Scan(&e.ID, &at, &e.ActorID, &e.SubjectID, &e.Action, &e.Target, &e.ActorEmail, &e.SubjectEmail); err != nil {
			return nil, fmt.Errorf("store: audit log: %w", err)
		}
		e.At = fromMS(at)
		out = append(out, e)
	}
	return out, rows.Err()
}

// RecentAudit returns the newest entries first, for the admin page.
func (s *Store) RecentAudit(ctx context.Context, limit int) ([]AuditEntry, error) {
	return s.queryAudit(ctx, auditSelect+" ORDER BY a.id DESC LIMIT ?", limit)
}

// AuditFor returns the newest entries about userID's data or done by userID.
func (s *Store) AuditFor(ctx context.Context, userID int64, limit int) ([]AuditEntry, error) {
	return s.queryAudit(ctx, auditSelect+` WHERE a.id IN (SELECT id FROM audit_log WHERE subject_id = ?
		UNION SELECT id FROM audit_log WHERE actor_id = ?) ORDER BY a.id DESC LIMIT ?`, userID, userID, limit)
}

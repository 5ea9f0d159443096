package handlers

import (
	"fmt"
	"net/http"

	"tunelab/store"
	"tunelab/views"
)

// auditActions names every audit action in words.
var auditActions = map[string]string{
	store.AuditRunDeleted:        "Run deleted",
	store.AuditDatasetDeleted:    "Dataset deleted",
	store.AuditSnapshotDeleted:   "Snapshot deleted",
	store.AuditMetricsExported:   "Metrics downloaded",
	store.AuditAccountClosed:     "Account closed",
	store.AuditAccountReopened:   "Account reopened",
	store.AuditAccountPurged:     "Closed account deleted for good",
	store.AuditUserCreated:       "Account created by an operator",
	store.AuditBackupTaken:       "Backup taken",
	store.AuditBackupRestored:    "Backup restored",
	store.AuditExportRequested:   "Data export asked for",
	store.AuditExportDownloaded:  "Data export downloaded",
	store.AuditKeyRotated:        "Secret key rotated",
	store.AuditDeploymentCreated: "Snapshot deployed",
	store.AuditDeploymentStopped: "Deployment stopped",
}

// audit appends to the audit log; actor is the signed-in person. A failure is logged, not
// shown: the action itself happened.
func (a *app) audit(r *http.Request, action string, actorID, subjectID int64, target string) {
	err := a.store.RecordAudit(r.Context(), store.AuditEntry{ActorID: actorID, SubjectID: subjectID, Action: action, Target: target})
	if err != nil {
		a.log.ErrorContext(r.Context(), "record audit entry", "action", action, "err", err)
	}
}

// auditWho names an account in an audit row: "You" for the reader, its email, or its
// number once purged.
func auditWho(id, reader int64, email string) string {
	switch {
	case id == 0:
		return "the server"
	case id == reader:
		return "You"
	case email == "":
		return fmt.Sprintf("account %d (deleted)", id)
	}
	return email
}

func auditRows(entries []store.AuditEntry, reader int64) []views.AuditRow {
	rows := make([]views.AuditRow, 0, len(entries))
	for _, e := range entries {
		label, ok := auditActions[e.Action]
		if !ok {
			label = "Other action"
		}
		target := e.Target
		if target == "" {
			target = "—"
		}
		rows = append(rows, views.AuditRow{When: e.At.Format(adminTime), Action: label, Target: target,
			Actor: auditWho(e.ActorID, reader, e.ActorEmail), Subject: auditWho(e.SubjectID, reader, e.SubjectEmail)})
	}
	return rows
}

// showActivity lists the person's own audit-log entries.
func (a *app) showActivity(w http.ResponseWriter, r *http.Request) {
	u, _ := userFrom(r.Context())
	entries, err := a.store.AuditFor(r.Context(), u.ID, 200)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	a.render(w, r, http.StatusOK, a.page(r, "Activity log", "settings"), views.ActivityPage(auditRows(entries, u.ID)))
}

// adminAudit is the admin page's audit-log rows.
func (a *app) adminAudit(r *http.Request) ([]views.AuditRow, error) {
	entries, err := a.store.RecentAudit(r.Context(), 100)
	if err != nil {
		return nil, err
	}
	return auditRows(entries, -1), nil
}

package handlers

import (
	"fmt"
	"net/http"

	"tunelab/billing"
	"tunelab/store"
	"tunelab/views"
)

// eventKinds names every security event kind in words for the admin review.
var eventKinds = map[string]string{
	store.EventSignUp:          "Sign-up",
	store.EventSignIn:          "Sign-in",
	store.EventSignInFailed:    "Failed sign-in",
	store.EventSignOut:         "Sign-out",
	store.EventPasswordChanged: "Password changed",
	store.EventRateLimited:     "Rate limited",
	store.EventAuthzDenied:     "Asked for another person's item",
	store.EventWorkerMisuse:    "Run token misused",
	store.EventSignUpExisting:  "Sign-up with a registered email",
	store.EventRunDeleted:      "Run deleted",
	store.EventDatasetDeleted:  "Dataset deleted",
	store.EventMetricsExported: "Metrics exported",
	store.EventSnapshotDeleted: "Snapshot deleted",

	store.EventTOTPEnabled:           "Two-factor authentication turned on",
	store.EventTOTPDisabled:          "Two-factor authentication turned off",
	store.EventTOTPFailed:            "Wrong two-factor code",
	store.EventRecoveryCodeUsed:      "Recovery code used",
	store.EventRecoveryCodesRenewed:  "Recovery codes replaced",
	store.EventSessionRevoked:        "Session revoked",
	store.EventSessionsRevokedOthers: "Other sessions revoked",
	store.EventAPIKeyCreated:         "API key created",
	store.EventAPIKeyRevoked:         "API key revoked",
	store.EventAPIKeyFailed:          "Bad API key",
	store.EventPasswordResetAsked:    "Password reset asked for",
	store.EventPasswordReset:         "Password reset",
	store.EventEmailVerified:         "Email verified",
	store.EventOAuthSignIn:           "Signed in with Google or GitHub",
	store.EventOAuthLinked:           "Google or GitHub linked",
	store.EventOAuthUnlinked:         "Google or GitHub unlinked",
	store.EventOAuthFailed:           "Google or GitHub sign-in refused",
	store.EventPasswordSet:           "Password set",
	store.EventProfileChanged:        "Name changed",
	store.EventEmailChangeRequested:  "Email change asked",
	store.EventEmailChanged:          "Email changed",
	store.EventUnsubscribed:          "Unsubscribed from mails",

	store.EventAccountSuspended:   "Account suspended by an admin",
	store.EventAccountUnsuspended: "Account unsuspended by an admin",
	store.EventSignInSuspended:    "Sign-in of a suspended account",

	store.EventAccountClosed:    "Account closed",
	store.EventAccountReopened:  "Account reopened",
	store.EventExportRequested:  "Data export asked for",
	store.EventExportDownloaded: "Data export downloaded",
}

// failureKinds are highlighted in the admin review.
var failureKinds = map[string]bool{
	store.EventSignInFailed: true, store.EventRateLimited: true, store.EventAuthzDenied: true,
	store.EventWorkerMisuse: true, store.EventSignUpExisting: true, store.EventTOTPFailed: true, store.EventAPIKeyFailed: true,
	store.EventSignInSuspended: true,
}

// eventLabel is the words for a kind; a kind this version does not know stays unnamed
// rather than showing its raw string.
func eventLabel(kind string) string {
	if l, ok := eventKinds[kind]; ok {
		return l
	}
	return "Other event"
}

const adminTime = "2006-01-02 15:04 UTC"

func (a *app) showAdmin(w http.ResponseWriter, r *http.Request) {
	users, total, err := a.store.ListUsers(r.Context(), 50)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	events, err := a.store.RecentSecurityEvents(r.Context(), 50)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	o := views.AdminOverview{UserCount: total}
	for _, u := range users {
		o.Users = append(o.Users, views.AdminUserRow{Email: u.Email, Created: u.CreatedAt.Format(adminTime), IsAdmin: u.IsAdmin})
	}
	for _, e := range events {
		o.Events = append(o.Events, views.SecurityEventRow{
			When: e.CreatedAt.Format(adminTime), Kind: eventLabel(e.Kind), Email: e.Email, IP: e.IP, UserAgent: e.UserAgent,
			Country: countryLabel(e.Country), Failure: failureKinds[e.Kind],
		})
	}
	ob, ok, err := a.billing.Outbox(r.Context())
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	if ok {
		o.Outbox = &views.MeterOutbox{
			Pending:   outboxRows(ob.Pending) + ", " + formatGPUSeconds(ob.PendingSeconds),
			Sent:      outboxRows(ob.Sent) + ", " + formatGPUSeconds(ob.SentSeconds),
			NotBilled: outboxRows(ob.Free + ob.Empty), TooOld: outboxRows(ob.TooOld),
			TooOldAlert: ob.TooOld > 0, LastError: ob.LastError, BacklogAlert: billing.MeterBacklogOver(ob, a.now()),
		}
		if !ob.OldestPending.IsZero() {
			o.Outbox.OldestPending = ob.OldestPending.Format(adminTime)
		}
	}
	if o.Reconcile, err = a.adminReconciliation(r); err != nil {
		a.serverError(w, r, err)
		return
	}
	if o.Audit, err = a.adminAudit(r); err != nil {
		a.serverError(w, r, err)
		return
	}
	if o.Mail, err = a.adminMail(r); err != nil {
		a.serverError(w, r, err)
		return
	}
	a.render(w, r, http.StatusOK, a.page(r, "Admin", "admin"), views.AdminPage(o))
}

func outboxRows(n int64) string {
	if n == 1 {
		return "1 row"
	}
	return fmt.Sprintf("%d rows", n)
}

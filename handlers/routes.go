package handlers

import (
	"net/http"

	"tunelab/static"
)

// routes is the one table of every endpoint, grouped by who may call it.
func (a *app) routes() http.Handler {
	mux := http.NewServeMux()

	// Outer layers wrap every request; page requests also get the session and user, and
	// form bodies are capped (uploads have their own cap).
	session := chain{a.sessions.LoadAndSave, a.loadUser}
	public := session.extend(a.limitForm, a.loadConsent)
	signedIn := public.extend(a.requireAuth)
	admin := signedIn.extend(a.requireAdmin)
	upload := session.extend(a.requireAuth)

	// Static files and health: no session.
	mux.Handle("GET /static/", static.Handler())
	mux.HandleFunc("GET /healthz", a.healthz)
	mux.HandleFunc("GET /metrics", a.showMetrics) // operator bearer token; 404 when none is set

	// Accounts.
	mux.Handle("GET /signup", public.thenFunc(a.showSignUp))
	mux.Handle("POST /signup", public.thenFunc(a.createAccount))
	mux.Handle("GET /signin", public.thenFunc(a.showSignIn))
	mux.Handle("POST /signin", public.thenFunc(a.signIn))
	mux.Handle("POST /signout", public.thenFunc(a.signOut))
	mux.Handle("GET /signin/2fa", public.thenFunc(a.showSignInCode))
	mux.Handle("POST /signin/2fa", public.thenFunc(a.signInWithCode))
	mux.Handle("GET /password/forgot", public.thenFunc(a.showForgotPassword))
	mux.Handle("POST /password/forgot", public.thenFunc(a.requestPasswordReset))
	mux.Handle("GET /password/reset", public.thenFunc(a.showResetPassword))
	mux.Handle("POST /password/reset", public.thenFunc(a.resetPassword))
	mux.Handle("GET /email/verify", public.thenFunc(a.showVerifyEmail))
	mux.Handle("POST /email/verify", public.thenFunc(a.verifyEmail))
	mux.Handle("POST /email/verify/resend", signedIn.thenFunc(a.resendVerification))
	mux.Handle("GET /signin/oauth/confirm", public.thenFunc(a.showOAuthConfirm))
	mux.Handle("POST /signin/oauth/confirm", public.thenFunc(a.confirmOAuth))
	mux.Handle("GET /signin/oauth/{provider}", public.thenFunc(a.startOAuth))
	mux.Handle("GET /signin/oauth/{provider}/callback", public.thenFunc(a.oauthCallback))
	mux.Handle("GET /settings/email/confirm", public.thenFunc(a.showEmailChange))
	mux.Handle("POST /settings/email/confirm", public.thenFunc(a.confirmEmailChange))
	mux.Handle("GET /mail/unsubscribe", public.thenFunc(a.showUnsubscribe))
	mux.Handle("POST /mail/unsubscribe", public.thenFunc(a.unsubscribe))

	// Legal pages, readable by anyone.
	mux.Handle("GET /terms", public.thenFunc(a.showTerms))
	mux.Handle("GET /privacy", public.thenFunc(a.showPrivacy))
	mux.Handle("GET /cookies", public.thenFunc(a.showCookiePolicy))
	mux.Handle("GET /cookies/settings", public.thenFunc(a.showCookieSettings))
	mux.Handle("POST /consent", public.thenFunc(a.saveConsent))
	// Analytics beacons: no session; refused without consent in the signed consent cookie.
	mux.HandleFunc("POST /analytics/event", a.recordAnalytics)

	// The signed-in product.
	mux.Handle("GET /{$}", signedIn.thenFunc(a.showDashboard))
	mux.Handle("GET /runs", signedIn.thenFunc(a.listRuns))
	mux.Handle("GET /runs/new", signedIn.thenFunc(a.newRun))
	mux.Handle("GET /runs/live", signedIn.thenFunc(a.liveRuns))
	mux.Handle("GET /runs/estimate", signedIn.thenFunc(a.showRunEstimate))
	mux.Handle("GET /compare", signedIn.thenFunc(a.showCompare))
	mux.Handle("POST /runs", signedIn.thenFunc(a.createRun))
	mux.Handle("GET /runs/{id}", signedIn.thenFunc(a.showRun))
	mux.Handle("GET /runs/{id}/events", a.liveStream(signedIn.thenFunc(a.runEvents)))
	mux.Handle("GET /runs/{id}/api", signedIn.thenFunc(a.showRunAPI))
	mux.Handle("POST /runs/{id}/api/token", signedIn.thenFunc(a.createIngestToken))
	mux.Handle("GET /runs/{id}/metrics/history", signedIn.thenFunc(a.metricHistory))
	mux.Handle("GET /runs/{id}/metrics.csv", signedIn.thenFunc(a.exportMetricsCSV))
	mux.Handle("GET /runs/{id}/metrics.jsonl", signedIn.thenFunc(a.exportMetricsJSONL))
	mux.Handle("POST /runs/{id}/edit", signedIn.thenFunc(a.editRun))
	mux.Handle("POST /runs/{id}/cancel", signedIn.thenFunc(a.cancelRun))
	mux.Handle("GET /runs/{id}/rules", signedIn.thenFunc(a.showRunRules))
	mux.Handle("POST /runs/{id}/rules", signedIn.thenFunc(a.saveRunRules))
	mux.Handle("POST /runs/{id}/retry", signedIn.thenFunc(a.retryRun))
	mux.Handle("POST /runs/{id}/delete", signedIn.thenFunc(a.deleteRun))
	mux.Handle("GET /runs/{id}/snapshots/{sid}/download", signedIn.thenFunc(a.downloadSnapshot))
	mux.Handle("POST /runs/{id}/snapshots/{sid}/delete", signedIn.thenFunc(a.deleteSnapshot))
	mux.Handle("POST /runs/{id}/snapshots/{sid}/deploy", signedIn.thenFunc(a.deploySnapshot))
	mux.Handle("GET /deployments", signedIn.thenFunc(a.showDeployments))
	mux.Handle("POST /deployments/{id}/stop", signedIn.thenFunc(a.stopDeployment))
	mux.Handle("POST /runs/{id}/snapshots/{sid}/evaluate", signedIn.thenFunc(a.evaluateSnapshot))
	mux.Handle("POST /runs/{id}/evaluate", signedIn.thenFunc(a.evaluateAll))
	mux.Handle("GET /runs/{id}/checkpoints", signedIn.thenFunc(a.showCheckpoints))
	mux.Handle("GET /datasets", signedIn.thenFunc(a.listDatasets))
	mux.Handle("GET /playground", signedIn.thenFunc(a.showPlayground))
	mux.Handle("POST /playground", signedIn.thenFunc(a.runPlayground))
	mux.Handle("GET /playground/{id}/stream/{slot}", signedIn.thenFunc(a.playgroundStream))
	mux.Handle("POST /datasets", upload.thenFunc(a.uploadDataset))
	mux.Handle("POST /datasets/samples", signedIn.thenFunc(a.useSample))
	mux.Handle("GET /datasets/{id}", signedIn.thenFunc(a.showDataset))
	mux.Handle("POST /datasets/{id}/delete", signedIn.thenFunc(a.deleteDataset))
	mux.Handle("GET /billing", signedIn.thenFunc(a.showBilling))
	mux.Handle("POST /billing/checkout", signedIn.thenFunc(a.checkout))
	mux.Handle("POST /billing/portal", signedIn.thenFunc(a.portal))
	mux.Handle("POST /billing/cap", signedIn.thenFunc(a.setMonthlyCap))
	mux.Handle("GET /settings", signedIn.thenFunc(a.showSettings))
	mux.Handle("GET /settings/rules", signedIn.thenFunc(a.showDefaultRules))
	mux.Handle("POST /settings/rules", signedIn.thenFunc(a.saveDefaultRules))
	mux.Handle("POST /settings/password", signedIn.thenFunc(a.changePassword))
	mux.Handle("POST /settings/profile/name", signedIn.thenFunc(a.saveDisplayName))
	mux.Handle("POST /settings/profile/email", signedIn.thenFunc(a.requestEmailChange))
	mux.Handle("POST /settings/sign-in-methods/{provider}/link", signedIn.thenFunc(a.startOAuth))
	mux.Handle("POST /settings/sign-in-methods/{provider}/unlink", signedIn.thenFunc(a.unlinkProvider))
	mux.Handle("GET /settings/2fa", signedIn.thenFunc(a.showTwoFactor))
	mux.Handle("POST /settings/2fa", signedIn.thenFunc(a.changeTwoFactor))
	mux.Handle("GET /settings/2fa/qr.png", signedIn.thenFunc(a.showTOTPQR))
	mux.Handle("POST /settings/2fa/recovery-codes.txt", signedIn.thenFunc(a.downloadRecoveryCodes))
	mux.Handle("GET /settings/sessions", signedIn.thenFunc(a.showSessions))
	mux.Handle("POST /settings/sessions/{id}/revoke", signedIn.thenFunc(a.revokeSession))
	mux.Handle("POST /settings/sessions/revoke-others", signedIn.thenFunc(a.revokeOtherSessions))
	mux.Handle("GET /settings/email", signedIn.thenFunc(a.showMailPrefs))
	mux.Handle("POST /settings/email", signedIn.thenFunc(a.saveMailPrefs))
	mux.Handle("GET /settings/api-keys", signedIn.thenFunc(a.showAPIKeys))
	mux.Handle("POST /settings/api-keys", signedIn.thenFunc(a.createAPIKey))
	mux.Handle("POST /settings/api-keys/{id}/revoke", signedIn.thenFunc(a.revokeAPIKey))
	mux.Handle("GET /settings/activity", signedIn.thenFunc(a.showActivity))
	mux.Handle("GET /settings/export", signedIn.thenFunc(a.showExport))
	mux.Handle("GET /settings/export/status", signedIn.thenFunc(a.exportStatus))
	mux.Handle("POST /settings/export", signedIn.thenFunc(a.requestExport))
	mux.Handle("GET /settings/export/download/{token}", signedIn.thenFunc(a.showExportDownload))
	mux.Handle("POST /settings/export/download/{token}", signedIn.thenFunc(a.downloadExport))
	mux.Handle("GET /settings/export/{id}/snapshots/{sid}", signedIn.thenFunc(a.downloadExportSnapshot))
	mux.Handle("GET /settings/close", signedIn.thenFunc(a.showCloseAccount))
	mux.Handle("POST /settings/close", signedIn.thenFunc(a.closeAccount))
	mux.Handle("GET /account/reopen", public.thenFunc(a.showReopen))
	mux.Handle("POST /account/reopen", public.thenFunc(a.reopenAccount))

	// Workers: no session, a per-run bearer token instead (docs/worker-api.md).
	worker := chain{a.workerAuth}
	mux.Handle("GET /api/v1/worker/runs/{id}/job", worker.thenFunc(a.workerJob))
	mux.Handle("GET /api/v1/worker/runs/{id}/dataset", worker.thenFunc(a.workerDataset))
	mux.Handle("GET /api/v1/worker/runs/{id}/init-snapshot", worker.thenFunc(a.workerInitSnapshot))
	mux.Handle("POST /api/v1/worker/runs/{id}/heartbeat", worker.thenFunc(a.workerHeartbeat))
	mux.Handle("POST /api/v1/worker/runs/{id}/metrics", worker.thenFunc(a.workerMetrics))
	mux.Handle("POST /api/v1/worker/runs/{id}/logs", worker.thenFunc(a.workerLogs))
	mux.Handle("PUT /api/v1/worker/runs/{id}/snapshots/{step}", worker.thenFunc(a.workerSnapshot))
	mux.Handle("POST /api/v1/worker/runs/{id}/finish", worker.thenFunc(a.workerFinish))
	a.deployWorkerRoutes(mux)
	// A person's own scripts: an account API key (docs/api.md), or for posting metrics a
	// per-run metrics token made on /runs/{id}/api.
	apiKey := chain{a.apiKeyAuth}
	mux.Handle("GET /api/v1/runs", apiKey.thenFunc(a.apiListRuns))
	mux.Handle("GET /api/v1/runs/{id}", apiKey.thenFunc(a.apiShowRun))
	mux.Handle("GET /api/v1/runs/{id}/metrics/history", apiKey.thenFunc(a.apiMetricHistory))
	mux.Handle("GET /api/v1/datasets", apiKey.thenFunc(a.apiListDatasets))
	mux.Handle("GET /api/v1/datasets/{id}", apiKey.thenFunc(a.apiShowDataset))
	mux.Handle("POST /api/v1/runs/{id}/metrics", chain{a.ingestAuth}.thenFunc(a.userMetrics))
	mux.HandleFunc("/api/", a.workerNotFound)
	// The OpenAI-compatible API (docs/openai.md), with an account API key.
	openai := chain{a.openaiAuth}
	mux.Handle("GET /v1/models", openai.thenFunc(a.openaiListModels))
	mux.Handle("GET /v1/models/{id...}", openai.thenFunc(a.openaiShowModel))
	mux.Handle("POST /v1/chat/completions", openai.thenFunc(a.routeDeployments("/v1/chat/completions", a.openaiChat)))
	mux.Handle("POST /v1/completions", openai.thenFunc(a.routeDeployments("/v1/completions", a.openaiCompletion)))
	mux.Handle("POST /v1/files", openai.thenFunc(a.openaiCreateFile))
	mux.Handle("GET /v1/files", openai.thenFunc(a.openaiListFiles))
	mux.Handle("GET /v1/files/{file_id}", openai.thenFunc(a.openaiShowFile))
	mux.Handle("GET /v1/files/{file_id}/content", openai.thenFunc(a.openaiFileContent))
	mux.Handle("DELETE /v1/files/{file_id}", openai.thenFunc(a.openaiDeleteFile))
	mux.Handle("POST /v1/fine_tuning/jobs", openai.thenFunc(a.openaiCreateJob))
	mux.Handle("GET /v1/fine_tuning/jobs", openai.thenFunc(a.openaiListJobs))
	mux.Handle("GET /v1/fine_tuning/jobs/{job_id}", openai.thenFunc(a.openaiShowJob))
	mux.Handle("POST /v1/fine_tuning/jobs/{job_id}/cancel", openai.thenFunc(a.openaiCancelJob))
	mux.Handle("GET /v1/fine_tuning/jobs/{job_id}/events", openai.thenFunc(a.openaiJobEvents))
	mux.Handle("GET /v1/fine_tuning/jobs/{job_id}/checkpoints", openai.thenFunc(a.openaiJobCheckpoints))

	// Stripe: no session; the Stripe-Signature over the raw body instead.
	mux.HandleFunc("POST /stripe/webhook", a.stripeWebhook)

	// Operators.
	mux.Handle("GET /admin", admin.thenFunc(a.showAdmin))
	mux.Handle("GET /admin/backends", admin.thenFunc(a.showAdminBackends))
	mux.Handle("GET /admin/analytics", admin.thenFunc(a.showAdminAnalytics))
	mux.Handle("GET /admin/security", admin.thenFunc(a.showAdminSecurity))
	mux.Handle("POST /admin/accounts/{id}/suspend", admin.thenFunc(a.suspendAccount))
	mux.Handle("POST /admin/accounts/{id}/unsuspend", admin.thenFunc(a.unsuspendAccount))

	// Anything else is a 404 page (with the session, so the nav shows who is signed in).
	mux.Handle("/", public.thenFunc(a.notFound))

	return chain{a.recoverPanics, a.logRequests, a.securityHeaders, a.crossOriginProtection, a.compress, a.observeRequests}.then(mux)
}

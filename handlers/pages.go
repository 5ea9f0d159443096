package handlers

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"tunelab/store"
	"tunelab/views"
)

// showDashboard reads only maintained totals: runs per status, the datasets' count and
// this month's GPU seconds from the usage ledger, so it costs the same with 10 runs or
// 10,000.
func (a *app) showDashboard(w http.ResponseWriter, r *http.Request) {
	u, _ := userFrom(r.Context())
	ctx := r.Context()
	datasets, err := a.store.DatasetCount(ctx, u.ID)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	counts, err := a.store.RunCounts(ctx, u.ID)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	now := a.now()
	used, err := a.store.GPUSecondsInPeriod(ctx, u.ID, now)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	offer := a.runs.Backend.Offer()
	d := views.Dashboard{Email: u.Email, DatasetCount: datasets, GPUSecondsStr: formatGPUSeconds(used), Period: now.UTC().Format("January 2006"),
		TimeLabel: timeLabel(offer), Methods: methodWords(offer, false), HasGPUs: hasGPUs(offer)}
	for _, s := range store.RunStatuses {
		d.RunCount += counts[s]
		if counts[s] > 0 {
			d.ByStatus = append(d.ByStatus, views.StatusCount{Status: string(s), Label: s.Label(), Tone: statusTone(s), Count: counts[s],
				Href: "/runs?status=" + string(s)})
		}
	}
	a.render(w, r, http.StatusOK, a.page(r, "Dashboard", "dashboard"), views.DashboardPage(d))
}

// formatGPUSeconds shows metered time the way every other page states durations.
func formatGPUSeconds(s int64) string { return formatDuration(time.Duration(s) * time.Second) }

// formatRetention writes a retention window in whole days, or hours under two days.
func formatRetention(d time.Duration) string {
	if d <= 0 {
		d = store.DefaultDatasetRetention
	}
	if d < 48*time.Hour {
		h := int(d.Round(time.Hour) / time.Hour)
		if h == 1 {
			return "1 hour"
		}
		return fmt.Sprintf("%d hours", h)
	}
	return fmt.Sprintf("%d days", int(d.Round(24*time.Hour)/(24*time.Hour)))
}

// backendWords says where a backend trains, for the legal pages.

// termsEffective is the legal pages' effective date, the day TermsVersion names, so the
// two never disagree: "29 November 2026".
func termsEffective() string {
	d, err := time.Parse(time.DateOnly, TermsVersion)
	if err != nil {
		return TermsVersion
	}
	return d.Format("2 January 2006")
}

// legal is what the legal pages state about this running server.
func (a *app) legal() views.Legal {
	op := a.cfg.Operator
	if op == "" {
		op = "the operator of this server"
	}
	return views.Legal{
		TermsVersion:  TermsVersion,
		Effective:     termsEffective(),
		Operator:      op,
		Contact:       a.cfg.Contact,
		SessionIdle:   formatRetention(sessionIdle),
		SessionMax:    formatRetention(sessionLifetime),
		SessionCookie: sessionCookieName(a.cfg.Secure),
		ConsentCookie: consentCookieName(a.cfg.Secure),
		ConsentDays:   formatRetention(consentMaxAge),
		AnalyticsDays: int(store.AnalyticsRetention / (24 * time.Hour)),
		TelemetryDays: int(store.TelemetryRetention / (24 * time.Hour)),
		PurgeDelay:    formatRetention(store.PurgeDelay),
		DatasetKeep:   formatRetention(a.cfg.DatasetRetention),
		Backend:       backendWords(a.runs.Backend),
		Provider:      remoteProvider(a.runs.Backend),
		BillingOn:     a.billing.Enabled(),
		MailRelay:     a.mail.Relay,
		BillingGrace:  formatRetention(a.billing.Grace()),
		OAuthCookie:   a.oauthCookieName(),
		Providers:     a.providerNames(),
	}
}

func (a *app) showTerms(w http.ResponseWriter, r *http.Request) {
	a.render(w, r, http.StatusOK, a.page(r, "Terms of Service", ""), views.TermsPage(a.legal()))
}

func (a *app) showPrivacy(w http.ResponseWriter, r *http.Request) {
	a.render(w, r, http.StatusOK, a.page(r, "Privacy Policy", ""), views.PrivacyPage(a.legal()))
}

func (a *app) showCookiePolicy(w http.ResponseWriter, r *http.Request) {
	a.render(w, r, http.StatusOK, a.page(r, "Cookie Policy", ""), views.CookiePolicyPage(a.legal()))
}

func (a *app) showCookieSettings(w http.ResponseWriter, r *http.Request) {
	a.render(w, r, http.StatusOK, a.page(r, "Cookie settings", ""), views.CookieSettingsPage(a.legal(), a.cookieSettings(r)))
}

// healthz answers 200 when the database answers, 503 otherwise.
func (a *app) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if err := a.store.Ping(r.Context()); err != nil {
		a.log.ErrorContext(r.Context(), "health check failed", "err", err)
		w.WriteHeader(http.StatusServiceUnavailable)
		json.NewEncoder(w).Encode(map[string]string{"status": "unavailable", "database": "not answering"})
		return
	}
	json.NewEncoder(w).Encode(map[string]string{"status": "ok", "database": "ok"})
}

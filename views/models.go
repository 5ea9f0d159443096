// Package views holds the templ components of tunelab. Components take the plain view-model
// structs below, shaped like the screen; this package imports nothing of tunelab's own.
package views

// Assets are the content-hashed URLs of the static files every page loads.
type Assets struct {
	CSS     []string // css/app/*.css, one file per area, in the order to link them
	HTMX    string   // js/htmx.min.js
	HTMXSSE string   // js/ext/hx-sse.min.js
	AppJS   string   // js/app.js
	Icon    string   // img/favicon.svg

	// Loaded only on pages with Page.Charts set (the run page).
	UPlotJS    string // js/uPlot.iife.min.js
	UPlotCSS   string // css/uPlot.min.css
	RunChartJS string // js/run-chart.js, an ES module (after the deferred uPlot, like any module script)
}

// Page is what the layout needs around every screen.
type Page struct {
	Title  string // shown in <title> as "Title · tunelab"
	Active string // nav item to highlight: "dashboard", "runs", "datasets", "billing", "settings", "admin"; "signin"/"signup" on those pages
	User   *NavUser
	Assets Assets
	Flash  string // one-off notice shown at the top of the main column ("Signed out.")
	Charts bool   // the page draws live charts: the layout also loads uPlot and run-chart.js
	// BillingNotice is the banner of a signed-in person whose last payment failed.
	BillingNotice string
	// VerifyEmail, when set, is the unconfirmed address a banner asks to confirm.
	VerifyEmail string
	// Consent is the cookie banner, shown until the visitor chooses; nil: not shown.
	Consent *ConsentBanner
	// AnalyticsJS is the analytics script's URL, set only with analytics consent.
	AnalyticsJS string
	// AnalyticsCharts is the admin analytics charts module's URL; set, the layout loads uPlot too.
	AnalyticsCharts string
}

// NavUser is the signed-in person as the navigation shows them; nil when signed out.
type NavUser struct {
	Email   string
	Name    string // the display name, shown in place of the email when set
	IsAdmin bool
}

// SignUpForm is the sign-up form with what was typed and the messages beside each field.
// The password is never echoed back.
type SignUpForm struct {
	Email         string
	AcceptTerms   bool
	TermsVersion  string // version shown next to the checkbox, e.g. "2026-11-01"
	EmailError    string
	PasswordError string
	TermsError    string
	FormError     string // shown above the form (rate limit, ...)
	MinPassword   int
	MaxPassword   int
	OAuth         []OAuthButton // "Continue with ..." buttons of configured providers
}

// SignInForm is the sign-in form; Error is the one message for any failed attempt.
type SignInForm struct {
	Email  string
	Next   string // local path to return to after signing in
	Error  string
	Notice string        // a one-off notice shown inside the form ("You have signed out."); gone when the form re-renders
	OAuth  []OAuthButton // "Continue with ..." buttons of configured providers
}

// Dashboard is the signed-in home page.
type Dashboard struct {
	Email         string
	RunCount      int
	DatasetCount  int
	GPUSecondsStr string // formatted time used this period, e.g. "0 s"
	Period        string // the period it counts, "November 2026"
	ByStatus      []StatusCount
	TimeLabel     string // "GPU time", or "Compute time" on a backend without GPUs
	Methods       string // the methods this backend offers, in words: "LoRA, DPO or full"
	HasGPUs       bool   // the backend trains on GPUs (the guide says where training runs)
}

// StatusCount is how many runs are in one status, linking to the list filtered by it.
type StatusCount struct {
	Status string
	Label  string
	Tone   string // the status badge's tone
	Count  int
	Href   string // /runs?status=...
}

// Account is the account section of the settings page.
type Account struct {
	Email        string
	MemberSince  string // formatted date
	TermsVersion string
	IsAdmin      bool
	TwoFactorOn  bool
	Profile      ProfileForm   // the Profile section (settings_profile.templ)
	SignIn       SignInMethods // the Sign-in methods section (settings_signin.templ)
}

// PasswordForm is the change-password form on the settings page.
type PasswordForm struct {
	NoPassword   bool // an account made through a provider: the form sets a first password
	CurrentError string
	NewError     string
	FormError    string
	Saved        bool
	MinPassword  int
	MaxPassword  int
}

// Legal carries the facts the legal pages state, so the text matches the running server.
type Legal struct {
	TermsVersion  string // e.g. "2026-11-01"
	Effective     string // e.g. "1 November 2026"
	Operator      string // who runs this instance, from config; "the operator of this server" when unset
	Contact       string // contact address, may be empty
	SessionIdle   string // "1 hour"
	SessionMax    string // "24 hours"
	SessionCookie string // cookie name as sent, e.g. "tunelab_session" or "__Host-tunelab_session"
	ConsentCookie string // the consent cookie's name as sent
	ConsentDays   string // how long a cookie choice holds: "182 days"
	AnalyticsDays int    // raw analytics retention, 90
	TelemetryDays int    // security telemetry retention, 90
	PurgeDelay    string // deleted runs, snapshots and datasets are erased this long after the delete: "24 hours"
	DatasetKeep   string // a dataset is deleted this long after the last run that used it ended: "30 days"
	Backend       string // where training runs, in words: "this server's CPU"
	Provider      bool   // the http backend is on: a remote GPU provider receives datasets to train on
	BillingOn     bool   // Stripe is configured: plans, payments and the data they need
	MailRelay     bool   // mail leaves through an SMTP server (else it is written to files on this server)
	BillingGrace  string // how long new runs still start after a failed payment: "72 hours"
	// OAuthCookie is the cookie of a Google or GitHub sign-in in progress, and Providers
	// names the configured providers ("Google and GitHub"); both "" when none is.
	OAuthCookie string
	Providers   string
}

// ErrorPage is a full-page error (404, 500, 403).
type ErrorPage struct {
	Status  int
	Title   string
	Message string
}

// Toast is a short notice shown in the toast region, usually after an htmx request failed.
type Toast struct {
	Kind    string // "error", "success", "info"
	Message string
}

// AdminOverview is the admin home: accounts and the latest security events.
type AdminOverview struct {
	UserCount int
	Users     []AdminUserRow
	Events    []SecurityEventRow
	Outbox    *MeterOutbox         // nil when billing is off
	Reconcile *MeterReconciliation // nil when billing is off
	Mail      AdminMail
	Audit     []AuditRow // the audit log, newest first
}

// MeterOutbox is the state of GPU seconds on their way to Stripe.
type MeterOutbox struct {
	Pending       string // "2 rows, 2 min 30 s"
	Sent          string
	NotBilled     string // free plan or empty rows
	TooOld        string // rows past Stripe's window, to bill by hand
	TooOldAlert   bool
	BacklogAlert  bool // usage has waited for Stripe past billing.MeterBacklogAlert
	OldestPending string
	LastError     string
}

// AdminUserRow is one account in the admin list.
type AdminUserRow struct {
	Email   string
	Created string // formatted time
	IsAdmin bool
}

// SecurityEventRow is one security event (a sign-in, a denied request, a delete...) as the
// admin review shows it.
type SecurityEventRow struct {
	When      string // formatted time, UTC
	Kind      string // the kind in words: "Sign-in", "Failed sign-in", "Run deleted", ...
	Email     string // the account, what was typed for an unknown account, or the item ("run 7")
	IP        string
	UserAgent string
	Country   string // ISO code, or "unknown"
	Failure   bool   // true for failed attempts, shown highlighted
}

// Billing is the billing page: plan, this period's GPU time and cost, plans, invoices.
type Billing struct {
	Enabled           bool   // Stripe is configured; without it every run is free
	TimeLabel         string // "GPU time", or "Compute time" on a backend without GPUs
	RunColumns        string // columns of the runs table: 7, or 4 when billing is off (no prices)
	CheckoutDone      bool   // back from Checkout having paid
	CheckoutCancelled bool   // back from Checkout having left it
	PlanName          string
	IntervalLabel     string // "Monthly", "Annual", or "" on the free plan
	StatusLabel       string // "Active", "Past due"…; "" on the free plan
	StatusTone        string
	PeriodText        string // "1 Nov – 1 Dec 2026"
	RenewText         string // "Renews 1 Dec 2026", "Ends 1 Dec 2026"
	UsedText          string
	IncludedText      string
	LeftText          string
	CostText          string
	RateText          string // "$0.000125 per cpu second past the included time"
	MeterClass        string // meter-w-0 … meter-w-20: share of the included time used
	MeterOver         bool
	Runs              []BillingRun
	Interval          string // plans shown at monthly or annual prices
	MonthlyHref       string
	AnnualHref        string
	Plans             []PlanOption
	CanManage         bool // a Stripe customer exists: the portal can open
	Invoices          []InvoiceRow
	InvoicesError     bool
	PaymentFailed     string // "" or when the last payment failed
	CapShown          bool   // a paid plan: the monthly cap form is offered
	CapUSD            string // the cap as the form shows it; "" for none
	CapText           string // "$50.00 a period"; "" for none
}

// BillingRun is one run's GPU time this period.
type BillingRun struct {
	Name     string
	Href     string // "" for a deleted run
	GPUType  string
	Ended    string
	Time     string
	Included string
	Billed   string
	Cost     string
}

// PlanOption is one plan the person can choose.
type PlanOption struct {
	ID       string
	Name     string
	Price    string // "$29"
	Per      string // "/ month", "/ year"; "" for the free plan
	Included string // "10 h of GPU time a month"
	Rates    []string
	Current  bool
	Free     bool
	Switch   bool // already subscribed: plans change in Stripe's portal, not a new Checkout
}

// InvoiceRow is one Stripe invoice.
type InvoiceRow struct {
	Number     string
	Date       string
	Amount     string
	Status     string
	StatusTone string
	URL        string // hosted invoice page; "" for drafts
}

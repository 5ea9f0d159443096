package handlers

import (
	"net/http"

	"tunelab/static"
)

// routes is the one table of every endpoint, grouped by who may call it.
func (a *app) routes() http.Handler {
	mux := http.NewServeMux()

	// Outer layers wrap every request; page requests also get the session and user.
	public := chain{a.sessions.LoadAndSave, a.loadUser}
	signedIn := public.extend(a.requireAuth)
	admin := signedIn.extend(a.requireAdmin)

	// Static files and health: no session.
	mux.Handle("GET /static/", static.Handler())
	mux.HandleFunc("GET /healthz", a.healthz)

	// Accounts.
	mux.Handle("GET /signup", public.thenFunc(a.showSignUp))
	mux.Handle("POST /signup", public.thenFunc(a.createAccount))
	mux.Handle("GET /signin", public.thenFunc(a.showSignIn))
	mux.Handle("POST /signin", public.thenFunc(a.signIn))
	mux.Handle("POST /signout", public.thenFunc(a.signOut))

	// Legal pages, readable by anyone.
	mux.Handle("GET /terms", public.thenFunc(a.showTerms))
	mux.Handle("GET /privacy", public.thenFunc(a.showPrivacy))
	mux.Handle("GET /cookies", public.thenFunc(a.showCookiePolicy))
	mux.Handle("GET /cookies/settings", public.thenFunc(a.showCookieSettings))

	// The signed-in product.
	mux.Handle("GET /{$}", signedIn.thenFunc(a.showDashboard))
	mux.Handle("GET /runs", signedIn.thenFunc(a.listRuns))
	mux.Handle("GET /datasets", signedIn.thenFunc(a.listDatasets))
	mux.Handle("POST /datasets", signedIn.thenFunc(a.uploadDataset))
	mux.Handle("POST /datasets/samples", signedIn.thenFunc(a.useSample))
	mux.Handle("GET /datasets/{id}", signedIn.thenFunc(a.showDataset))
	mux.Handle("POST /datasets/{id}/delete", signedIn.thenFunc(a.deleteDataset))
	mux.Handle("GET /billing", signedIn.thenFunc(a.showBilling))
	mux.Handle("GET /settings", signedIn.thenFunc(a.showSettings))
	mux.Handle("POST /settings/password", signedIn.thenFunc(a.changePassword))

	// Operators.
	mux.Handle("GET /admin", admin.thenFunc(a.showAdmin))

	// Anything else is a 404 page (with the session, so the nav shows who is signed in).
	mux.Handle("/", public.thenFunc(a.notFound))

	return chain{a.recoverPanics, a.logRequests, a.securityHeaders, a.crossOriginProtection}.then(mux)
}

package handlers

import (
	"html"
	"os"
	"regexp"
	"strings"
	"testing"
)

// routePatterns reads every pattern registered in routes.go, the one route table.
func routePatterns(t *testing.T) map[string]bool {
	t.Helper()
	src, err := os.ReadFile("routes.go")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, m := range regexp.MustCompile(`mux\.Handle(?:Func)?\("([^"]+)"`).FindAllStringSubmatch(string(src), -1) {
		out[m[1]] = true
	}
	return out
}

// legalFeatures maps what a legal page may promise to the route that must exist for the
// promise to be true. A page that names two-factor authentication while no /settings/2fa
// route exists fails, and so does one that offers an export, Google sign-in or a plan.
var legalFeatures = []struct {
	feature string
	phrase  *regexp.Regexp
	route   string
}{
	{"two-factor authentication", regexp.MustCompile(`(?i)two-factor|\b2fa\b|\btotp\b|authenticator app`), "GET /settings/2fa"},
	{"a list of active sessions", regexp.MustCompile(`(?i)active sessions|sign (any|one) of them out|sign out any (active )?session|revoke`), "GET /settings/sessions"},
	{"API keys", regexp.MustCompile(`(?i)api keys?`), "GET /settings/api-keys"},
	{"sign-in with Google or GitHub", regexp.MustCompile(`(?i)\bgoogle\b|\bgithub\b|oauth`), "GET /auth/{provider}/start"},
	{"a password reset by email", regexp.MustCompile(`(?i)reset (your|a forgotten) password|forgot`), "GET /password/forgot"},
	{"emails sent to the person", regexp.MustCompile(`(?i)(we|it) send(s)? you|email provider|notification|messages we send`), "POST /password/forgot"},
	{"a data export", regexp.MustCompile(`(?i)\bexport\b|machine-readable archive`), "POST /settings/export"},
	{"closing the account yourself", regexp.MustCompile(`(?i)close (your|the|your whole) account (yourself|in settings)|closing your account in settings`), "POST /settings/close"},
	{"plans and payments", regexp.MustCompile(`(?i)\bstripe\b|checkout|customer portal|invoices?\b|\bcard (details|numbers?)\b|grace period`), "POST /billing/checkout"},
	{"analytics that run", regexp.MustCompile(`(?i)analytics (are|is) (collected|counted|optional)|accept analytics|turn analytics on|global privacy control`), "POST /consent"},
	{"a country derived from the IP", regexp.MustCompile(`(?i)geolite|\bcountry is\b`), "GET /admin/security"},
	{"GPU time billed", regexp.MustCompile(`(?i)billed|you pay`), "POST /billing/checkout"},
	// What the pages do promise, and the software does.
	{"email and password accounts", regexp.MustCompile(`(?i)email address and a password`), "POST /signup"},
	{"changing the password", regexp.MustCompile(`(?i)change your password|changing your password`), "POST /settings/password"},
	{"deleting runs", regexp.MustCompile(`(?i)delete your runs|runs you delete`), "POST /runs/{id}/delete"},
	{"deleting datasets", regexp.MustCompile(`(?i)delete your runs and datasets|datasets you delete`), "POST /datasets/{id}/delete"},
	{"downloading snapshots", regexp.MustCompile(`(?i)download (the results|your snapshots)`), "GET /runs/{id}/snapshots/{sid}/download"},
	{"signing out", regexp.MustCompile(`(?i)signing out|sign out`), "POST /signout"},
}

func TestLegalPagesNameOnlyFeaturesThatExist(t *testing.T) {
	routes := routePatterns(t)
	if !routes["POST /signup"] || !routes["GET /runs/{id}"] {
		t.Fatalf("the route table was not read: %v", routes)
	}
	tags := regexp.MustCompile(`(?s)<[^>]*>`)
	// Both ways the pages read: without Stripe, and with it (they then describe payment).
	for _, ts := range []*testServer{newTestServer(t, Config{}), newBillingServer(t)} {
		for _, path := range []string{"/terms", "/privacy", "/cookies", "/cookies/settings"} {
			r := ts.do(ts.client(), "GET", path, nil, nil)
			if r.status != 200 {
				t.Fatalf("%s: %d", path, r.status)
			}
			main := r.body
			if i := strings.Index(main, `<main`); i >= 0 {
				main = main[i:]
			}
			if i := strings.Index(main, `</main>`); i >= 0 {
				main = main[:i]
			}
			text := html.UnescapeString(tags.ReplaceAllString(main, " "))
			for _, f := range legalFeatures {
				if m := f.phrase.FindString(text); m != "" && !routes[f.route] {
					t.Errorf("%s names %s (%q) but there is no %q route", path, f.feature, m, f.route)
				}
			}
		}
	}
}

// The cookie settings agree with the cookie policy: the session and consent cookies, and
// analytics only with consent.
func TestCookiePagesAgree(t *testing.T) {
	ts := newTestServer(t, Config{})
	policy := ts.do(ts.client(), "GET", "/cookies", nil, nil).body
	settings := ts.do(ts.client(), "GET", "/cookies/settings", nil, nil).body
	for _, page := range []string{policy, settings} {
		if !strings.Contains(page, "<code>tunelab_session</code>") || !strings.Contains(page, "<code>tunelab_consent</code>") {
			t.Errorf("a cookie page does not name both cookies, the session and the consent cookie")
		}
		for _, wrong := range []string{"collects no analytics", "Google", "GitHub"} {
			if strings.Contains(page, wrong) {
				t.Errorf("a cookie page says %q, which is not what this server does", wrong)
			}
		}
	}
	if !strings.Contains(policy, "182 days") || !strings.Contains(policy, "90 days") || !strings.Contains(policy, "Global Privacy Control") {
		t.Error("the cookie policy does not give the choice's lifetime, the analytics retention or how GPC counts")
	}
}

// The privacy policy lists what using a model keeps: the playground history (prompts, not
// answers), deployments and their logs, evaluation scores and API fine-tuning jobs.
func TestPrivacyPolicyListsModelUseData(t *testing.T) {
	ts := newTestServer(t, Config{})
	r := ts.do(ts.client(), "GET", "/privacy", nil, nil)
	for _, want := range []string{"Playground history.", "the answers are not kept", "Deployments.", "64 KiB of its inference server", "Evaluations.", "Fine-tuning jobs made through the API."} {
		if !strings.Contains(html.UnescapeString(r.body), want) {
			t.Errorf("the privacy policy does not say %q", want)
		}
	}
}

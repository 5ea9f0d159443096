package handlers

import (
	"encoding/json"
	"html"
	"os"
	"regexp"
	"strings"
	"testing"
)

var (
	htmxConfigMeta = regexp.MustCompile(`<meta name="htmx-config" content='([^']*)'`)
	// htmx 4 declares its defaults as one object literal: config={logAll:!1,...}.
	htmxDefaults = regexp.MustCompile(`config=\{([^}]*)\}`)
	htmxKey      = regexp.MustCompile(`(?:^|,)([A-Za-z]+):`)
)

// TestHTMXConfigOnlyKnownSafeOptions: the layout's htmx config uses only options the
// vendored htmx has (htmx 4 dropped allowEval, allowScriptTags and the history cache, so
// setting them would protect nothing while looking as if it did), keeps requests to our
// own origin, and never hands htmx the CSP nonce (inlineScriptNonce), which would let
// inline scripts in swapped-in HTML run. eval-like code (hx-on, js: values) is blocked by
// the CSP's script-src without 'unsafe-eval' (TestEveryHTMLPageHasStrictCSPWithFreshNonce).
func TestHTMXConfigOnlyKnownSafeOptions(t *testing.T) {
	js, err := os.ReadFile("../static/js/htmx.min.js")
	if err != nil {
		t.Fatal(err)
	}
	d := htmxDefaults.FindSubmatch(js)
	if d == nil {
		t.Fatal("the vendored htmx has no config={...} defaults: its layout changed, read its config anew")
	}
	known := map[string]bool{}
	for _, m := range htmxKey.FindAllStringSubmatch(string(d[1]), -1) {
		known[m[1]] = true
	}
	for _, want := range []string{"mode", "history", "noSwap", "includeIndicatorCSS"} {
		if !known[want] {
			t.Fatalf("the vendored htmx's defaults lack %q; read: %v", want, known)
		}
	}
	for _, gone := range []string{"allowEval", "allowScriptTags", "historyCacheSize", "refreshOnHistoryMiss", "selfRequestsOnly"} {
		if known[gone] || strings.Contains(string(js), gone) {
			t.Errorf("the vendored htmx has %s again: set it in views/layout.templ's htmx-config", gone)
		}
	}

	ts := newTestServer(t, Config{})
	for _, path := range []string{"/signin", "/cookies"} {
		r := ts.do(ts.client(), "GET", path, nil, nil)
		m := htmxConfigMeta.FindStringSubmatch(r.body)
		if m == nil {
			t.Fatalf("%s has no htmx-config meta", path)
		}
		var cfg map[string]any
		if err := json.Unmarshal([]byte(html.UnescapeString(m[1])), &cfg); err != nil {
			t.Fatalf("%s: htmx-config is not JSON: %v", path, err)
		}
		for k := range cfg {
			if !known[k] {
				t.Errorf("%s: htmx-config sets %q, which the vendored htmx does not have", path, k)
			}
		}
		if cfg["mode"] != "same-origin" {
			t.Errorf("%s: htmx mode = %v, want same-origin", path, cfg["mode"])
		}
		if _, ok := cfg["inlineScriptNonce"]; ok {
			t.Errorf("%s: htmx-config hands htmx the script nonce", path)
		}
	}
}

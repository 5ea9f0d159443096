package handlers

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// The cookie policy must name every cookie the server really sets.
func TestCookiePolicyNamesEveryCookieSet(t *testing.T) {
	for _, secure := range []bool{false, true} {
		ts := newTestServer(t, Config{Secure: secure})
		c := ts.client()
		var responses []response
		responses = append(responses,
			ts.do(c, "GET", "/signup", nil, nil),
			ts.do(c, "POST", "/signup", signUpValues("cookie@example.com"), nil),
			ts.do(c, "GET", "/", nil, nil),
			ts.do(c, "POST", "/settings/password", url.Values{"current_password": {testPassword}, "new_password": {"cookie jar passphrase"}}, nil),
			ts.do(c, "POST", "/signout", nil, nil),
			ts.do(c, "POST", "/signin", url.Values{"email": {"cookie@example.com"}, "password": {"wrong one here"}}, nil),
			ts.do(c, "GET", "/cookies/settings", nil, nil),
		)
		names := map[string]bool{}
		for _, r := range responses {
			for _, ck := range (&http.Response{Header: r.header}).Cookies() {
				names[ck.Name] = true
			}
		}
		if len(names) == 0 {
			t.Fatal("no cookie was set at all")
		}
		policy := ts.do(ts.client(), "GET", "/cookies", nil, nil).body
		for name := range names {
			if !strings.Contains(policy, ">"+name+"<") {
				t.Errorf("secure=%v: cookie %q is set but the cookie policy does not list it", secure, name)
			}
		}
	}
}

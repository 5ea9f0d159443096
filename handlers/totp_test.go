package handlers

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"tunelab/store/storetest"
)

var (
	manualKeyRE    = regexp.MustCompile(`data-testid="totp-key">([A-Z2-7 ]+)<`)
	recoveryCodeRE = regexp.MustCompile(`data-testid="recovery-code">([a-z2-7-]+)<`)
)

// totpCode is the code of secret's step at t, as an authenticator app computes it.
func totpCode(t testing.TB, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCodeCustom(secret, at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// enrolTOTP turns two-factor sign-in on for c's account through the Settings forms and
// returns the manual key and the recovery codes. The clock ends one step later.
func (ts *testServer) enrolTOTP(c *http.Client) (string, []string) {
	t := ts.t
	t.Helper()
	if r := ts.do(c, "POST", "/settings/2fa", url.Values{"action": {"begin"}, "password": {"wrong password here"}}, nil); r.status != http.StatusUnprocessableEntity {
		t.Fatalf("begin with a wrong password: %d", r.status)
	}
	if r := ts.do(c, "POST", "/settings/2fa", url.Values{"action": {"begin"}, "password": {testPassword}}, nil); r.status != http.StatusSeeOther {
		t.Fatalf("begin: %d\n%s", r.status, r.body)
	}
	page := ts.do(c, "GET", "/settings/2fa", nil, nil)
	m := manualKeyRE.FindStringSubmatch(page.body)
	if m == nil || !strings.Contains(page.body, `src="/settings/2fa/qr.png"`) {
		t.Fatalf("no manual key or QR code on the pending page:\n%s", page.body)
	}
	secret := strings.ReplaceAll(m[1], " ", "")
	if len(secret) != 32 { // 160 bits
		t.Fatalf("seed %q is not 160 bits", secret)
	}
	qr := ts.do(c, "GET", "/settings/2fa/qr.png", nil, nil)
	if qr.status != http.StatusOK || qr.header.Get("Content-Type") != "image/png" || !strings.HasPrefix(qr.body, "\x89PNG") {
		t.Fatalf("QR code: %d %q", qr.status, qr.header.Get("Content-Type"))
	}
	// Not on before a right code.
	wrong := "000000"
	if totpCode(t, secret, ts.clock()) == wrong {
		wrong = "111111"
	}
	if r := ts.do(c, "POST", "/settings/2fa", url.Values{"action": {"confirm"}, "code": {wrong}}, nil); r.status != http.StatusUnprocessableEntity || !strings.Contains(r.body, `data-testid="code-error"`) {
		t.Fatalf("confirm with a wrong code: %d", r.status)
	}
	if s := ts.do(c, "GET", "/settings", nil, nil); !strings.Contains(s.body, ">Off<") {
		t.Fatal("Settings shows two-factor sign-in on before a right code")
	}
	r := ts.do(c, "POST", "/settings/2fa", url.Values{"action": {"confirm"}, "code": {totpCode(t, secret, ts.clock())}}, nil)
	if r.status != http.StatusOK {
		t.Fatalf("confirm: %d\n%s", r.status, r.body)
	}
	var codes []string
	for _, m := range recoveryCodeRE.FindAllStringSubmatch(r.body, -1) {
		codes = append(codes, m[1])
	}
	if len(codes) != 10 {
		t.Fatalf("%d recovery codes shown, want 10", len(codes))
	}
	if again := ts.do(c, "GET", "/settings/2fa", nil, nil); strings.Contains(again.body, codes[0]) || !strings.Contains(again.body, `data-testid="totp-on"`) {
		t.Fatal("recovery codes shown a second time, or 2FA not on")
	}
	ts.advance(30 * time.Second)
	return secret, codes
}

// passwordStep signs in with the password and expects to be asked for a code.
func (ts *testServer) passwordStep(c *http.Client, email string) {
	ts.t.Helper()
	r := ts.do(c, "POST", "/signin", url.Values{"email": {email}, "password": {testPassword}}, nil)
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/signin/2fa" {
		ts.t.Fatalf("password step: %d %q", r.status, r.header.Get("Location"))
	}
}

func (ts *testServer) signOutClient(c *http.Client) {
	ts.t.Helper()
	if r := ts.do(c, "POST", "/signout", nil, nil); r.status != http.StatusSeeOther {
		ts.t.Fatalf("sign out: %d", r.status)
	}
}

func TestTwoFactorSignIn(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.signUp("ada@example.com")
	if r := ts.do(c, "GET", "/signin/2fa", nil, nil); r.status != http.StatusSeeOther {
		t.Fatalf("code form while signed in: %d", r.status)
	}
	secret, codes := ts.enrolTOTP(c)
	// Neither the seed nor a recovery code is in the database file in plain text.
	dbFile := filepath.Join(filepath.Dir(ts.vaultDir), storetest.DBFile)
	for _, f := range []string{dbFile, dbFile + "-wal"} {
		b, err := os.ReadFile(f)
		if os.IsNotExist(err) && f != dbFile {
			continue // the WAL was checkpointed away
		}
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(secret)) || bytes.Contains(b, []byte(codes[0])) {
			t.Fatalf("%s holds the seed or a recovery code in plain text", filepath.Base(f))
		}
	}
	ts.signOutClient(c)
	if r := ts.do(c, "POST", "/signin/2fa", url.Values{"code": {"123456"}}, nil); r.status != http.StatusSeeOther || r.header.Get("Location") != "/signin" {
		t.Fatalf("code without a password first: %d %q", r.status, r.header.Get("Location"))
	}
	if r := ts.do(c, "GET", "/signin", nil, nil); strings.Contains(r.body, "within 5 minutes") {
		t.Fatal("the sign-in page speaks of an expired code step that never began")
	}

	ts.passwordStep(c, "ada@example.com")
	halfToken := sessionCookie(c, ts.URL)
	// Half signed in grants nothing.
	for _, path := range []string{"/", "/settings", "/settings/2fa", "/runs"} {
		if r := ts.do(c, "GET", path, nil, nil); r.status != http.StatusSeeOther || !strings.HasPrefix(r.header.Get("Location"), "/signin") {
			t.Errorf("GET %s half signed in: %d %q", path, r.status, r.header.Get("Location"))
		}
	}
	if r := ts.do(c, "GET", "/signin/2fa", nil, nil); r.status != http.StatusOK || !strings.Contains(r.body, `name="code"`) {
		t.Fatalf("code form: %d", r.status)
	}
	// Two steps of skew either way are refused.
	for _, skew := range []time.Duration{-time.Minute, time.Minute} {
		if r := ts.do(c, "POST", "/signin/2fa", url.Values{"code": {totpCode(t, secret, ts.clock().Add(skew))}}, nil); r.status != http.StatusUnprocessableEntity {
			t.Fatalf("code %v away: %d", skew, r.status)
		}
	}
	code := totpCode(t, secret, ts.clock())
	r := ts.do(c, "POST", "/signin/2fa", url.Values{"code": {code}}, nil)
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/" {
		t.Fatalf("right code: %d %q\n%s", r.status, r.header.Get("Location"), r.body)
	}
	if tok := sessionCookie(c, ts.URL); tok == "" || tok == halfToken {
		t.Fatal("the session token was not renewed on full sign-in")
	}
	if r := ts.do(c, "GET", "/", nil, nil); r.status != http.StatusOK {
		t.Fatalf("signed in: GET / %d", r.status)
	}

	// The same code again (same step) is refused: replay.
	ts.signOutClient(c)
	ts.passwordStep(c, "ada@example.com")
	if r := ts.do(c, "POST", "/signin/2fa", url.Values{"code": {code}}, nil); r.status != http.StatusUnprocessableEntity || !strings.Contains(r.body, "already used") {
		t.Fatalf("replayed code: %d", r.status)
	}
	// A recovery code works once.
	if r := ts.do(c, "POST", "/signin/2fa", url.Values{"code": {strings.ToUpper(codes[3])}}, nil); r.status != http.StatusSeeOther {
		t.Fatalf("recovery code: %d\n%s", r.status, r.body)
	}
	ts.signOutClient(c)
	ts.passwordStep(c, "ada@example.com")
	if r := ts.do(c, "POST", "/signin/2fa", url.Values{"code": {codes[3]}}, nil); r.status != http.StatusUnprocessableEntity {
		t.Fatalf("recovery code used twice: %d", r.status)
	}
	if n := ts.countEvents(t, "recovery_code_used"); n != 1 {
		t.Fatalf("%d recovery_code_used events, want 1", n)
	}
}

func TestTwoFactorHalfSignedInExpires(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.signUp("ada@example.com")
	secret, _ := ts.enrolTOTP(c)
	ts.signOutClient(c)
	ts.passwordStep(c, "ada@example.com")
	ts.advance(5*time.Minute + time.Second)
	r := ts.do(c, "POST", "/signin/2fa", url.Values{"code": {totpCode(t, secret, ts.clock())}}, nil)
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/signin" {
		t.Fatalf("code after 5 minutes: %d %q", r.status, r.header.Get("Location"))
	}
	if r := ts.do(c, "GET", "/", nil, nil); r.status != http.StatusSeeOther {
		t.Fatalf("GET / after the half sign-in expired: %d", r.status)
	}
	if r := ts.do(c, "GET", "/signin", nil, nil); !strings.Contains(r.body, "within 5 minutes") {
		t.Fatal("the sign-in page does not say why")
	}
	// And the state is gone, not merely refused once.
	if r := ts.do(c, "GET", "/signin/2fa", nil, nil); r.status != http.StatusSeeOther {
		t.Fatalf("code form after expiry: %d", r.status)
	}
}

func TestTwoFactorCodesRateLimited(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.signUp("ada@example.com")
	secret, _ := ts.enrolTOTP(c)
	ts.signOutClient(c)
	ts.passwordStep(c, "ada@example.com")
	right := totpCode(t, secret, ts.clock())
	wrong := "000000"
	if wrong == right {
		wrong = "111111"
	}
	for i := range 5 {
		if r := ts.do(c, "POST", "/signin/2fa", url.Values{"code": {wrong}}, nil); r.status != http.StatusUnprocessableEntity {
			t.Fatalf("wrong code %d: %d", i+1, r.status)
		}
	}
	r := ts.do(c, "POST", "/signin/2fa", url.Values{"code": {right}}, nil)
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
		t.Fatalf("after 5 wrong codes: %d, want 429 even for the right code", r.status)
	}
	// Per client address too: another account's guesses from the same address add up.
	ts.advance(16 * time.Minute)
	for i := 0; i < 4; i++ {
		d := ts.signUp("guess" + string(rune('a'+i)) + "@example.com")
		ts.enrolTOTP(d)
		ts.signOutClient(d)
		ts.passwordStep(d, "guess"+string(rune('a'+i))+"@example.com")
		for range 5 {
			ts.do(d, "POST", "/signin/2fa", url.Values{"code": {"12345"}}, nil)
		}
	}
	ts.passwordStep(c, "ada@example.com")
	if r := ts.do(c, "POST", "/signin/2fa", url.Values{"code": {totpCode(t, secret, ts.clock())}}, nil); r.status != http.StatusTooManyRequests {
		t.Fatalf("after 20 wrong codes from one address: %d, want 429", r.status)
	}
}

func TestTwoFactorDisableAndRegenerate(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.signUp("ada@example.com")
	secret, codes := ts.enrolTOTP(c)

	r := ts.do(c, "POST", "/settings/2fa", url.Values{"action": {"regenerate"}, "code": {totpCode(t, secret, ts.clock())}}, nil)
	fresh := recoveryCodeRE.FindAllStringSubmatch(r.body, -1)
	if r.status != http.StatusOK || len(fresh) != 10 || fresh[0][1] == codes[0] {
		t.Fatalf("regenerate: %d, %d codes", r.status, len(fresh))
	}
	dl := ts.do(c, "POST", "/settings/2fa/recovery-codes.txt", url.Values{"code": {fresh[0][1], fresh[1][1], "<script>"}}, nil)
	if dl.status != http.StatusOK || !strings.HasPrefix(dl.header.Get("Content-Disposition"), "attachment") ||
		!strings.Contains(dl.body, fresh[1][1]) || strings.Contains(dl.body, "<script>") {
		t.Fatalf("download: %d %q\n%s", dl.status, dl.header.Get("Content-Disposition"), dl.body)
	}
	ts.advance(30 * time.Second)

	code := totpCode(t, secret, ts.clock())
	if r := ts.do(c, "POST", "/settings/2fa", url.Values{"action": {"disable"}, "password": {"not my password!"}, "code": {code}}, nil); r.status != http.StatusUnprocessableEntity || !strings.Contains(r.body, `data-testid="password-error"`) {
		t.Fatalf("disable with a wrong password: %d", r.status)
	}
	if r := ts.do(c, "POST", "/settings/2fa", url.Values{"action": {"disable"}, "password": {testPassword}, "code": {"12"}}, nil); r.status != http.StatusUnprocessableEntity || !strings.Contains(r.body, `data-testid="code-error"`) {
		t.Fatalf("disable with a wrong code: %d", r.status)
	}
	if r := ts.do(c, "POST", "/settings/2fa", url.Values{"action": {"disable"}, "password": {testPassword}, "code": {code}}, nil); r.status != http.StatusOK || !strings.Contains(r.body, `data-testid="totp-off"`) {
		t.Fatalf("disable: %d\n%s", r.status, r.body)
	}
	ts.signOutClient(c)
	if r := ts.do(c, "POST", "/signin", url.Values{"email": {"ada@example.com"}, "password": {testPassword}}, nil); r.header.Get("Location") != "/" {
		t.Fatalf("sign-in after disabling asks for a code: %q", r.header.Get("Location"))
	}
	for _, kind := range []string{"totp_enabled", "recovery_codes_regenerated", "totp_disabled", "totp_failed"} {
		if ts.countEvents(t, kind) == 0 {
			t.Errorf("no %s security event", kind)
		}
	}
}

// countEvents counts the recent security events of kind.
func (ts *testServer) countEvents(t testing.TB, kind string) int {
	t.Helper()
	events, err := ts.store.RecentSecurityEvents(context.Background(), 500)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range events {
		if e.Kind == kind {
			n++
		}
	}
	return n
}

package handlers

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"tunelab/billing"
	"tunelab/billing/stripemock"
	"tunelab/store"
)

// logNumbers are the numeric fields every request line carries (and its timestamp): a
// response size could equal a six-digit code by chance, so they are taken out before a
// code is looked for.
var logNumbers = regexp.MustCompile(`(time|bytes|duration_ms|status)=\S+`)

// TestLogsHoldNoTwoFactorSecrets: enrolling in two-factor sign-in, signing in with a code
// (and a wrong one) and with a recovery code leaves no seed, code or recovery code in
// the logs.
func TestLogsHoldNoTwoFactorSecrets(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.signUp("twofa-logs@example.com")
	secret, codes := ts.enrolTOTP(c)
	used := []string{totpCode(t, secret, ts.clock().Add(-30*time.Second))} // the one that confirmed enrolment

	ts.signOutClient(c)
	ts.passwordStep(c, "twofa-logs@example.com")
	wrong := totpCode(t, secret, ts.clock().Add(5*time.Minute))
	used = append(used, wrong)
	if r := ts.do(c, "POST", "/signin/2fa", url.Values{"code": {wrong}}, nil); r.status != http.StatusUnprocessableEntity {
		t.Fatalf("wrong code: %d", r.status)
	}
	code := totpCode(t, secret, ts.clock())
	used = append(used, code)
	if r := ts.do(c, "POST", "/signin/2fa", url.Values{"code": {code}}, nil); r.status != http.StatusSeeOther {
		t.Fatalf("right code: %d\n%s", r.status, r.body)
	}
	ts.signOutClient(c)
	ts.passwordStep(c, "twofa-logs@example.com")
	if r := ts.do(c, "POST", "/signin/2fa", url.Values{"code": {codes[0]}}, nil); r.status != http.StatusSeeOther {
		t.Fatalf("recovery code: %d\n%s", r.status, r.body)
	}
	ts.do(c, "POST", "/settings/2fa/recovery-codes.txt", url.Values{}, nil)

	logs := ts.logs.String()
	if !strings.Contains(logs, "path=/signin/2fa") {
		t.Fatalf("the 2FA requests were not logged:\n%s", logs)
	}
	scrubbed := logNumbers.ReplaceAllString(logs, "")
	for _, s := range append(append([]string{secret, strings.ToLower(secret)}, used...), codes...) {
		if strings.Contains(scrubbed, s) || strings.Contains(scrubbed, strings.ToUpper(s)) {
			t.Errorf("the log contains a two-factor secret %q", s)
		}
	}
}

// TestLogsHoldNoBillingSecretsOrCardNumbers: with billing on (a Stripe secret key and a
// webhook secret configured), a checkout, signed and forged webhooks, and a person who
// types a card number into a URL or form leave neither secret nor any card number in
// the logs of the server or of the billing service.
func TestLogsHoldNoBillingSecretsOrCardNumbers(t *testing.T) {
	const (
		stripeKey = "sk_test_4eC39HqLyjWDarjtT1zdp7dc"
		card      = "4242424242424242" // Stripe's test Visa
		amex      = "378282246310005"
	)
	sm := stripemock.Shared(t)
	plans, err := billing.ParsePlans([]byte(testPlans))
	if err != nil {
		t.Fatal(err)
	}
	billLogs := &lockedBuffer{}
	ts := newTestServerWith(t, Config{}, func(st *store.Store, now func() time.Time) *billing.Service {
		return billing.New(billing.Config{Store: st, Plans: plans, BaseURL: "http://tunelab.test", Now: now,
			Logger: slog.New(slog.NewTextHandler(billLogs, &slog.HandlerOptions{Level: slog.LevelDebug})),
			Stripe: billing.StripeConfig{SecretKey: stripeKey, WebhookSecret: testWebhookSecret, APIURL: sm.URL}})
	})
	c := ts.signUp("card-logs@example.com")
	if r := ts.do(c, "POST", "/billing/checkout", url.Values{"plan": {"pro"}, "interval": {"monthly"}, "card_number": {card}}, nil); r.status != http.StatusSeeOther {
		t.Fatalf("checkout: %d", r.status)
	}
	ts.do(c, "GET", "/billing?card="+card+"&cvc=123", nil, nil)
	ts.do(c, "POST", "/billing/portal", url.Values{"pan": {amex}}, nil)
	acct, _ := ts.store.BillingAccount(context.Background(), ts.userByEmail("card-logs@example.com").ID)
	now := time.Now().Unix()
	sub := subscription("sub_logs", acct.CustomerID, "active", "price_pro_m", now-60)
	if r := ts.webhook(testWebhookSecret, time.Now(), "evt_logs_1", "customer.subscription.created", now, sub); r.status != http.StatusOK {
		t.Fatalf("webhook: %d", r.status)
	}
	if r := ts.webhook("whsec_forged_by_someone", time.Now(), "evt_logs_2", "customer.subscription.updated", now+1, sub); r.status != http.StatusBadRequest {
		t.Fatalf("forged webhook: %d", r.status)
	}
	// A payment method object as Stripe sends it carries only the last four digits; a
	// card number smuggled into metadata must not reach the logs either.
	pm := map[string]any{"id": "in_logs", "object": "invoice", "customer": acct.CustomerID, "metadata": map[string]any{"note": card}}
	ts.webhook(testWebhookSecret, time.Now(), "evt_logs_3", "invoice.paid", now+2, pm)

	logs := ts.logs.String() + billLogs.String()
	if !strings.Contains(logs, "path=/stripe/webhook") || !strings.Contains(billLogs.String(), "stripe webhook") {
		t.Fatalf("the billing flow was not logged:\n%s", logs)
	}
	for _, s := range []string{stripeKey, testWebhookSecret, "whsec_forged_by_someone"} {
		if strings.Contains(logs, s) {
			t.Errorf("the log contains a billing secret %q", s)
		}
	}
	if pans := cardNumbersIn(logs); len(pans) > 0 {
		t.Errorf("the log contains card numbers %q", pans)
	}
}

// cardNumbersIn finds runs of 13 to 19 digits (spaces or dashes allowed between them, as
// people type them) that pass the Luhn check, as a payment card number does.
func cardNumbersIn(s string) []string {
	var found []string
	for _, m := range panLike.FindAllString(s, -1) {
		digits := strings.NewReplacer(" ", "", "-", "").Replace(m)
		if len(digits) >= 13 && len(digits) <= 19 && luhn(digits) {
			found = append(found, m)
		}
	}
	return found
}

var panLike = regexp.MustCompile(`\d(?:[ -]?\d){12,18}`)

func luhn(digits string) bool {
	sum := 0
	for i := range len(digits) {
		d := int(digits[len(digits)-1-i] - '0')
		if i%2 == 1 {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return sum%10 == 0
}

func TestCardNumbersInFindsCards(t *testing.T) {
	for s, want := range map[string]int{
		"card=4242424242424242":       1,
		"n=4242 4242 4242 4242 x":     1,
		"amex 378282246310005.":       1,
		"4242424242424241":            0, // fails Luhn
		"time=2026-11-29T20:26:20Z":   0,
		"bytes=123456 duration_ms=12": 0,
	} {
		if got := len(cardNumbersIn(s)); got != want {
			t.Errorf("cardNumbersIn(%q) found %d, want %d", s, got, want)
		}
	}
}

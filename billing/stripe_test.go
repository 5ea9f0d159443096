package billing

import (
	"bytes"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/stripe/stripe-go/v76"

	"tunelab/billing/stripemock"
)

func TestMain(m *testing.M) {
	code := m.Run()
	stripemock.Stop()
	os.Exit(code)
}

// The test tooling's stripe-mock answers the client billing builds.
func TestStripeMockAnswers(t *testing.T) {
	sm := stripemock.Shared(t)
	sc := newStripeClient(StripeConfig{SecretKey: "sk_test_123", APIURL: sm.URL})
	c, err := sc.Customers.New(&stripe.CustomerParams{Email: stripe.String("a@example.com")})
	if err != nil {
		t.Fatal(err)
	}
	if c.ID == "" {
		t.Fatalf("customer without id: %+v", c)
	}
}

// stripe-go's own error lines reach the server's log with keys and webhook secrets masked.
func TestStripeLogMasksSecrets(t *testing.T) {
	var buf bytes.Buffer
	l := stripeLog{slog.New(slog.NewTextHandler(&buf, nil))}
	l.Errorf("Request error from Stripe (status 401): Invalid API Key provided: %s; signing %s", "sk_test_51HxQ2abcDEF", "whsec_9fz8y")
	l.Warnf("retrying with %s", "rk_live_ZZZ111")
	out := buf.String()
	for _, secret := range []string{"sk_test_51HxQ2abcDEF", "whsec_9fz8y", "rk_live_ZZZ111", "51HxQ2", "ZZZ111"} {
		if strings.Contains(out, secret) {
			t.Fatalf("the log holds %q: %s", secret, out)
		}
	}
	if !strings.Contains(out, "sk_test_…") || !strings.Contains(out, "level=ERROR") || !strings.Contains(out, "level=WARN") {
		t.Fatalf("the masked lines are missing: %s", out)
	}
}

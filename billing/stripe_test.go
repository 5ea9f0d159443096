package billing

import (
	"os"
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

// Package billing holds tunelab's billing rules: plans from the operator's file, what a
// period's GPU time costs, and everything that talks to Stripe (Checkout, the customer
// portal, webhook events, the meter-event outbox). It imports store; handlers call it.
package billing

import (
	"cmp"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"
)

// StripeConfig is how to reach Stripe. Without a SecretKey billing is off.
type StripeConfig struct {
	SecretKey     string // TUNELAB_STRIPE_SECRET_KEY
	WebhookSecret string // TUNELAB_STRIPE_WEBHOOK_SECRET
	APIURL        string // TUNELAB_STRIPE_API_URL; "" is Stripe itself (tests use stripe-mock)
	// Logger receives stripe-go's own error lines, secrets masked; nil: slog.Default().
	Logger *slog.Logger
}

// Enabled says whether billing is on: a secret key is configured.
func (c StripeConfig) Enabled() bool { return c.SecretKey != "" }

// newStripeClient builds a client of its own (no package globals), pinned to the API
// version of stripe-go v76 (stripe.APIVersion, 2023-10-16). The SDK retries twice with
// one idempotency key per call; our own retries bring their own keys.
func newStripeClient(c StripeConfig) *client.API { return newStripeClientRetries(c, 2) }

func newStripeClientRetries(c StripeConfig, retries int64) *client.API {
	cfg := &stripe.BackendConfig{
		HTTPClient:        &http.Client{Timeout: 30 * time.Second},
		MaxNetworkRetries: stripe.Int64(retries),
		LeveledLogger:     stripeLog{cmp.Or(c.Logger, slog.Default())},
	}
	if c.APIURL != "" {
		cfg.URL = stripe.String(c.APIURL)
	}
	backends := &stripe.Backends{
		API:     stripe.GetBackendWithConfig(stripe.APIBackend, cfg),
		Connect: stripe.GetBackendWithConfig(stripe.ConnectBackend, cfg),
		Uploads: stripe.GetBackendWithConfig(stripe.UploadsBackend, cfg),
	}
	return client.New(c.SecretKey, backends)
}

// stripeLog passes stripe-go's own warnings and errors to the server's log with any key or
// webhook secret masked: an error's text can carry the key the call was made with (Stripe
// masks it; a stand-in server may not).
type stripeLog struct{ log *slog.Logger }

var stripeSecret = regexp.MustCompile(`\b((?:sk|rk|pk)_(?:test|live)_|whsec_)[0-9A-Za-z]+`)

// maskStripeSecrets keeps each secret's prefix and drops the rest.
func maskStripeSecrets(s string) string { return stripeSecret.ReplaceAllString(s, "${1}…") }

func (stripeLog) Debugf(string, ...any) {}
func (stripeLog) Infof(string, ...any)  {}
func (l stripeLog) Warnf(format string, v ...any) {
	l.log.Warn("stripe-go", "detail", maskStripeSecrets(fmt.Sprintf(format, v...)))
}
func (l stripeLog) Errorf(format string, v ...any) {
	l.log.Error("stripe-go", "detail", maskStripeSecrets(fmt.Sprintf(format, v...)))
}

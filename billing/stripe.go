// Package billing holds tunelab's billing rules: plans from the operator's file, what a
// period's GPU time costs, and everything that talks to Stripe (Checkout, the customer
// portal, webhook events, the meter-event outbox). It imports store; handlers call it.
package billing

import (
	"net/http"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"
)

// StripeConfig is how to reach Stripe. Without a SecretKey billing is off.
type StripeConfig struct {
	SecretKey     string // TUNELAB_STRIPE_SECRET_KEY
	WebhookSecret string // TUNELAB_STRIPE_WEBHOOK_SECRET
	APIURL        string // TUNELAB_STRIPE_API_URL; "" is Stripe itself (tests use stripe-mock)
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
		LeveledLogger:     &stripe.LeveledLogger{Level: stripe.LevelError},
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

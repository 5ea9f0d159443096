package billing

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/webhook"

	"tunelab/billing/stripemock"
	"tunelab/store"
)

const testWhsec = "whsec_test_secret"

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fixture is a real store, a Service against the shared stripe-mock, and two people.
type fixture struct {
	st       *store.Store
	vault    *store.Vault
	svc      *Service
	clock    *clock
	ada, bob store.User
	plans    Plans
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	sm := stripemock.Shared(t)
	return newFixtureAt(t, sm.URL)
}

func newFixtureAt(t *testing.T, apiURL string) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{clock: &clock{t: time.Now().UTC().Truncate(time.Second)}}
	dir := t.TempDir()
	var err error
	f.st, err = store.Open(ctx, filepath.Join(dir, "t.db"), store.Options{Now: f.clock.now, Argon2: store.Argon2Params{Time: 1, Memory: 64, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.st.Close() })
	f.vault, err = store.NewVault(filepath.Join(dir, "files"), make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	f.plans, err = ParsePlans([]byte(goodPlans))
	if err != nil {
		t.Fatal(err)
	}
	f.svc = New(Config{Store: f.st, Stripe: StripeConfig{SecretKey: "sk_test_123", WebhookSecret: testWhsec, APIURL: apiURL},
		Plans: f.plans, BaseURL: "http://tunelab.test", Now: f.clock.now})
	for i, p := range []*store.User{&f.ada, &f.bob} {
		*p, err = f.st.CreateUser(ctx, store.NewUser{Email: fmt.Sprintf("user%d@example.com", i), Password: "billing passphrase", TermsVersion: "v"})
		if err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// run makes a finished run of the person with exactly secs GPU seconds in the ledger.
func (f *fixture) run(t *testing.T, u store.User, secs int) store.Run {
	t.Helper()
	r := f.startRun(t, u, 0)
	f.clock.advance(time.Duration(secs) * time.Second)
	r, err := f.st.FinishRun(context.Background(), r.ID, store.RunSucceeded, "", f.clock.now())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// startRun is a running run of u's (its first heartbeat sent now) with a budget in cents
// (0: none).
func (f *fixture) startRun(t *testing.T, u store.User, budgetCents int64) store.Run {
	t.Helper()
	ctx := context.Background()
	var lines []string
	for i := range 12 {
		lines = append(lines, fmt.Sprintf(`{"messages":[{"role":"user","content":"Q %d?"},{"role":"assistant","content":"A %d."}]}`, i, i))
	}
	d, err := f.st.CreateDataset(ctx, f.vault, store.NewDataset{UserID: u.ID, Name: "d", Content: strings.NewReader(strings.Join(lines, "\n")), MaxSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	cfg := store.RunConfig{BaseModel: "m", Method: "lora", Epochs: 1, LearningRate: 3e-3, BatchSize: 4, LoRARank: 8, LoRAAlpha: 16,
		MaxSeqLen: 128, Seed: 1, GPUType: "cpu", ValidationSplit: 10, BudgetCents: budgetCents}
	r, err := f.st.CreateRun(ctx, store.NewRun{UserID: u.ID, DatasetID: d.ID, Config: cfg, Backend: "local"})
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256([]byte(fmt.Sprint("token", r.ID)))
	if _, ok, err := f.st.ClaimQueuedRun(ctx, "local", h[:]); !ok || err != nil {
		t.Fatalf("claim: %v %v", ok, err)
	}
	if _, err := f.st.Heartbeat(ctx, r.ID, 0, 10); err != nil {
		t.Fatal(err)
	}
	if r, err = f.st.RunByID(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	return r
}

// signed is a webhook body and Stripe-Signature header as Stripe would send them.
func signed(t *testing.T, secret string, at time.Time, id, typ string, created int64, object any) ([]byte, string) {
	t.Helper()
	raw, err := json.Marshal(object)
	if err != nil {
		t.Fatal(err)
	}
	ev := map[string]any{"id": id, "object": "event", "type": typ, "created": created, "api_version": stripe.APIVersion,
		"data": map[string]any{"object": json.RawMessage(raw)}}
	body, _ := json.Marshal(ev)
	sp := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secret, Timestamp: at})
	return sp.Payload, sp.Header
}

func subscriptionObject(id, customer, status, price string, start int64) map[string]any {
	return map[string]any{"id": id, "object": "subscription", "customer": customer, "status": status,
		"current_period_start": start, "current_period_end": start + 30*86400, "cancel_at_period_end": false,
		"items": map[string]any{"object": "list", "data": []any{
			map[string]any{"id": "si_1", "object": "subscription_item", "price": map[string]any{"id": price, "object": "price"}},
			map[string]any{"id": "si_2", "object": "subscription_item", "price": map[string]any{"id": "price_cpu_m", "object": "price"}},
		}}}
}

func (f *fixture) reread(t *testing.T, id int64) store.Run {
	t.Helper()
	r, err := f.st.RunByID(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

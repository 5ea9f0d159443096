package handlers

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"tunelab/billing"
	"tunelab/billing/stripemock"
	"tunelab/gpu"
	"tunelab/store"
)

// Billing mails go through the mail queue, each once: a run stopped at its budget cap,
// a failed payment (with the grace end and the way to the portal), runs paused once the
// grace ended, and paused lifted when the invoice is paid.
func TestBillingMailsAreQueuedOnceEach(t *testing.T) {
	sm := stripemock.Shared(t)
	plans, err := billing.ParsePlans([]byte(testPlans))
	if err != nil {
		t.Fatal(err)
	}
	var svc *billing.Service
	ts := newTestServerWith(t, Config{}, func(st *store.Store, now func() time.Time) *billing.Service {
		svc = billing.New(billing.Config{Store: st, Plans: plans, BaseURL: "http://tunelab.test", Now: now, Grace: 30 * time.Minute,
			Stripe: billing.StripeConfig{SecretKey: "sk_test_123", WebhookSecret: testWebhookSecret, APIURL: sm.URL}})
		return svc
	})
	ctx := context.Background()
	const email = "mails@example.com"
	c, acct, _ := ts.proSubscriber(email)

	mails := func(kind string) []store.Mail {
		t.Helper()
		all, err := ts.store.RecentMail(ctx, 100)
		if err != nil {
			t.Fatal(err)
		}
		var out []store.Mail
		for _, m := range all {
			if m.Kind == kind && m.To == email {
				out = append(out, m)
			}
		}
		return out
	}
	sweep := func() {
		t.Helper()
		for range 2 { // a second sweep finds nothing more to send
			if err := svc.SendNotices(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}

	// A run stopped at its $0.10 budget: 600 s included, then 800 s at $0.000125.
	v := runValues(ts.datasetFor(c, completionLines(20)))
	v.Set("budget_usd", "0.10")
	id := ts.startRun(c, v)
	token, hash := gpu.NewRunToken()
	ts.store.ClaimQueuedRun(ctx, "local", hash)
	ts.post(id, "heartbeat", token, `{"step": 1, "total_steps": 100}`)
	ts.advance(1400 * time.Second)
	ts.post(id, "heartbeat", token, `{"step": 2, "total_steps": 100}`)
	ts.post(id, "heartbeat", token, `{"step": 2, "total_steps": 100}`) // the stop repeated: no second mail
	stopped := mails(store.MailRunStopped)
	if len(stopped) != 1 || !strings.Contains(stopped[0].Text, "Stopped at the run's budget cap of $0.10: $0.10 spent") ||
		!strings.Contains(stopped[0].Text, fmt.Sprintf("/runs/%d", id)) || !strings.Contains(stopped[0].Text, "final snapshot") {
		t.Fatalf("run stopped mails: %+v", stopped)
	}
	ts.finishStopped(t, c, id, token)

	sweep()
	if n := len(mails(store.NoticePaymentFailed)); n != 0 {
		t.Fatalf("%d payment mails while paid up", n)
	}
	failedAt := ts.clock()
	inv := map[string]any{"id": "in_1", "object": "invoice", "customer": acct.CustomerID}
	ts.webhook(testWebhookSecret, time.Now(), "evt_f", "invoice.payment_failed", failedAt.Unix(), inv)
	sweep()
	failed := mails(store.NoticePaymentFailed)
	graceEnd := time.Unix(failedAt.Unix(), 0).Add(30 * time.Minute).UTC().Format("2 January 2006 at 15:04 UTC")
	if len(failed) != 1 || !strings.Contains(failed[0].Text, "Update your card by "+graceEnd) ||
		!strings.Contains(failed[0].Text, "http://tunelab.test/billing") || !strings.Contains(failed[0].HTML, `href="http://tunelab.test/billing"`) {
		t.Fatalf("payment failed mails: %+v", failed)
	}
	if n := len(mails(store.NoticeSuspended)); n != 0 {
		t.Fatal("suspended inside the grace period")
	}
	ts.advance(31 * time.Minute)
	sweep()
	suspended := mails(store.NoticeSuspended)
	if len(suspended) != 1 || !strings.Contains(suspended[0].Text, "30-minute grace period has ended") || !strings.Contains(suspended[0].Text, "New runs are paused") {
		t.Fatalf("suspended mails: %+v", suspended)
	}
	ts.webhook(testWebhookSecret, time.Now(), "evt_p", "invoice.paid", ts.clock().Unix(), inv)
	sweep()
	lifted := mails(store.NoticeLifted)
	if len(lifted) != 1 || !strings.Contains(lifted[0].Text, "you can start runs again") {
		t.Fatalf("lifted mails: %+v", lifted)
	}
	if len(mails(store.NoticePaymentFailed)) != 1 || len(mails(store.NoticeSuspended)) != 1 {
		t.Fatal("a billing mail was queued twice")
	}
}

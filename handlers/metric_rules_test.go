package handlers

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"tunelab/gpu"
	"tunelab/store"
	"tunelab/trainer/protocol"
)

// liveRun starts a run for c and plays its worker up to the first heartbeat (running).
func (ts *testServer) liveRun(c *http.Client) (int64, string) {
	ts.t.Helper()
	id := ts.startRun(c, runValues(ts.datasetFor(c, completionLines(20))))
	token, hash := gpu.NewRunToken()
	if _, ok, err := ts.store.ClaimQueuedRun(context.Background(), "local", hash); !ok || err != nil {
		ts.t.Fatalf("claim: %v %v", ok, err)
	}
	if r := ts.post(id, "heartbeat", token, `{"step":0,"total_steps":2000}`); r.status != http.StatusOK {
		ts.t.Fatalf("heartbeat: %d %s", r.status, r.body)
	}
	return id, token
}

// metric sends one point through the worker metrics API.
func (ts *testServer) metric(id int64, token, name string, step int, value string) {
	ts.t.Helper()
	body := fmt.Sprintf(`{"points":[{"name":%q,"step":%d,"value":%s}]}`, name, step, value)
	if r := ts.post(id, "metrics", token, body); r.status != http.StatusOK {
		ts.t.Fatalf("metrics %s: %d %s", body, r.status, r.body)
	}
}

// stopAsked is the stop reason the run's next heartbeat hears ("" for none).
func (ts *testServer) stopAsked(id int64, token string) string {
	ts.t.Helper()
	r := ts.post(id, "heartbeat", token, `{"step":1,"total_steps":2000}`)
	var reply protocol.HeartbeatReply
	if err := json.Unmarshal([]byte(r.body), &reply); err != nil {
		ts.t.Fatalf("heartbeat: %d %s", r.status, r.body)
	}
	if reply.Stop == nil {
		return ""
	}
	return reply.Stop.Reason
}

// ruleMails are the queued "a metric rule fired" mails to email.
func (ts *testServer) ruleMails(email string) []store.Mail {
	ts.t.Helper()
	all, err := ts.store.RecentMail(context.Background(), 100)
	if err != nil {
		ts.t.Fatal(err)
	}
	var out []store.Mail
	for _, m := range all {
		if m.Kind == store.MailRuleFired && m.To == email {
			out = append(out, m)
		}
	}
	return out
}

func rulesForm(pairs ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(pairs); i += 2 {
		v.Set(pairs[i], pairs[i+1])
	}
	return v
}

// TestNaNLossStopsTheRunWithASnapshotAndNotifies: the promise of issue 13's rules. With the
// account default "loss becomes NaN -> notify and stop", a NaN loss sent through the worker
// metrics API asks the run to stop with the rule's reason, queues one mail, shows a banner
// and a timeline note; the worker's final snapshot and cancelled finish follow. More NaN
// points do not mail again.
func TestNaNLossStopsTheRunWithASnapshotAndNotifies(t *testing.T) {
	ts := newTestServer(t, Config{})
	const email = "nan@example.com"
	c := ts.signUp(email)
	if r := ts.do(c, "POST", "/settings/rules", rulesForm("nan_loss_on", "on", "nan_loss_notify", "on", "nan_loss_stop", "on"), nil); r.status != http.StatusSeeOther {
		t.Fatalf("save defaults: %d %s", r.status, r.body)
	}
	if r := ts.do(c, "GET", "/runs/new", nil, nil); !strings.Contains(r.body, "Your default metric rules will watch this run (loss becomes NaN or infinite)") {
		t.Error("the run form does not say which default rules the run follows")
	}
	id, token := ts.liveRun(c)
	ts.metric(id, token, "loss", 1200, "2.5")
	if reason := ts.stopAsked(id, token); reason != "" {
		t.Fatalf("stopped on a finite loss: %q", reason)
	}
	ts.metric(id, token, "loss", 1240, `"NaN"`)
	const want = "Stopped by rule: loss became NaN at step 1,240"
	if reason := ts.stopAsked(id, token); reason != want {
		t.Fatalf("stop reason %q, want %q", reason, want)
	}
	mails := ts.ruleMails(email)
	if len(mails) != 1 || !strings.Contains(mails[0].Text, "loss became NaN at step 1,240") || !strings.Contains(mails[0].Text, "final snapshot") {
		t.Fatalf("rule mails: %+v", mails)
	}
	page := ts.do(c, "GET", fmt.Sprintf("/runs/%d", id), nil, nil).body
	if !strings.Contains(page, `data-testid="rule-banner"`) || !strings.Contains(page, "Loss became NaN at step 1,240") || !strings.Contains(page, "Step 1,240") {
		t.Error("the run page shows no banner for the fired rule")
	}
	if !strings.Contains(page, "Rule fired: loss became NaN at step 1,240") {
		t.Error("the timeline does not mark the firing")
	}
	ts.metric(id, token, "loss", 1250, `"Infinity"`)
	if got := ts.ruleMails(email); len(got) != 1 {
		t.Fatalf("%d rule mails after more NaN points, want 1", len(got))
	}
	ts.finishStopped(t, c, id, token) // final snapshot, cancelled with the rule's reason
	firings, _ := ts.store.RuleFirings(context.Background(), id)
	if len(firings) != 1 || !firings[0].Stop || !firings[0].Notify || firings[0].Step != 1240 {
		t.Fatalf("firings: %+v", firings)
	}
}

// TestEvalLossRisingFiresOnceAfterNRises: a run's own rule (3 rises in a row, notify only)
// fires on the third rise in a row, once, and does not stop the run.
func TestEvalLossRisingFiresOnceAfterNRises(t *testing.T) {
	ts := newTestServer(t, Config{})
	const email = "rising@example.com"
	c := ts.signUp(email)
	id, token := ts.liveRun(c)
	if r := ts.do(c, "POST", fmt.Sprintf("/runs/%d/rules", id), rulesForm("eval_loss_rising_on", "on", "eval_loss_rising_value", "3", "eval_loss_rising_notify", "on"), nil); r.status != http.StatusSeeOther {
		t.Fatalf("save run rules: %d %s", r.status, r.body)
	}
	for i, v := range []string{"1.0", "0.9", "1.0", "1.1", "1.05", "1.1", "1.2"} { // rises: 2, then fall, then 2
		ts.metric(id, token, "eval_loss", (i+1)*100, v)
	}
	if got := ts.ruleMails(email); len(got) != 0 {
		t.Fatalf("fired after 2 rises in a row: %+v", got)
	}
	ts.metric(id, token, "eval_loss", 800, "1.3") // the third rise in a row
	ts.metric(id, token, "eval_loss", 900, "1.4")
	mails := ts.ruleMails(email)
	if len(mails) != 1 || !strings.Contains(mails[0].Text, "eval loss rose 3 evaluations in a row, to 1.3 at step 800") {
		t.Fatalf("rule mails: %+v", mails)
	}
	if reason := ts.stopAsked(id, token); reason != "" {
		t.Fatalf("a notify-only rule stopped the run: %q", reason)
	}
	page := ts.do(c, "GET", fmt.Sprintf("/runs/%d", id), nil, nil).body
	if !strings.Contains(page, "1 rule of its own watches this run") {
		t.Error("the run page does not say its own rule watches it")
	}
}

// TestGradNormAboveStopsWithoutMail: grad norm above 5 with "stop" only, saved as a default
// while the run already runs, stops the run at the first point above, and mails nobody.
func TestGradNormAboveStopsWithoutMail(t *testing.T) {
	ts := newTestServer(t, Config{})
	const email = "grad@example.com"
	c := ts.signUp(email)
	id, token := ts.liveRun(c)
	ts.metric(id, token, "grad_norm", 5, "50") // no rule yet
	if reason := ts.stopAsked(id, token); reason != "" {
		t.Fatalf("stopped without a rule: %q", reason)
	}
	// Defaults saved while the run runs apply to its next batches.
	ts.do(c, "POST", "/settings/rules", rulesForm("grad_norm_above_on", "on", "grad_norm_above_value", "5", "grad_norm_above_stop", "on"), nil)
	ts.metric(id, token, "grad_norm", 10, "4.9")
	ts.metric(id, token, "loss", 20, "9.5") // another series above the bound: not watched
	if reason := ts.stopAsked(id, token); reason != "" {
		t.Fatalf("stopped below the bound: %q", reason)
	}
	ts.metric(id, token, "grad_norm", 30, "7.5")
	if reason := ts.stopAsked(id, token); reason != "Stopped by rule: grad norm reached 7.5 at step 30 (above 5)" {
		t.Fatalf("stop reason %q", reason)
	}
	if got := ts.ruleMails(email); len(got) != 0 {
		t.Fatalf("a stop-only rule mailed: %+v", got)
	}
}

// TestStaleMetricsRuleFiresAfterItsMinutes: the periodic check (driven here with the test
// clock) fires "no new metric for 10 minutes" only past 10 minutes, once.
func TestStaleMetricsRuleFiresAfterItsMinutes(t *testing.T) {
	ts := newTestServer(t, Config{})
	const email = "stale@example.com"
	c := ts.signUp(email)
	ts.do(c, "POST", "/settings/rules", rulesForm("stale_metrics_on", "on", "stale_metrics_value", "10", "stale_metrics_notify", "on"), nil)
	id, token := ts.liveRun(c)
	ts.metric(id, token, "loss", 10, "2.0")
	checker := newApp(Deps{Store: ts.store, SessionStore: ts.store.Sessions(), Logger: slog.New(slog.NewTextHandler(ts.logs, nil)),
		Runs: Runs{Backend: fakeBackend{}}, Now: ts.clock})
	ctx := context.Background()
	ts.advance(9 * time.Minute)
	checker.checkStaleRules(ctx)
	if got := ts.ruleMails(email); len(got) != 0 {
		t.Fatalf("fired after 9 minutes: %+v", got)
	}
	ts.advance(2 * time.Minute)
	checker.checkStaleRules(ctx)
	checker.checkStaleRules(ctx)
	mails := ts.ruleMails(email)
	if len(mails) != 1 || !strings.Contains(mails[0].Text, "no new metric for 10 minutes") {
		t.Fatalf("rule mails: %+v", mails)
	}
	firings, _ := ts.store.RuleFirings(ctx, id)
	if len(firings) != 1 || firings[0].HasStep {
		t.Fatalf("firings: %+v", firings)
	}
}

// TestBadRuleInputIsRefusedAndNothingSaved: each bad form answers 400 with a message that
// names the rule and what to fix, and the saved rules stay as they were.
func TestBadRuleInputIsRefusedAndNothingSaved(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.signUp("bad@example.com")
	u := ts.userByEmail("bad@example.com")
	good := rulesForm("nan_loss_on", "on", "nan_loss_notify", "on")
	if r := ts.do(c, "POST", "/settings/rules", good, nil); r.status != http.StatusSeeOther {
		t.Fatalf("save: %d", r.status)
	}
	cases := []struct {
		form url.Values
		want string
	}{
		{rulesForm("grad_norm_above_on", "on", "grad_norm_above_value", "5"), "“Grad norm too high” is on but does nothing"},
		{rulesForm("grad_norm_above_on", "on", "grad_norm_above_value", "abc", "grad_norm_above_stop", "on"), "“Grad norm too high”: grad norm above must be a number above 0; got &#34;abc&#34;"},
		{rulesForm("grad_norm_above_on", "on", "grad_norm_above_value", "-1", "grad_norm_above_stop", "on"), "grad norm above must be a number above 0"},
		{rulesForm("eval_loss_rising_on", "on", "eval_loss_rising_value", "2.5", "eval_loss_rising_notify", "on"), "evaluations in a row must be a whole number from 1 to 50"},
		{rulesForm("stale_metrics_on", "on", "stale_metrics_value", "0", "stale_metrics_notify", "on"), "minutes without a new metric must be a whole number from 1 to 1,440"},
		{rulesForm("stale_metrics_on", "on", "stale_metrics_value", "NaN", "stale_metrics_notify", "on"), "minutes without a new metric must be"},
	}
	for _, tc := range cases {
		tc.form.Set("nan_loss_on", "on") // a good rule beside the bad one is not saved either
		tc.form.Set("nan_loss_stop", "on")
		r := ts.do(c, "POST", "/settings/rules", tc.form, nil)
		if r.status != http.StatusBadRequest || !strings.Contains(r.body, tc.want) || !strings.Contains(r.body, `data-testid="rules-error"`) {
			t.Errorf("%v: %d, want 400 with %q", tc.form, r.status, tc.want)
		}
		rules, err := ts.store.MetricRules(context.Background(), u.ID, 0)
		if err != nil || len(rules) != 1 || rules[0].Kind != store.RuleNaNLoss || rules[0].Stop || !rules[0].Notify {
			t.Errorf("%v: rules now %+v", tc.form, rules)
		}
	}
}

// TestAnotherPersonsRunRulesAre404: the rules page of someone else's run is not found, and
// a POST to it changes nothing.
func TestAnotherPersonsRunRulesAre404(t *testing.T) {
	ts := newTestServer(t, Config{})
	owner := ts.signUp("owner@example.com")
	id, _ := ts.liveRun(owner)
	ts.do(owner, "POST", fmt.Sprintf("/runs/%d/rules", id), rulesForm("nan_loss_on", "on", "nan_loss_notify", "on"), nil)
	other := ts.signUp("other@example.com")
	if r := ts.do(other, "GET", fmt.Sprintf("/runs/%d/rules", id), nil, nil); r.status != http.StatusNotFound {
		t.Errorf("GET another person's run rules: %d", r.status)
	}
	if r := ts.do(other, "POST", fmt.Sprintf("/runs/%d/rules", id), rulesForm("grad_norm_above_on", "on", "grad_norm_above_value", "1", "grad_norm_above_stop", "on"), nil); r.status != http.StatusNotFound {
		t.Errorf("POST another person's run rules: %d", r.status)
	}
	rules, _, err := ts.store.EffectiveRules(context.Background(), id)
	if err != nil || len(rules) != 1 || rules[0].Kind != store.RuleNaNLoss {
		t.Fatalf("the owner's rules now %+v %v", rules, err)
	}
	if r := ts.do(owner, "GET", fmt.Sprintf("/runs/%d/rules", id), nil, nil); r.status != http.StatusOK || !strings.Contains(r.body, `data-testid="rules-form"`) {
		t.Errorf("the owner's rules page: %d", r.status)
	}
}

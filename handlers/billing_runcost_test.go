package handlers

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"tunelab/gpu"
)

// A live run's cost (so far, and projected at the end from the steps done) shows on the
// run list and in its live poll; the run page warns once the projection passes the run's
// budget cap, which stops the run only when what it spent reaches the cap.
func TestRunListShowsLiveCostAndRunPageWarnsPastTheBudget(t *testing.T) {
	ts := newBillingServer(t)
	const email = "live-cost@example.com"
	c, _, _ := ts.proSubscriber(email)
	v := runValues(ts.datasetFor(c, completionLines(20)))
	v.Set("budget_usd", "0.10")
	id := ts.startRun(c, v)
	token, hash := gpu.NewRunToken()
	ts.store.ClaimQueuedRun(context.Background(), "local", hash)
	ts.post(id, "heartbeat", token, `{"step": 1, "total_steps": 100}`)
	if r := ts.do(c, "GET", "/runs", nil, nil); !strings.Contains(r.body, `data-testid="run-cost">$0.00<`) {
		t.Errorf("the run list shows no live cost at the start")
	}
	// 700 s: 600 included, 100 at $0.000125 = $0.0125 so far; 100 steps at this pace
	// take 70,000 s, past the $0.10 cap.
	ts.advance(700 * time.Second)
	if r := ts.post(id, "heartbeat", token, `{"step": 1, "total_steps": 100}`); strings.Contains(r.body, "stop") {
		t.Fatalf("stopped on the projection: %s", r.body)
	}
	if r := ts.do(c, "GET", "/runs", nil, nil); !strings.Contains(r.body, `data-testid="run-cost">$0.01 of about $8.6`) {
		t.Errorf("the run list's live cost is missing or wrong")
	}
	if r := ts.do(c, "GET", fmt.Sprintf("/runs/live?run=%d:running:0", id), nil, nil); !strings.Contains(r.body, `data-testid="run-cost">$0.01 of about $8.6`) {
		t.Errorf("the run list's live poll carries no cost: %s", r.body)
	}
	page := ts.do(c, "GET", fmt.Sprintf("/runs/%d", id), nil, nil).body
	if !strings.Contains(page, `data-testid="budget-warning"`) || !strings.Contains(page, "past its budget cap of $0.10") {
		t.Error("the run page does not warn that the projection passes the budget")
	}
}

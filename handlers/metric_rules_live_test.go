package handlers

import (
	"net/http"
	"strings"
	"testing"
)

// A rule that fires while the run page is open reaches it over the run's stream: the
// next update carries #run-rules out of band with the banner; updates before any firing
// carry no rules part.
func TestRuleFiringReachesTheOpenRunPageLive(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.signUp("rules-live@example.com")
	if r := ts.do(c, "POST", "/settings/rules", rulesForm("nan_loss_on", "on", "nan_loss_notify", "on"), nil); r.status != http.StatusSeeOther {
		t.Fatalf("save defaults: %d", r.status)
	}
	id, token := ts.liveRun(c)
	stream, closeStream := openEvents(t, ts, c, id, "")
	defer closeStream()
	first := readEvents(t, stream, func(e sseEvent) bool { return e.event == "" })
	if strings.Contains(first[len(first)-1].data, `id="run-rules"`) {
		t.Fatal("an update before any firing carries the rules part")
	}
	ts.metric(id, token, "loss", 40, `"NaN"`)
	got := readEvents(t, stream, func(e sseEvent) bool { return e.event == "" && strings.Contains(e.data, `data-testid="rule-banner"`) })
	panel := got[len(got)-1].data
	for _, want := range []string{`<div id="run-rules" hx-swap-oob="innerMorph">`, "Loss became NaN at step 40", "Mailed you", "Rule fired: loss became NaN at step 40"} {
		if !strings.Contains(panel, want) {
			t.Errorf("the live update lacks %q", want)
		}
	}
}

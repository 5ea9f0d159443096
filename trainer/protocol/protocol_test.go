package protocol

import (
	"encoding/json"
	"math"
	"testing"
)

func TestNewMetricPointWritesNonFiniteValuesAsStrings(t *testing.T) {
	for _, tc := range []struct {
		v    float64
		want string
	}{
		{2.5, `{"name":"loss","step":3,"value":2.5}`},
		{1e-7, `{"name":"loss","step":3,"value":1e-7}`},
		{math.NaN(), `{"name":"loss","step":3,"value":"NaN"}`},
		{math.Inf(1), `{"name":"loss","step":3,"value":"Infinity"}`},
		{math.Inf(-1), `{"name":"loss","step":3,"value":"-Infinity"}`},
	} {
		b, err := json.Marshal(NewMetricPoint("loss", 3, tc.v))
		if err != nil || string(b) != tc.want {
			t.Errorf("%v: %s (%v), want %s", tc.v, b, err, tc.want)
		}
	}
}

func TestHeartbeatAlwaysCarriesItsRequiredFields(t *testing.T) {
	b, _ := json.Marshal(NewHeartbeat(0, 0, false))
	if string(b) != `{"step":0,"total_steps":0,"wait":false}` {
		t.Fatalf("heartbeat %s", b)
	}
	var missing Heartbeat
	if err := json.Unmarshal([]byte(`{"wait":true}`), &missing); err != nil || missing.Step != nil || missing.TotalSteps != nil {
		t.Fatalf("a heartbeat without steps decodes as %+v (%v)", missing, err)
	}
}

func TestHeartbeatReplyCarriesStopOnlyWhenAsked(t *testing.T) {
	b, _ := json.Marshal(HeartbeatReply{})
	if string(b) != `{"cancel":false}` {
		t.Fatalf("reply without a stop: %s", b)
	}
	b, _ = json.Marshal(HeartbeatReply{Stop: &Stop{Reason: "Stopped at the run's budget cap of $2.00: $2.01 spent"}})
	if string(b) != `{"cancel":false,"stop":{"reason":"Stopped at the run's budget cap of $2.00: $2.01 spent"}}` {
		t.Fatalf("reply with a stop: %s", b)
	}
}

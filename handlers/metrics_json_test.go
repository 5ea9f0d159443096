package handlers

import (
	"tunelab/trainer/protocol"

	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"tunelab/store"
)

// The reference encoding of a live frame: what appendLivePoints must write byte for byte.
type livePointJSON struct {
	Seq   int64    `json:"seq"`
	Name  string   `json:"name"`
	Step  int      `json:"step"`
	Value *float64 `json:"value"`
	Kind  string   `json:"kind,omitempty"`
	At    int64    `json:"at"`
}

type metricsMessage struct {
	Points []livePointJSON `json:"points"`
}

func livePoints(pts []store.MetricPoint) []livePointJSON {
	out := make([]livePointJSON, len(pts))
	for i, p := range pts {
		out[i] = livePointJSON{Seq: p.Seq, Name: p.Name, Step: p.Step, Kind: p.Kind, At: p.At.UnixMilli()}
		if p.Kind == store.KindFinite && !math.IsNaN(p.Value) {
			v := p.Value
			out[i].Value = &v
		}
	}
	return out
}

func TestLiveFrameMatchesEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	values := []float64{0, -0.0, 1, -1, 0.1, 1e-6, 9.99e-7, 1e-7, 1.5e-300, 1e20, 1e21, 1.234e21, -3.5e-9, math.MaxFloat64, math.SmallestNonzeroFloat64, 123456789.125}
	for range 2000 {
		values = append(values, math.Float64frombits(rng.Uint64()), rng.NormFloat64()*math.Pow(10, float64(rng.IntN(60)-30)))
	}
	var pts []store.MetricPoint
	for i, v := range values {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			continue
		}
		pts = append(pts, store.MetricPoint{Seq: int64(i + 1), Name: "train/loss", Step: i, Value: v, At: time.UnixMilli(1700000000000 + int64(i))})
	}
	pts = append(pts, store.MetricPoint{Seq: 99999, Name: "x", Step: 7, Kind: store.KindNaN, At: time.UnixMilli(5)},
		store.MetricPoint{Seq: 100000, Name: "a<b", Step: 8, Kind: store.KindNegInf, At: time.UnixMilli(6)})
	want, _ := json.Marshal(metricsMessage{Points: livePoints(pts)})
	if got := appendLivePoints(nil, pts); string(got) != string(want) {
		for i := range min(len(got), len(want)) {
			if got[i] != want[i] {
				t.Fatalf("differs at byte %d: got %q, want %q", i, got[max(0, i-40):min(len(got), i+40)], want[max(0, i-40):min(len(want), i+40)])
			}
		}
		t.Fatalf("lengths %d and %d", len(got), len(want))
	}
}

// The scanner and encoding/json must read every body the scanner accepts the same way;
// bodies it does not accept fall back to encoding/json.
func TestMetricsScannerAgreesWithEncodingJSON(t *testing.T) {
	bodies := []struct {
		body      string
		scannerOK bool
	}{
		{`{"points":[{"name":"loss","step":1,"value":0.5}]}`, true},
		{` { "points" : [ { "value" : -1.5e-3 , "step" : 0 , "name" : "a/b" } , {"name":"a/b","step":2,"value":"NaN"} ] } ` + "\n", true},
		{`{"points":[{"name":"loss","step":1,"value":"-Infinity"},{"name":"loss","step":2,"value":"inf"}]}`, true},
		{`{"points":[]}`, true},
		{`{"points":[{"name":"loss","step":1.5,"value":1}]}`, false},
		{`{"points":[{"name":"loss","step":1e3,"value":1}]}`, false},
		{`{"points":[{"name":"loss","step":-3,"value":1}]}`, true},
		{`{"points":[{"name":"lo\u0073s","step":1,"value":1}]}`, false},
		{`{"points":[{"Name":"loss","step":1,"value":1}]}`, false},
		{`{"points":[{"name":"loss","step":1,"value":1,"extra":2}]}`, false},
		{`{"points":[{"name":"loss","step":1}]}`, false},
		{`{"points":[{"name":"loss","step":1,"value":1,"value":2}]}`, false},
		{`{"points":[{"name":"loss","step":1,"value":1e999}]}`, false},
		{`{"points":[{"name":"loss","step":01,"value":1}]}`, false},
		{`{"points":[{"name":"loss","step":1,"value":null}]}`, false},
		{`{"points":[{"name":"loss","step":1,"value":"nope"}]}`, false},
		{`{"points":[{"name":"loss","step":1,"value":1}]}{}`, false},
		{`{"points":[{"name":"loss","step":1,"value":1},]}`, false},
		{`{"points":[{"name":"loss","step":1,"value":.5}]}`, false},
		{`{"points":[{"name":"loss","step":1,"value":-}]}`, false},
		{`{"points":[{"name":"loss","step":1,"value":1}],"points":[]}`, false},
	}
	for _, tc := range bodies {
		got, ok := scanMetricsBatch([]byte(tc.body))
		if ok != tc.scannerOK {
			t.Errorf("%s: scanner ok = %v, want %v", tc.body, ok, tc.scannerOK)
			continue
		}
		if !ok {
			continue
		}
		var batch protocol.MetricBatch
		if err := json.Unmarshal([]byte(tc.body), &batch); err != nil {
			t.Errorf("%s: encoding/json refuses what the scanner read: %v", tc.body, err)
			continue
		}
		want := make([]metricInput, len(batch.Points))
		for i, p := range batch.Points {
			want[i] = metricInput{Name: p.Name, HasStep: p.Step != nil, Step: *p.Step}
			want[i].Value, want[i].Kind, want[i].ValueOK = parseMetricValue(p.Value)
		}
		if !reflect.DeepEqual(got, want) && !(len(got) == 0 && len(want) == 0) {
			t.Errorf("%s: scanner %+v, encoding/json %+v", tc.body, got, want)
		}
	}
}

func TestValidMetricNameMatchesTheRegexp(t *testing.T) {
	for _, s := range []string{"", "a", "A", "1a", "a1", "loss", "train/loss-2.x_y", "a b", "é", "a\x00", string(make([]byte, 64)),
		"a234567890123456789012345678901234567890123456789012345678901234", "a2345678901234567890123456789012345678901234567890123456789012345"} {
		if validMetricName(s) != metricName.MatchString(s) {
			t.Errorf("%q: validMetricName %v, regexp %v", s, validMetricName(s), metricName.MatchString(s))
		}
	}
}

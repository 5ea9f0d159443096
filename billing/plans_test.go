package billing

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const goodPlans = `{
  "plans": [
    {"id": "hobby", "name": "Hobby", "included_gpu_seconds": 1800},
    {"id": "pro", "name": "Pro", "monthly_usd": "29", "annual_usd": "290",
     "stripe_monthly_price": "price_pro_m", "stripe_annual_price": "price_pro_y",
     "included_gpu_seconds": 36000, "usd_per_gpu_second": {"cpu": "0.000125"},
     "stripe_monthly_metered_prices": {"cpu": "price_cpu_m"}, "stripe_annual_metered_prices": {"cpu": "price_cpu_y"}}
  ],
  "stripe_meter_events": {"cpu": "tunelab_gpu_seconds_cpu"}
}`

func TestParsePlans(t *testing.T) {
	p, err := ParsePlans([]byte(goodPlans))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.CheckGPUTypes([]string{"cpu"}); err != nil {
		t.Fatal(err)
	}
	if f := p.Free(); f.ID != "hobby" || f.IncludedSeconds != 1800 {
		t.Fatalf("free plan = %+v", f)
	}
	pro, ok := p.ByID("pro")
	if !ok || pro.PerSecond["cpu"] != 125_000 || pro.Free {
		t.Fatalf("pro = %+v", pro)
	}
	if pl, iv, ok := p.ByPrice("price_pro_y"); !ok || pl.ID != "pro" || iv != "annual" {
		t.Fatalf("by price = %v %v %v", pl.ID, iv, ok)
	}
}

func TestDefaultPlansAreFree(t *testing.T) {
	p := DefaultPlans()
	if err := p.CheckGPUTypes([]string{"cpu"}); err != nil {
		t.Fatal(err)
	}
	if f := p.Free(); f.Name != "Free" || f.IncludedSeconds != DefaultFreeSeconds || !f.Free {
		t.Fatalf("default = %+v", f)
	}
	// A file without a free plan keeps the built-in one for people without a subscription.
	q, err := ParsePlans([]byte(strings.Replace(goodPlans, `{"id": "hobby", "name": "Hobby", "included_gpu_seconds": 1800},`, "", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if q.Free().ID != "free" || len(q.List) != 2 {
		t.Fatalf("plans = %+v", q.List)
	}
}

// A bad file names the field to fix.
func TestBadPlansNameTheField(t *testing.T) {
	for _, c := range []struct{ from, to, field string }{
		{`"price_pro_y"`, `"pro_y"`, "plans[1].stripe_annual_price"},
		{`"monthly_usd": "29"`, `"monthly_usd": "twenty"`, "plans[1].monthly_usd"},
		{`"0.000125"`, `"-1"`, "plans[1].usd_per_gpu_second.cpu"},
		{`"id": "pro"`, `"id": "Pro Plan"`, "plans[1].id"},
		{`"id": "pro"`, `"id": "hobby"`, "plans[1].id"},
		{`"name": "Pro", `, ``, "plans[1].name"},
		{`"included_gpu_seconds": 1800`, `"included_gpu_seconds": -1`, "plans[0].included_gpu_seconds"},
		{`"stripe_monthly_price": "price_pro_m", "stripe_annual_price": "price_pro_y",`, ``, "plans"},
		{`"plans"`, `"plan"`, "unknown field"},
	} {
		src := strings.Replace(goodPlans, c.from, c.to, 1)
		if src == goodPlans {
			t.Fatalf("case %q changed nothing", c.field)
		}
		_, err := ParsePlans([]byte(src))
		if err == nil || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%s: err = %v", c.field, err)
		}
	}
	p, err := ParsePlans([]byte(goodPlans))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.CheckGPUTypes([]string{"cpu", "h100"}); err == nil ||
		!strings.Contains(err.Error(), "plans[1].usd_per_gpu_second.h100") || !strings.Contains(err.Error(), "stripe_meter_events.h100") ||
		!strings.Contains(err.Error(), "plans[1].stripe_annual_metered_prices.h100") {
		t.Errorf("missing GPU type: %v", err)
	}
	path := filepath.Join(t.TempDir(), "plans.json")
	os.WriteFile(path, []byte(`{"plans": [{"id": "x"}]}`), 0o600)
	if _, err := LoadPlans(path); err == nil || !strings.Contains(err.Error(), "TUNELAB_PLANS "+path) || !strings.Contains(err.Error(), "plans[0].name") {
		t.Errorf("LoadPlans: %v", err)
	}
}

func TestNanodollarsUSD(t *testing.T) {
	for n, want := range map[Nanodollars]string{0: "$0.00", 4_999_999: "$0.00", 5_000_000: "$0.01", 12_345_000_000: "$12.35", 125_000 * 3600: "$0.45"} {
		if got := n.USD(); got != want {
			t.Errorf("%d: %s, want %s", n, got, want)
		}
	}
}

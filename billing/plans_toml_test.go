package billing

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// goodPlansTOML is goodPlans in TOML, as the README shows it.
const goodPlansTOML = `
[[plans]]
id = "hobby"
name = "Hobby"
included_gpu_seconds = 1800

[[plans]]
id = "pro"
name = "Pro"
monthly_usd = "29"
annual_usd = "290"
stripe_monthly_price = "price_pro_m"
stripe_annual_price = "price_pro_y"
included_gpu_seconds = 36000
usd_per_gpu_second = { cpu = "0.000125" }
stripe_monthly_metered_prices = { cpu = "price_cpu_m" }
stripe_annual_metered_prices = { cpu = "price_cpu_y" }

[stripe_meter_events]
cpu = "tunelab_gpu_seconds_cpu"
`

// A TOML plans file means what the same JSON means; LoadPlans picks the format by name,
// else by the first character.
func TestPlansInTOML(t *testing.T) {
	fromJSON, err := ParsePlans([]byte(goodPlans))
	if err != nil {
		t.Fatal(err)
	}
	fromTOML, err := ParsePlansTOML([]byte(goodPlansTOML))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromJSON, fromTOML) {
		t.Fatalf("TOML %+v\nJSON %+v", fromTOML, fromJSON)
	}
	dir := t.TempDir()
	for name, body := range map[string]string{"plans.toml": goodPlansTOML, "plans.json": goodPlans, "plans": goodPlansTOML, "plans.conf": goodPlans} {
		path := filepath.Join(dir, name)
		os.WriteFile(path, []byte(body), 0o600)
		if p, err := LoadPlans(path); err != nil || !reflect.DeepEqual(p, fromJSON) {
			t.Errorf("LoadPlans(%s): %v", name, err)
		}
	}
}

// A bad TOML file names the field (or the line) to fix, as a bad JSON one does.
func TestBadTOMLPlansNameTheField(t *testing.T) {
	for _, c := range []struct{ from, to, want string }{
		{`stripe_annual_price = "price_pro_y"`, `stripe_annual_price = "pro_y"`, "plans[1].stripe_annual_price"},
		{`included_gpu_seconds = 1800`, `included_gpu_seconds = -1`, "plans[0].included_gpu_seconds"},
		{`cpu = "0.000125"`, `cpu = 0.000125`, "usd_per_gpu_second"},
		{`monthly_usd = "29"`, `monthly_usd = "29"` + "\nmonthy_usd = \"29\"", "plans.monthy_usd: not a field"},
		{`name = "Pro"`, `name = "Pro`, "line 9"},
	} {
		src := strings.Replace(goodPlansTOML, c.from, c.to, 1)
		if src == goodPlansTOML {
			t.Fatalf("case %q changed nothing", c.want)
		}
		_, err := ParsePlansTOML([]byte(src))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v", c.want, err)
		}
	}
	path := filepath.Join(t.TempDir(), "plans.toml")
	os.WriteFile(path, []byte("[[plans]]\nid = \"x\"\n"), 0o600)
	if _, err := LoadPlans(path); err == nil || !strings.Contains(err.Error(), "TUNELAB_PLANS "+path) || !strings.Contains(err.Error(), "plans[0].name") {
		t.Errorf("LoadPlans: %v", err)
	}
}

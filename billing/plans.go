package billing

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
)

// DefaultFreeSeconds is the GPU time a month the built-in Free plan includes.
const DefaultFreeSeconds = 3600

// Nanodollars is an amount of money in billionths of a US dollar, so a price per
// GPU-second such as $0.000125 is exact.
type Nanodollars int64

// USD writes an amount as dollars and cents, rounded half up: "$12.34".
func (n Nanodollars) USD() string {
	cents := (int64(n) + 5_000_000) / 10_000_000
	return fmt.Sprintf("$%d.%02d", cents/100, cents%100)
}

// Plan is one plan people can be on.
type Plan struct {
	ID   string // the value of the checkout form's plan field
	Name string
	// Free plans take no card and have no Stripe prices.
	Free bool
	// Display amounts of the Stripe prices (the prices themselves are the truth).
	MonthlyUSD, AnnualUSD string
	MonthlyPrice          string // Stripe price id of the monthly subscription
	AnnualPrice           string // Stripe price id of the annual subscription
	IncludedSeconds       int64  // GPU seconds a month included in the plan
	// Metered Stripe prices (one per GPU type, on that type's meter) the subscription
	// also carries, per interval: GPU seconds are billed through them.
	MonthlyMetered, AnnualMetered map[string]string
	// PerSecond is the price of a GPU-second past the included ones, per GPU type.
	PerSecond map[string]Nanodollars
	// PerSecondText keeps the configured decimal for display ("0.000125").
	PerSecondText map[string]string
}

// Plans is the operator's plan list; exactly one plan is free (the default one).
type Plans struct {
	List []Plan
	// MeterEvent is the Stripe meter event name GPU seconds are sent under, per GPU type.
	MeterEvent map[string]string
}

// Free is the plan of everyone without a subscription.
func (p Plans) Free() Plan {
	for _, pl := range p.List {
		if pl.Free {
			return pl
		}
	}
	return Plan{}
}

// ByID finds a plan.
func (p Plans) ByID(id string) (Plan, bool) {
	for _, pl := range p.List {
		if pl.ID == id {
			return pl, true
		}
	}
	return Plan{}, false
}

// ByPrice finds the plan and interval ("monthly" or "annual") of a Stripe price id.
func (p Plans) ByPrice(price string) (Plan, string, bool) {
	for _, pl := range p.List {
		switch {
		case pl.Free:
		case pl.MonthlyPrice == price:
			return pl, "monthly", true
		case pl.AnnualPrice == price:
			return pl, "annual", true
		}
	}
	return Plan{}, "", false
}

// DefaultPlans is what a server without TUNELAB_PLANS offers: the Free plan alone.
func DefaultPlans() Plans {
	return Plans{
		List: []Plan{{
			ID: "free", Name: "Free", Free: true, IncludedSeconds: DefaultFreeSeconds,
			PerSecond: map[string]Nanodollars{}, PerSecondText: map[string]string{},
		}},
		MeterEvent: map[string]string{},
	}
}

// planFile is the shape of TUNELAB_PLANS, in JSON or TOML (README "Billing").
type planFile struct {
	Plans []struct {
		ID              string            `json:"id" toml:"id"`
		Name            string            `json:"name" toml:"name"`
		MonthlyUSD      string            `json:"monthly_usd" toml:"monthly_usd"`
		AnnualUSD       string            `json:"annual_usd" toml:"annual_usd"`
		MonthlyPrice    string            `json:"stripe_monthly_price" toml:"stripe_monthly_price"`
		AnnualPrice     string            `json:"stripe_annual_price" toml:"stripe_annual_price"`
		IncludedSeconds *int64            `json:"included_gpu_seconds" toml:"included_gpu_seconds"`
		PerSecond       map[string]string `json:"usd_per_gpu_second" toml:"usd_per_gpu_second"`
		MonthlyMetered  map[string]string `json:"stripe_monthly_metered_prices" toml:"stripe_monthly_metered_prices"`
		AnnualMetered   map[string]string `json:"stripe_annual_metered_prices" toml:"stripe_annual_metered_prices"`
	} `json:"plans" toml:"plans"`
	MeterEvents map[string]string `json:"stripe_meter_events" toml:"stripe_meter_events"`
}

var (
	planIDRe    = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)
	usdRe       = regexp.MustCompile(`^[0-9]{1,7}(\.[0-9]{1,9})?$`)
	meterNameRe = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,100}$`)
)

// LoadPlans reads a plans file: TOML when its name ends in .toml, JSON when in .json,
// else JSON when it starts with "{" and TOML otherwise. Every mistake is reported with the
// field it is in, as plans[1].stripe_annual_price, so the operator can fix the file.
func LoadPlans(path string) (Plans, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Plans{}, fmt.Errorf("TUNELAB_PLANS: %w", err)
	}
	parse := ParsePlans
	switch ext := strings.ToLower(filepath.Ext(path)); {
	case ext == ".toml":
		parse = ParsePlansTOML
	case ext == ".json":
	case !bytes.HasPrefix(bytes.TrimSpace(b), []byte("{")):
		parse = ParsePlansTOML
	}
	p, err := parse(b)
	if err != nil {
		return Plans{}, fmt.Errorf("TUNELAB_PLANS %s: %w", path, err)
	}
	return p, nil
}

// ParsePlans reads the JSON of a plans file (see LoadPlans).
func ParsePlans(b []byte) (Plans, error) {
	var f planFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return Plans{}, fmt.Errorf("not a valid plans file: %w", err)
	}
	return f.plans()
}

// ParsePlansTOML reads the TOML of a plans file (see LoadPlans): the same fields as the
// JSON, a [[plans]] table per plan, amounts as strings ("0.000125") so they stay exact.
func ParsePlansTOML(b []byte) (Plans, error) {
	var f planFile
	md, err := toml.Decode(string(b), &f)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return Plans{}, fmt.Errorf("not a valid plans file: line %d: %s", pe.Position.Line, pe.Message)
		}
		// A value of the wrong type: the library's message names the key.
		return Plans{}, fmt.Errorf("not a valid plans file: %w", err)
	}
	if extra := md.Undecoded(); len(extra) > 0 {
		var errs []error
		for _, k := range extra {
			errs = append(errs, fmt.Errorf("%s: not a field of a plans file (README \"Billing\" lists them)", k))
		}
		return Plans{}, errors.Join(errs...)
	}
	return f.plans()
}

// plans checks a decoded plans file field by field.
func (f planFile) plans() (Plans, error) {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if len(f.Plans) == 0 {
		bad("plans", "list at least one plan")
	}
	out := Plans{MeterEvent: map[string]string{}}
	seen := map[string]bool{}
	prices := map[string]string{}
	free := 0
	for i, fp := range f.Plans {
		at := func(field string) string { return fmt.Sprintf("plans[%d].%s", i, field) }
		pl := Plan{ID: fp.ID, Name: strings.TrimSpace(fp.Name), MonthlyPrice: fp.MonthlyPrice, AnnualPrice: fp.AnnualPrice,
			MonthlyUSD: fp.MonthlyUSD, AnnualUSD: fp.AnnualUSD, MonthlyMetered: fp.MonthlyMetered, AnnualMetered: fp.AnnualMetered,
			PerSecond: map[string]Nanodollars{}, PerSecondText: map[string]string{}}
		switch {
		case !planIDRe.MatchString(fp.ID):
			bad(at("id"), "%q: use 1 to 32 lower-case letters, digits or '-'", fp.ID)
		case seen[fp.ID]:
			bad(at("id"), "%q is used by two plans", fp.ID)
		}
		seen[fp.ID] = true
		if pl.Name == "" || len(pl.Name) > 40 {
			bad(at("name"), "give the plan a name of 1 to 40 characters")
		}
		if fp.IncludedSeconds == nil || *fp.IncludedSeconds < 0 {
			bad(at("included_gpu_seconds"), "give the GPU seconds a month the plan includes, 0 or more")
		} else {
			pl.IncludedSeconds = *fp.IncludedSeconds
		}
		pl.Free = fp.MonthlyPrice == "" && fp.AnnualPrice == ""
		if pl.Free {
			free++
			if fp.MonthlyUSD != "" || fp.AnnualUSD != "" {
				bad(at("monthly_usd"), "a free plan (no Stripe prices) has no amounts")
			}
			if len(fp.MonthlyMetered)+len(fp.AnnualMetered) > 0 {
				bad(at("stripe_monthly_metered_prices"), "a free plan (no Stripe prices) has no metered prices")
			}
		} else {
			for _, pr := range []struct{ field, id, usd, usdField string }{
				{"stripe_monthly_price", fp.MonthlyPrice, fp.MonthlyUSD, "monthly_usd"},
				{"stripe_annual_price", fp.AnnualPrice, fp.AnnualUSD, "annual_usd"},
			} {
				if !strings.HasPrefix(pr.id, "price_") {
					bad(at(pr.field), "%q: give the Stripe price id (price_…) of this plan", pr.id)
				} else if other, dup := prices[pr.id]; dup {
					bad(at(pr.field), "%q is already the price of %s", pr.id, other)
				}
				prices[pr.id] = at(pr.field)
				if !usdRe.MatchString(pr.usd) {
					bad(at(pr.usdField), "%q: give the amount of the Stripe price in US dollars, as 29 or 290.00", pr.usd)
				}
			}
		}
		if pl.Free && len(fp.PerSecond) > 0 {
			bad(at("usd_per_gpu_second"), "a free plan (no Stripe prices) charges nothing; leave this out")
		}
		for gt, v := range fp.PerSecond {
			n, ok := parseUSD(v)
			if !ok {
				bad(at("usd_per_gpu_second."+gt), "%q: give US dollars per GPU-second, as 0.000125", v)
				continue
			}
			pl.PerSecond[gt], pl.PerSecondText[gt] = n, v
		}
		out.List = append(out.List, pl)
	}
	if free > 1 {
		bad("plans", "only one plan may be free (without Stripe prices); it is the plan of everyone without a subscription")
	}
	if free == 0 && len(errs) == 0 {
		out.List = append(DefaultPlans().List, out.List...)
	}
	for gt, name := range f.MeterEvents {
		if !meterNameRe.MatchString(name) {
			bad("stripe_meter_events."+gt, "%q: give the event name of a Stripe meter", name)
		}
		out.MeterEvent[gt] = name
	}
	if err := errors.Join(errs...); err != nil {
		return Plans{}, err
	}
	return out, nil
}

// CheckGPUTypes makes sure every plan prices every GPU type the backends offer, and that
// paid plans have a meter event for each, so no run is ever free by omission.
func (p Plans) CheckGPUTypes(types []string) error {
	var errs []error
	for i, pl := range p.List {
		for _, gt := range types {
			if pl.Free {
				if _, ok := pl.PerSecond[gt]; !ok {
					pl.PerSecond[gt], pl.PerSecondText[gt] = 0, "0"
				}
				continue
			}
			if _, ok := pl.PerSecond[gt]; !ok {
				errs = append(errs, fmt.Errorf("plans[%d].usd_per_gpu_second.%s: plan %q has no price for GPU type %q, which the backends offer", i, gt, pl.ID, gt))
			}
			for _, m := range []struct {
				field  string
				prices map[string]string
			}{{"stripe_monthly_metered_prices", pl.MonthlyMetered}, {"stripe_annual_metered_prices", pl.AnnualMetered}} {
				if !strings.HasPrefix(m.prices[gt], "price_") {
					errs = append(errs, fmt.Errorf("plans[%d].%s.%s: give the Stripe metered price (price_…) GPU seconds on %q are billed at", i, m.field, gt, gt))
				}
			}
		}
		for gt := range pl.PerSecond {
			if !slices.Contains(types, gt) {
				errs = append(errs, fmt.Errorf("plans[%d].usd_per_gpu_second.%s: no backend offers GPU type %q (offered: %s)", i, gt, gt, strings.Join(types, ", ")))
			}
		}
	}
	paid := slices.ContainsFunc(p.List, func(pl Plan) bool { return !pl.Free })
	for _, gt := range types {
		if _, ok := p.MeterEvent[gt]; paid && !ok {
			errs = append(errs, fmt.Errorf("stripe_meter_events.%s: give the Stripe meter event name GPU seconds on %q are sent under", gt, gt))
		}
	}
	return errors.Join(errs...)
}

// parseUSD reads a decimal dollar amount with at most 9 decimals into nanodollars.
func parseUSD(s string) (Nanodollars, bool) {
	if !usdRe.MatchString(s) {
		return 0, false
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return 0, false
	}
	r.Mul(r, big.NewRat(1_000_000_000, 1))
	if !r.IsInt() {
		return 0, false
	}
	return Nanodollars(r.Num().Int64()), true
}

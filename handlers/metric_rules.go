package handlers

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"

	"tunelab/store"
	"tunelab/views"
)

// Metric rules pages: the account defaults (/settings/rules) and one run's own rules
// (/runs/{id}/rules), one form for both.

// ruleSpec is what the pages say about a rule kind and how its number is read.
type ruleSpec struct {
	kind       string
	label      string
	help       string
	valueLabel string // "" when the rule has no number
	valueHelp  string
	def        float64 // the number offered when the rule is off
	integer    bool
	min, max   float64
}

var ruleSpecs = []ruleSpec{
	{kind: store.RuleNaNLoss, label: "Loss becomes NaN or infinite", help: "Watches loss and eval_loss."},
	{kind: store.RuleEvalLossRising, label: "Eval loss keeps rising", help: "Watches eval_loss: each evaluation higher than the one before.",
		valueLabel: "Evaluations in a row", valueHelp: "A whole number from 1 to 50.", def: 3, integer: true, min: 1, max: 50},
	{kind: store.RuleGradNormAbove, label: "Grad norm too high", help: "Watches grad_norm.",
		valueLabel: "Grad norm above", valueHelp: "A number above 0.", def: 10, min: math.SmallestNonzeroFloat64, max: math.MaxFloat64},
	{kind: store.RuleStaleMetrics, label: "Metrics stop arriving", help: "A running run that reports no new metric for this long.",
		valueLabel: "Minutes without a new metric", valueHelp: "A whole number from 1 to 1,440 (a day).", def: 15, integer: true, min: 1, max: 1440},
}

func ruleSpecOf(kind string) ruleSpec {
	for _, s := range ruleSpecs {
		if s.kind == kind {
			return s
		}
	}
	return ruleSpec{kind: kind, label: kind}
}

// formNumber writes a rule's number as the form shows it.
func formNumber(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// ruleRows fills the form from saved rules (off rules show their default number).
func ruleRows(rules []store.MetricRule) []views.RuleRow {
	byKind := map[string]store.MetricRule{}
	for _, m := range rules {
		byKind[m.Kind] = m
	}
	rows := make([]views.RuleRow, len(ruleSpecs))
	for i, s := range ruleSpecs {
		m, on := byKind[s.kind]
		row := views.RuleRow{Name: s.kind, Label: s.label, Help: s.help, ValueLabel: s.valueLabel, ValueHelp: s.valueHelp,
			On: on, Notify: !on || m.Notify, Stop: on && m.Stop}
		if s.valueLabel != "" {
			row.Value = formNumber(s.def)
			if on {
				row.Value = formNumber(m.Threshold)
			}
		}
		rows[i] = row
	}
	return rows
}

// parseRules reads the rules form. On a problem it returns the rows as sent (to show
// again) and a message naming the rule and what to fix; nothing is saved then.
func parseRules(r *http.Request) ([]store.MetricRule, []views.RuleRow, string) {
	var rules []store.MetricRule
	rows := make([]views.RuleRow, len(ruleSpecs))
	problem := ""
	for i, s := range ruleSpecs {
		on := r.PostFormValue(s.kind+"_on") == "on"
		m := store.MetricRule{Kind: s.kind, Notify: r.PostFormValue(s.kind+"_notify") == "on", Stop: r.PostFormValue(s.kind+"_stop") == "on"}
		raw := strings.TrimSpace(r.PostFormValue(s.kind + "_value"))
		rows[i] = views.RuleRow{Name: s.kind, Label: s.label, Help: s.help, ValueLabel: s.valueLabel, ValueHelp: s.valueHelp,
			Value: raw, On: on, Notify: m.Notify, Stop: m.Stop}
		if !on || problem != "" {
			continue
		}
		if !m.Notify && !m.Stop {
			problem = fmt.Sprintf("“%s” is on but does nothing: tick “Notify me”, “Stop the run”, or both.", s.label)
			continue
		}
		if s.valueLabel != "" {
			v, err := strconv.ParseFloat(raw, 64)
			bad := err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v < s.min || v > s.max || (s.integer && v != math.Trunc(v))
			if bad {
				problem = fmt.Sprintf("“%s”: %s must be %s; got %q.", s.label, strings.ToLower(s.valueLabel), strings.TrimSuffix(lowerFirst(s.valueHelp), "."), raw)
				continue
			}
			m.Threshold = v
		}
		rules = append(rules, m)
	}
	return rules, rows, problem
}

func (a *app) showDefaultRules(w http.ResponseWriter, r *http.Request) {
	u, _ := userFrom(r.Context())
	rules, err := a.store.MetricRules(r.Context(), u.ID, 0)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	f := defaultRulesForm(ruleRows(rules))
	f.Saved = r.URL.Query().Has("saved")
	a.render(w, r, http.StatusOK, a.page(r, "Metric rules", "settings"), views.MetricRulesPage(f))
}

func defaultRulesForm(rows []views.RuleRow) views.MetricRulesForm {
	return views.MetricRulesForm{Title: "Metric rules", Description: "Rules that watch the metrics of every run you start, unless a run has rules of its own.",
		Action: "/settings/rules", BackLink: "/settings", BackLabel: "Settings", Rows: rows}
}

func (a *app) saveDefaultRules(w http.ResponseWriter, r *http.Request) {
	u, _ := userFrom(r.Context())
	rules, rows, problem := parseRules(r)
	if problem != "" {
		f := defaultRulesForm(rows)
		f.Error = problem
		a.render(w, r, http.StatusBadRequest, a.page(r, "Metric rules", "settings"), views.MetricRulesPage(f))
		return
	}
	if err := a.store.SaveMetricRules(r.Context(), u.ID, 0, rules); err != nil {
		a.serverError(w, r, err)
		return
	}
	a.rules.forget()
	redirect(w, r, "/settings/rules?saved=1")
}

func runRulesForm(run store.Run, rows []views.RuleRow) views.MetricRulesForm {
	link := fmt.Sprintf("/runs/%d", run.ID)
	return views.MetricRulesForm{Title: "Metric rules of " + run.Name, Description: "Rules that watch this run's metrics.",
		Action: link + "/rules", BackLink: link, BackLabel: run.Name, Rows: rows,
		Note: "Rules saved here replace your account defaults for this run. With none on, the run follows your defaults (Settings › Metric rules)."}
}

func (a *app) showRunRules(w http.ResponseWriter, r *http.Request) {
	run, ok := a.runByPath(w, r)
	if !ok {
		return
	}
	rules, _, err := a.store.EffectiveRules(r.Context(), run.ID)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	f := runRulesForm(run, ruleRows(rules))
	f.Saved = r.URL.Query().Has("saved")
	a.render(w, r, http.StatusOK, a.page(r, "Metric rules", "runs"), views.MetricRulesPage(f))
}

func (a *app) saveRunRules(w http.ResponseWriter, r *http.Request) {
	run, ok := a.runByPath(w, r)
	if !ok {
		return
	}
	rules, rows, problem := parseRules(r)
	if problem != "" {
		f := runRulesForm(run, rows)
		f.Error = problem
		a.render(w, r, http.StatusBadRequest, a.page(r, "Metric rules", "runs"), views.MetricRulesPage(f))
		return
	}
	if err := a.store.SaveMetricRules(r.Context(), run.UserID, run.ID, rules); err != nil {
		a.serverError(w, r, err)
		return
	}
	a.rules.forget()
	redirect(w, r, fmt.Sprintf("/runs/%d/rules?saved=1", run.ID))
}

// runRulesPanel is the run page's part: the rules that fired, and which rules watch it.
func (a *app) runRulesPanel(r *http.Request, run store.Run) (views.RunRuleFirings, error) {
	firings, err := a.store.RuleFirings(r.Context(), run.ID)
	if err != nil {
		return views.RunRuleFirings{}, err
	}
	return a.rulesPanelOf(r, run, firings)
}

// liveRulesPanel is the rules part of a live update of the run page, sent once a rule has
// fired (before that the part does not change while the page is open), so an update of a
// run without firings costs one look-up.
func (a *app) liveRulesPanel(r *http.Request, run store.Run) (views.RunRuleFirings, error) {
	firings, err := a.store.RuleFirings(r.Context(), run.ID)
	if err != nil || len(firings) == 0 {
		return views.RunRuleFirings{}, err
	}
	return a.rulesPanelOf(r, run, firings)
}

func (a *app) rulesPanelOf(r *http.Request, run store.Run, firings []store.RuleFiring) (views.RunRuleFirings, error) {
	rules, own, err := a.store.EffectiveRules(r.Context(), run.ID)
	if err != nil {
		return views.RunRuleFirings{}, err
	}
	p := views.RunRuleFirings{RulesLink: fmt.Sprintf("/runs/%d/rules", run.ID)}
	switch {
	case len(rules) == 0:
		p.Summary = "No metric rules watch this run."
	case own:
		p.Summary = fmt.Sprintf("%s of its own %s this run.", plural(len(rules), "rule", "rules"), verbFor(len(rules)))
	default:
		p.Summary = fmt.Sprintf("%s (your account defaults) %s this run.", plural(len(rules), "rule", "rules"), verbFor(len(rules)))
	}
	for _, f := range firings {
		it := views.RuleFiringItem{Message: upperFirst(f.Message)}
		it.At = strconv.FormatInt(f.At.UnixMilli(), 10)
		if f.HasStep {
			it.Step = strconv.Itoa(f.Step)
			it.When = "Step " + formatCount(int64(f.Step))
		} else {
			it.When = f.At.UTC().Format("15:04 UTC")
		}
		var acts []string
		if f.Stop {
			acts = append(acts, "stopped the run")
		}
		if f.Notify {
			acts = append(acts, "mailed you")
		}
		it.Actions = upperFirst(strings.Join(acts, " · "))
		p.Items = append(p.Items, it)
	}
	return p, nil
}

// verbFor is "watches" for one rule, "watch" for several.
func verbFor(n int) string {
	if n == 1 {
		return "watches"
	}
	return "watch"
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// runFormRules says on the run form which default rules a new run follows; its own rules
// are set on its page once it exists.
func (a *app) runFormRules(r *http.Request, userID int64) (string, error) {
	rules, err := a.store.MetricRules(r.Context(), userID, 0)
	if err != nil {
		return "", err
	}
	if len(rules) == 0 {
		return "No metric rules will watch this run: you have no default rules. A run can have its own on its page once it starts.", nil
	}
	labels := make([]string, len(rules))
	for i, m := range rules {
		labels[i] = lowerFirst(ruleSpecOf(m.Kind).label)
	}
	return fmt.Sprintf("Your default metric rules will watch this run (%s); it can have its own on its page once it starts.", strings.Join(labels, ", ")), nil
}

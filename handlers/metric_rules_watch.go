package handlers

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	"tunelab/store"
	"tunelab/views"
)

// Metric rules are evaluated where metrics arrive: each stored batch is checked against
// the few series the run's rules name (loss, eval_loss, grad_norm). The rules of a run and
// the ones that already fired are cached in memory, so a run without rules costs one map
// lookup per batch; eval_loss_rising reads the last evaluations only for a batch that
// brings one. Stale metrics are checked by a periodic sweep.

// StaleRulesEvery is how often the stale-metrics rule is checked.
const StaleRulesEvery = 30 * time.Second

// maxWatched bounds the cache; past it the cache starts over (it is only a cache).
const maxWatched = 10_000

type watchedRun struct {
	rules []store.MetricRule
	fired map[string]bool
}

// ruleWatch caches each run's rules and fired kinds.
type ruleWatch struct {
	mu   sync.Mutex
	runs map[int64]*watchedRun
	gen  int64 // bumped by forget: a load begun before it is not cached
}

// forget drops the cache: rules were saved.
func (w *ruleWatch) forget() {
	w.mu.Lock()
	w.runs = nil
	w.gen++
	w.mu.Unlock()
}

// pending returns the rules of a run that have not fired yet.
func (w *ruleWatch) pending(ctx context.Context, st *store.Store, runID int64) ([]store.MetricRule, error) {
	w.mu.Lock()
	wr, gen := w.runs[runID], w.gen
	w.mu.Unlock()
	if wr == nil {
		rules, _, err := st.EffectiveRules(ctx, runID)
		if err != nil {
			return nil, err
		}
		wr = &watchedRun{rules: rules, fired: map[string]bool{}}
		if len(rules) > 0 {
			firings, err := st.RuleFirings(ctx, runID)
			if err != nil {
				return nil, err
			}
			for _, f := range firings {
				wr.fired[f.Kind] = true
			}
		}
		w.mu.Lock()
		if gen == w.gen {
			if w.runs == nil || len(w.runs) >= maxWatched {
				w.runs = map[int64]*watchedRun{}
			}
			w.runs[runID] = wr
		}
		w.mu.Unlock()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []store.MetricRule
	for _, m := range wr.rules {
		if !wr.fired[m.Kind] {
			out = append(out, m)
		}
	}
	return out, nil
}

func (w *ruleWatch) markFired(runID int64, kind string) {
	w.mu.Lock()
	if wr := w.runs[runID]; wr != nil {
		wr.fired[kind] = true
	}
	w.mu.Unlock()
}

// checkRules evaluates a run's rules on a batch just stored (added: its new points).
// base starts the link in a mail. Failures are logged: the batch is stored either way.
func (a *app) checkRules(ctx context.Context, base string, runID int64, added []store.MetricPoint) {
	if len(added) == 0 {
		return
	}
	rules, err := a.rules.pending(ctx, a.store, runID)
	if err != nil {
		a.log.ErrorContext(ctx, "metric rules", "run", runID, "err", err)
		return
	}
	for _, m := range rules {
		msg, step, ok, err := a.evalRule(ctx, runID, m, added)
		if err != nil {
			a.log.ErrorContext(ctx, "metric rule", "run", runID, "rule", m.Kind, "err", err)
			continue
		}
		if ok {
			a.fireRule(ctx, base, runID, m, store.RuleFiring{Kind: m.Kind, Step: step, HasStep: true, Message: msg})
		}
	}
}

// evalRule says whether m holds on the batch, and where.
func (a *app) evalRule(ctx context.Context, runID int64, m store.MetricRule, added []store.MetricPoint) (msg string, step int, ok bool, err error) {
	switch m.Kind {
	case store.RuleNaNLoss:
		for _, p := range added {
			if (p.Name == "loss" || p.Name == "eval_loss") && p.Kind != store.KindFinite && (!ok || p.Step < step) {
				msg, step, ok = fmt.Sprintf("%s became %s at step %s", metricWords(p.Name), nonFiniteWord(p.Kind), formatCount(int64(p.Step))), p.Step, true
			}
		}
	case store.RuleGradNormAbove:
		for _, p := range added {
			if p.Name == "grad_norm" && p.Kind == store.KindFinite && p.Value > m.Threshold && (!ok || p.Step < step) {
				msg, step, ok = fmt.Sprintf("grad norm reached %s at step %s (above %s)", shortNumber(p.Value), formatCount(int64(p.Step)), shortNumber(m.Threshold)), p.Step, true
			}
		}
	case store.RuleEvalLossRising:
		var steps []int
		for _, p := range added {
			if p.Name == "eval_loss" && p.Kind == store.KindFinite {
				steps = append(steps, p.Step)
			}
		}
		sort.Ints(steps)
		n := int(m.Threshold)
		for _, s := range steps {
			pts, err := a.store.RecentFinite(ctx, runID, "eval_loss", s, n+1)
			if err != nil {
				return "", 0, false, err
			}
			if risingRun(pts, n) {
				last := pts[len(pts)-1]
				return fmt.Sprintf("eval loss rose %s in a row, to %s at step %s", plural(n, "evaluation", "evaluations"),
					shortNumber(last.Value), formatCount(int64(last.Step))), last.Step, true, nil
			}
		}
	}
	return msg, step, ok, nil
}

// risingRun is true when pts (oldest first) are n+1 values, each above the one before.
func risingRun(pts []store.MetricPoint, n int) bool {
	if len(pts) < n+1 {
		return false
	}
	for i := 1; i < len(pts); i++ {
		if pts[i].Value <= pts[i-1].Value {
			return false
		}
	}
	return true
}

func metricWords(name string) string {
	if name == "eval_loss" {
		return "eval loss"
	}
	return name
}

func nonFiniteWord(kind string) string {
	switch kind {
	case store.KindNaN:
		return "NaN"
	case store.KindNegInf:
		return "-infinite"
	}
	return "infinite"
}

func shortNumber(v float64) string { return strconv.FormatFloat(v, 'g', 4, 64) }

// fireRule stores a firing once, then acts: asks the run to stop cleanly (the worker
// saves a final snapshot) and/or mails the owner. A rule that already fired does nothing.
func (a *app) fireRule(ctx context.Context, base string, runID int64, m store.MetricRule, f store.RuleFiring) {
	f.Notify, f.Stop = m.Notify, m.Stop
	fired, err := a.store.FireRule(ctx, runID, f)
	if err != nil {
		a.log.ErrorContext(ctx, "fire metric rule", "run", runID, "rule", m.Kind, "err", err)
		return
	}
	a.rules.markFired(runID, m.Kind)
	if !fired {
		return
	}
	a.log.InfoContext(ctx, "metric rule fired", "run", runID, "rule", m.Kind, "step", f.Step)
	defer a.publish(statusEvent(runID)) // open run pages show the banner (and the stop) at once
	stopped := false
	if m.Stop {
		asked, err := a.store.StopRun(ctx, runID, "Stopped by rule: "+f.Message)
		if err != nil {
			a.log.ErrorContext(ctx, "stop run by rule", "run", runID, "err", err)
		}
		stopped = asked
	}
	if m.Notify {
		if err := a.mailRuleFired(ctx, base, runID, f.Message, stopped); err != nil {
			a.log.ErrorContext(ctx, "queue rule mail", "run", runID, "err", err)
		}
	}
}

// mailRuleFired queues the "a metric rule fired" mail to the run's owner: they asked for it
// with the rule, so it is sent like an account mail (no preference turns it off).
func (a *app) mailRuleFired(ctx context.Context, base string, runID int64, msg string, stopped bool) error {
	run, err := a.store.RunByID(ctx, runID)
	if err != nil {
		return err
	}
	u, err := a.store.UserByID(ctx, run.UserID)
	if err != nil {
		return err
	}
	m := views.MailRuleFired{Name: run.Name, Message: msg, Stopped: stopped, RunLink: fmt.Sprintf("%s/runs/%d", base, run.ID)}
	var b bytes.Buffer
	if err := views.RuleFiredMailHTML(m).Render(ctx, &b); err != nil {
		return err
	}
	if _, err := a.store.EnqueueMail(ctx, store.NewMail{Kind: store.MailRuleFired, To: u.Email,
		Subject: "A metric rule fired on your run " + run.Name, Text: views.RuleFiredMailText(m), HTML: b.String()}); err != nil {
		return err
	}
	if a.mail.Wake != nil {
		a.mail.Wake()
	}
	return nil
}

// checkStaleRules fires the stale-metrics rule of each running run that has reported no
// new metric point (or, with none yet, started) longer ago than the rule's minutes.
func (a *app) checkStaleRules(ctx context.Context) {
	runs, err := a.store.LiveRunsLastMetric(ctx)
	if err != nil {
		a.log.ErrorContext(ctx, "stale metric rules", "err", err)
		return
	}
	now := a.now()
	for _, c := range runs {
		rules, err := a.rules.pending(ctx, a.store, c.RunID)
		if err != nil {
			a.log.ErrorContext(ctx, "stale metric rules", "run", c.RunID, "err", err)
			continue
		}
		for _, m := range rules {
			limit := time.Duration(m.Threshold) * time.Minute
			if m.Kind != store.RuleStaleMetrics || now.Sub(c.LastAt) < limit {
				continue
			}
			msg := fmt.Sprintf("no new metric for %s (none since %s)", plural(int(m.Threshold), "minute", "minutes"), c.LastAt.UTC().Format("15:04 UTC"))
			a.fireRule(ctx, a.cfg.BaseURL, c.RunID, m, store.RuleFiring{Kind: m.Kind, Message: msg})
		}
	}
}

// watchStaleRules runs checkStaleRules every StaleRulesEvery until stop is closed.
func (a *app) watchStaleRules(stop <-chan struct{}) {
	t := time.NewTicker(StaleRulesEvery)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			a.checkStaleRules(context.Background())
		}
	}
}

package main

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"tunelab/store"
)

// finishRun ends a run as its worker does.
func finishRun(t *testing.T, base string, run int64, token string) {
	t.Helper()
	if status, body := workerPost(http.DefaultClient, base, run, "finish", token, []byte(`{"status":"succeeded"}`)); status != http.StatusOK {
		t.Fatalf("finish run %d: %d %s", run, status, body)
	}
}

// signedUpWithSample signs a person up in the browser and gives them the sample dataset,
// which manualRun needs.
func (b *browser) signedUpWithSample(email string) {
	b.t.Helper()
	b.signUpInBrowser(email, "correct horse battery staple")
	b.open("/datasets", http.StatusOK)
	b.do("use the chat sample", chromedp.Click(chromedp.CSS(`[data-testid=sample-chat] button, button[data-testid=sample-chat]`), chromedp.NodeVisible))
	b.waitFor("the sample's page", `/^\/datasets\/\d+$/.test(location.pathname)`)
}

// press sends keys to the element in focus, as a person typing would.
func (b *browser) press(what string, keys string) {
	b.t.Helper()
	b.do(what, chromedp.KeyEvent(keys))
}

// TestBrowserChartKeyboardZoom: a chart's plot area takes the focus (with a visible ring)
// and zooms with the keys: + narrows the window around its middle and fetches finer data
// as a drag does, the arrows move it, - widens it, 0 resets. The reset button is there,
// disabled, before any zoom; the hint says which keys; the plot's label names the x axis.
func TestBrowserChartKeyboardZoom(t *testing.T) {
	findChromium(t)
	dir := t.TempDir()
	addr, stop := startServerWith(t, nil, dir)
	defer stop()
	base := "http://" + addr
	b := newBrowser(t, base)
	b.desktop()
	const email = "keys@example.com"
	b.signedUpWithSample(email)
	st := openStore(t, dir)
	run, _ := manualRun(t, st, email, "lora")
	const n = 3000 // more than the page draws (the island is downsampled), twice what a half-window needs
	pts := make([]store.MetricPoint, 0, n)
	for step := range n {
		pts = append(pts, store.MetricPoint{Name: "loss", Step: step, Value: 2 * math.Exp(-float64(step)/1e3)})
	}
	if _, err := st.AppendMetricsDirect(context.Background(), run, pts); err != nil {
		t.Fatal(err)
	}

	b.open(fmt.Sprintf("/runs/%d", run), http.StatusOK)
	b.waitFor("the downsampled loss chart", `window.tunelabCharts && window.tunelabCharts.view("loss").level > 0 &&
		window.tunelabCharts.xRange("loss") !== null`)
	overview := eval[int](b, `window.tunelabCharts.view("loss").level`)
	const plot = `document.querySelector("[data-testid=chart-loss] [data-chart-plot]")`
	type plotState struct {
		Tab, Label, Describedby, Hint string
		ResetDisabled, ResetARIA      string
		ResetVisible, HintVisible     bool
	}
	got := eval[plotState](b, `(() => { const p = `+plot+`, r = document.querySelector("[data-testid=chart-reset]");
		const hint = document.getElementById(p.getAttribute("aria-describedby"));
		return {tab: p.getAttribute("tabindex"), label: p.getAttribute("aria-label"), describedby: p.getAttribute("aria-describedby"),
			hint: hint ? hint.textContent.replace(/\s+/g, " ").trim() : "",
			resetDisabled: String(r.disabled), resetARIA: r.getAttribute("aria-disabled"),
			resetVisible: r.getBoundingClientRect().width > 0 && getComputedStyle(r).visibility !== "hidden",
			hintVisible: !!hint && hint.getBoundingClientRect().width > 0 && getComputedStyle(hint).display !== "none"}; })()`)
	if got.Tab != "0" || got.Label != "Loss by training step" {
		t.Errorf("plot area: tabindex %q, label %q; want 0 and %q", got.Tab, got.Label, "Loss by training step")
	}
	if !got.HintVisible || !strings.Contains(got.Hint, "+") || !strings.Contains(got.Hint, "0") {
		t.Errorf("the zoom hint (the plot's description) %q: visible %v; want it shown, naming the keys", got.Hint, got.HintVisible)
	}
	if !got.ResetVisible || got.ResetDisabled != "true" || got.ResetARIA != "true" {
		t.Errorf("reset button before a zoom: visible %v, disabled %s, aria-disabled %s; want visible and disabled", got.ResetVisible, got.ResetDisabled, got.ResetARIA)
	}

	whole := eval[[]float64](b, `window.tunelabCharts.xRange("loss")`)
	b.do("focus the loss chart", chromedp.Focus(chromedp.CSS(`[data-testid=chart-loss] [data-chart-plot]`)))
	b.press("zoom in with +", "+")
	b.waitFor("the finer data of the window", `window.tunelabCharts.view("loss").level < `+strconv.Itoa(overview)+` &&
		performance.getEntriesByType("resource").some(e => e.name.includes("/metrics/history?"))`)
	zoomed := eval[[]float64](b, `window.tunelabCharts.xRange("loss")`)
	wholeW, zoomW := whole[1]-whole[0], zoomed[1]-zoomed[0]
	if math.Abs(zoomW-wholeW/2) > wholeW*0.02 || math.Abs((zoomed[0]+zoomed[1])/2-(whole[0]+whole[1])/2) > wholeW*0.02 {
		t.Errorf("after + the x window is %v; want half of %v around the same middle", zoomed, whole)
	}
	if !eval[bool](b, `getComputedStyle(`+plot+`).outlineStyle === "solid" && `+plot+` === document.activeElement`) {
		t.Error("the focused plot area shows no focus ring")
	}
	if eval[bool](b, `document.querySelector("[data-testid=chart-reset]").disabled`) ||
		!strings.HasPrefix(b.text(`[data-testid=chart-zoom]`), "Zoomed to steps") {
		t.Error("zoomed by key, but the toolbar neither says so nor enables the reset")
	}
	b.screenshot("40-chart-keyboard-zoom")

	b.press("move right", kb.ArrowRight)
	b.waitFor("the window a quarter further right", fmt.Sprintf(`(r => r !== null && Math.abs(r[0] - %f) < %f)(window.tunelabCharts.xRange("loss"))`,
		zoomed[0]+zoomW/4, wholeW*0.02))
	b.press("zoom in again", "+")
	b.waitFor("a quarter of the run", fmt.Sprintf(`(r => Math.abs(r[1] - r[0] - %f) < %f)(window.tunelabCharts.xRange("loss"))`, wholeW/4, wholeW*0.02))
	b.press("zoom out with -", "-")
	b.waitFor("half of the run again", fmt.Sprintf(`(r => Math.abs(r[1] - r[0] - %f) < %f)(window.tunelabCharts.xRange("loss"))`, wholeW/2, wholeW*0.02))

	b.press("reset with 0", "0")
	b.waitFor("the whole run again", fmt.Sprintf(`(r => Math.abs(r[0] - %f) < 1 && Math.abs(r[1] - %f) < 1)(window.tunelabCharts.xRange("loss")) &&
		window.tunelabCharts.view("loss").level === %d && document.querySelector("[data-testid=chart-reset]").disabled &&
		document.querySelector("[data-testid=chart-reset]").getAttribute("aria-disabled") === "true"`, whole[0], whole[1], overview))

	// A press of the reset button leaves the focus on the chart, not on a disabled button.
	b.press("zoom in", "+")
	b.waitFor("zoomed", `!document.querySelector("[data-testid=chart-reset]").disabled`)
	b.do("reset with the button", chromedp.Click(chromedp.CSS(`[data-testid=chart-reset]`), chromedp.NodeVisible))
	b.waitFor("the focus back on a chart", `document.querySelector("[data-testid=chart-reset]").disabled &&
		document.activeElement && document.activeElement.hasAttribute("data-chart-plot")`)

	// The label follows the x axis.
	for _, x := range []struct{ value, words string }{{"relative", "by relative time"}, {"wall", "by wall-clock time"}, {"step", "by training step"}} {
		b.do("x axis "+x.value, chromedp.SetValue(chromedp.CSS(`[data-testid=chart-x]`), x.value))
		eval[bool](b, `document.querySelector("[data-testid=chart-x]").dispatchEvent(new Event("change", {bubbles: true}))`)
		b.waitFor("the label "+x.words, plot+`.getAttribute("aria-label") === "Loss `+x.words+`"`)
	}
	// Keys zoom on the time axes too.
	b.do("x axis relative", chromedp.SetValue(chromedp.CSS(`[data-testid=chart-x]`), "relative"))
	eval[bool](b, `document.querySelector("[data-testid=chart-x]").dispatchEvent(new Event("change", {bubbles: true}))`)
	b.waitFor("the relative-time chart", `window.tunelabCharts.xRange("loss") !== null`)
	b.do("focus the loss chart", chromedp.Focus(chromedp.CSS(`[data-testid=chart-loss] [data-chart-plot]`)))
	b.press("zoom in on relative time", "+")
	b.waitFor("zoomed on relative time", `!document.querySelector("[data-testid=chart-reset]").disabled`)
	b.press("Home resets", kb.Home)
	b.waitFor("reset on relative time", `document.querySelector("[data-testid=chart-reset]").disabled`)
	b.checkClean("keyboard zoom")
}

// TestBrowserCompareFollowsLiveRuns: comparing a finished run with one still training, the
// compare chart adds the live run's new points as its worker posts them (no reload), marks
// it running in the legend and the configuration table, and closes its stream when it ends.
func TestBrowserCompareFollowsLiveRuns(t *testing.T) {
	findChromium(t)
	dir := t.TempDir()
	addr, stop := startServerWith(t, nil, dir)
	defer stop()
	base := "http://" + addr
	b := newBrowser(t, base)
	b.desktop()
	const email = "live-compare@example.com"
	b.signedUpWithSample(email)
	st := openStore(t, dir)
	done, tokDone := manualRun(t, st, email, "lora")
	live, tokLive := manualRun(t, st, email, "full")
	postPoints(t, base, done, tokDone, "loss", 0, 100, func(s int) float64 { return 2 - float64(s)/100 })
	finishRun(t, base, done, tokDone)
	postPoints(t, base, live, tokLive, "loss", 0, 40, func(s int) float64 { return 2.5 - float64(s)/100 })

	b.open(fmt.Sprintf("/compare?run=%d&run=%d&metric=loss", done, live), http.StatusOK)
	b.waitFor("both runs on the compare chart, the live one followed", fmt.Sprintf(`window.tunelabCharts && window.tunelabCharts.runs().length === 2 &&
		window.tunelabCharts.points("%d") === 100 && window.tunelabCharts.points("%d") === 40 && window.tunelabCharts.streams() === 1`, done, live))
	type marks struct{ Legend, Config []string }
	shown := `(() => { const vis = el => !el.hidden && el.getBoundingClientRect().width > 0;
		return {legend: [...document.querySelectorAll("[data-testid=compare-row]")].map(r => { const m = r.querySelector("[data-testid=compare-live]"); return r.getAttribute("data-run") + ":" + (m && vis(m) ? m.textContent : ""); }),
			config: [...document.querySelectorAll("[data-testid=config-live]")].filter(vis).map(m => m.getAttribute("data-compare-live") + ":" + m.textContent)}; })()`
	m := eval[marks](b, shown)
	wantLegend := []string{fmt.Sprintf("%d:", done), fmt.Sprintf("%d:Running", live)}
	if fmt.Sprint(m.Legend) != fmt.Sprint(wantLegend) || fmt.Sprint(m.Config) != fmt.Sprint([]string{fmt.Sprintf("%d:Running", live)}) {
		t.Errorf("live marks: legend %v, configuration %v; want the live run marked Running in both", m.Legend, m.Config)
	}
	b.checkClean("compare page with a live run")

	// The worker posts more: the chart grows without a reload; other metrics stay off it.
	before := eval[float64](b, `performance.timeOrigin`)
	postPoints(t, base, live, tokLive, "loss", 40, 30, func(s int) float64 { return 2.5 - float64(s)/100 })
	postPoints(t, base, live, tokLive, "grad_norm", 0, 10, func(s int) float64 { return 1 })
	postPoints(t, base, live, tokLive, "loss", 70, 10, func(s int) float64 { return 2.5 - float64(s)/100 })
	b.waitFor("the live run's new points on the chart", fmt.Sprintf(`window.tunelabCharts.points("%d") === 80 &&
		(r => r !== null && r[1] >= 79)(window.tunelabCharts.xRange("%d"))`, live, live))
	if eval[float64](b, `performance.timeOrigin`) != before {
		t.Fatal("the page reloaded")
	}
	if got := eval[int](b, fmt.Sprintf(`window.tunelabCharts.points("%d")`, done)); got != 100 {
		t.Errorf("the finished run has %d points, want 100", got)
	}
	// The legend's count follows the chart on the next frame.
	b.waitFor("the live run's legend to count 80 points", fmt.Sprintf(`(document.querySelector('[data-testid=compare-row][data-run="%d"] [data-legend-points]') || {}).textContent === "80"`, live))
	b.screenshot("41-compare-live")

	// The run ends: its stream closes (no reconnects) and the marks go.
	finishRun(t, base, live, tokLive)
	b.waitForWithin("the stream closed at the run's end", `window.tunelabCharts.streams() === 0`, 10*time.Second)
	m = eval[marks](b, shown)
	if fmt.Sprint(m.Legend) != fmt.Sprint([]string{fmt.Sprintf("%d:", done), fmt.Sprintf("%d:", live)}) || len(m.Config) != 0 {
		t.Errorf("after the run ended: legend %v, configuration %v; want no live marks", m.Legend, m.Config)
	}
	if got := eval[int](b, fmt.Sprintf(`window.tunelabCharts.points("%d")`, live)); got != 80 {
		t.Errorf("after the end the live run has %d points, want 80", got)
	}
	b.checkClean("compare page after the run ended")
}

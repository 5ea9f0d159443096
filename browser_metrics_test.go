package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"tunelab/gpu"
	"tunelab/store"
)

// manualRun makes a run the server's dispatcher leaves alone and acts as its worker: the
// test holds the token and posts metrics like a GPU worker would. The run is created
// already claimed: queued for a moment, the fair queue could place it on the local backend.
func manualRun(t *testing.T, st *store.Store, email string, method store.Method) (int64, string) {
	t.Helper()
	ctx := context.Background()
	users, _, err := st.ListUsers(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	var userID int64
	for _, u := range users {
		if u.Email == email {
			userID = u.ID
		}
	}
	ds, err := st.Datasets(ctx, userID)
	if err != nil || len(ds) == 0 {
		t.Fatalf("datasets of %s: %v", email, err)
	}
	cfg := store.RunConfig{BaseModel: "tunelab/byte-mlp-base", Method: method, Epochs: 1, LearningRate: 3e-3, BatchSize: 16,
		LoRARank: 16, LoRAAlpha: 32, MaxSeqLen: 512, Seed: 1, GPUType: "cpu", ValidationSplit: 10}
	token, hash := gpu.NewRunToken()
	run, err := st.CreateRun(ctx, store.NewRun{UserID: userID, DatasetID: ds[0].ID, Config: cfg, Backend: "manual", ClaimedBy: hash})
	if err != nil {
		t.Fatal(err)
	}
	if run.Status != store.RunStarting {
		t.Fatalf("run %d is %s, want starting", run.ID, run.Status)
	}
	if _, err := st.Heartbeat(ctx, run.ID, 0, 2_000_000); err != nil {
		t.Fatal(err)
	}
	return run.ID, token
}

// postRaw sends a metrics body as the run's worker and fails unless it is acknowledged.
func postRaw(t *testing.T, base string, run int64, token, body string) {
	t.Helper()
	req, _ := http.NewRequest("POST", fmt.Sprintf("%s/api/v1/worker/runs/%d/metrics", base, run), strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("post metrics: %d %s", resp.StatusCode, b)
	}
}

// postPoints sends one batch as the run's worker and fails unless it is acknowledged.
func postPoints(t *testing.T, base string, run int64, token, name string, from, n int, value func(int) float64) {
	t.Helper()
	var b strings.Builder
	b.WriteString(`{"points":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"name":%q,"step":%d,"value":%s}`, name, from+i, strconv.FormatFloat(value(from+i), 'g', -1, 64))
	}
	b.WriteString(`]}`)
	req, _ := http.NewRequest("POST", fmt.Sprintf("%s/api/v1/worker/runs/%d/metrics", base, run), strings.NewReader(b.String()))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("post metrics: %d %s", resp.StatusCode, body)
	}
}

// TestBrowserMetricsAtScale: a million-point loss with one spike is drawn downsampled;
// zooming fetches finer data; live points stream in and survive a dropped connection
// (the server restarts) with no gap and no duplicate; compare overlays two runs; the
// export holds every point.
func TestBrowserMetricsAtScale(t *testing.T) {
	findChromium(t)
	dir := t.TempDir()
	addr, stop := startServerWith(t, nil, dir)
	base := "http://" + addr
	b := newBrowser(t, base)
	b.desktop()
	const email = "charts@example.com"
	b.signUpInBrowser(email, "correct horse battery staple")
	b.open("/datasets", http.StatusOK)
	b.do("use the chat sample", chromedp.Click(chromedp.CSS(`[data-testid=sample-chat] button, button[data-testid=sample-chat]`), chromedp.NodeVisible))
	b.waitFor("the sample's page", `/^\/datasets\/\d+$/.test(location.pathname)`)

	st := openStore(t, dir)
	ctx := context.Background()
	runA, tokA := manualRun(t, st, email, "lora")
	runB, tokB := manualRun(t, st, email, "full")
	const n, spikeAt = 1_000_000, 654_321
	for lo := 0; lo < n; lo += 10_000 {
		pts := make([]store.MetricPoint, 0, 10_000)
		for step := lo; step < lo+10_000; step++ {
			v := 2 * math.Exp(-float64(step)/2e5)
			if step == spikeAt {
				v = 50
			}
			pts = append(pts, store.MetricPoint{Name: "loss", Step: step, Value: v})
		}
		if _, err := st.AppendMetricsDirect(ctx, runA, pts); err != nil {
			t.Fatal(err)
		}
	}
	// The outlier shape, in a run of its own: a million points at steps 0..999,999 and one
	// at step 1,000,000,000, so the series' average density says nothing about a window.
	runC, _ := manualRun(t, st, email, "lora")
	for lo := 0; lo <= n; lo += 10_000 {
		pts := make([]store.MetricPoint, 0, 10_000)
		for step := lo; step < min(lo+10_000, n); step++ {
			pts = append(pts, store.MetricPoint{Name: "loss", Step: step, Value: 1 + math.Exp(-float64(step)/2e5)})
		}
		if lo == n {
			pts = append(pts, store.MetricPoint{Name: "loss", Step: 1_000_000_000, Value: 0.5})
		}
		if _, err := st.AppendMetricsDirect(ctx, runC, pts); err != nil {
			t.Fatal(err)
		}
	}
	postPoints(t, base, runA, tokA, "eval_loss", 0, 500, func(s int) float64 { return 2.2 - float64(s)/1000 })
	postPoints(t, base, runB, tokB, "eval_loss", 0, 300, func(s int) float64 { return 2.5 - float64(s)/1000 })

	b.open(fmt.Sprintf("/runs/%d", runA), http.StatusOK)
	b.waitForWithin("the charts from the data island", `window.tunelabCharts && window.tunelabCharts.points("loss") > 100 &&
		window.tunelabCharts.view("loss").level > 0`, 20*time.Second)
	if n := eval[int](b, `window.tunelabCharts.points("loss")`); n > 2000 || n < 1000 {
		t.Errorf("the page holds %d loss points; downsampling should keep 1,000 to 2,000", n)
	}
	overview := eval[int](b, `window.tunelabCharts.view("loss").level`)
	b.checkClean("run page with a million points")
	b.screenshot("30-metrics-million")

	// Drag across a narrow stretch of the loss chart: finer data is fetched for it. The chart
	// is scrolled into view first: the cookie banner above the page moves it down.
	eval[bool](b, `(document.querySelector("[data-testid=chart-loss]").scrollIntoView({block: "center"}), true)`)
	rect := eval[[]float64](b, `(() => { const r = document.querySelector("[data-testid=chart-loss] .u-over").getBoundingClientRect(); return [r.left, r.top, r.width, r.height]; })()`)
	x0, y := rect[0]+rect[2]*0.60, rect[1]+rect[3]/2
	b.do("drag to zoom",
		chromedp.MouseEvent(chromedp.MousePressed, x0, y, chromedp.ButtonLeft),
		chromedp.MouseEvent(chromedp.MouseMoved, x0+6, y, chromedp.ButtonLeft),
		chromedp.MouseEvent(chromedp.MouseMoved, x0+12, y, chromedp.ButtonLeft),
		chromedp.MouseEvent(chromedp.MouseReleased, x0+12, y, chromedp.ButtonLeft))
	b.waitForWithin("a finer view after the zoom", `window.tunelabCharts.view("loss").level < `+strconv.Itoa(overview), 15*time.Second)
	b.screenshot("31-metrics-zoomed")
	b.do("reset the zoom", chromedp.Click(chromedp.CSS(`[data-testid=chart-reset]`), chromedp.NodeVisible))
	b.waitFor("the overview again", `window.tunelabCharts.view("loss").level === `+strconv.Itoa(overview))

	// Live points, then the connection drops (the server restarts) while more arrive.
	postPoints(t, base, runA, tokA, "live_metric", 0, 50, func(s int) float64 { return float64(s) })
	b.waitFor("live points and their own chart", `window.tunelabCharts.points("live_metric") === 50 &&
		window.tunelabCharts.charts().includes("live_metric")`)
	b.waitFor("live_metric's chart over its steps", `(r => r !== null && r[0] === 0 && r[1] === 49)(window.tunelabCharts.xRange("live_metric"))`)
	// A NaN is marked, not drawn as a value.
	postRaw(t, base, runA, tokA, `{"points":[{"name":"grad_norm","step":5,"value":"NaN"},{"name":"grad_norm","step":6,"value":1.5}]}`)
	b.waitFor("the NaN marker's note", `document.querySelector("[data-testid=chart-grad_norm]").textContent.includes("NaN")`)
	// The other x-axes, log scale and smoothing redraw without errors.
	b.do("wall-time axis, log scale", chromedp.SetValue(chromedp.CSS(`[data-testid=chart-x]`), "wall"),
		chromedp.Click(chromedp.CSS(`[data-testid=chart-log]`)), chromedp.SetValue(chromedp.CSS(`[data-testid=chart-smooth]`), "0.8"))
	eval[bool](b, `["chart-x", "chart-smooth"].every(id => document.querySelector("[data-testid=" + id + "]").dispatchEvent(new Event(id === "chart-x" ? "change" : "input", {bubbles: true})))`)
	b.waitFor("the charts redrawn", `window.tunelabCharts.points("loss") > 100`)
	// All of live_metric's points came in one batch, and grad_norm's NaN and 1.5 in another:
	// each batch shares one time. Their charts' wall-clock x range lies around those
	// instants, not as uPlot widens one instant on a time scale (a thousand days: ticks
	// "1 Jan 1 Jan" with the points at the left edge).
	type wallRanges struct {
		Now    float64              `json:"now"`
		Ranges map[string][]float64 `json:"ranges"`
	}
	wallOK := func(w wallRanges) bool {
		for _, r := range w.Ranges {
			if len(r) != 2 || r[0] < w.Now-86400 || r[1] > w.Now+86400 || r[1]-r[0] < 1 {
				return false
			}
		}
		return true
	}
	var wr wallRanges
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		wr = eval[wallRanges](b, `({now: Date.now() / 1000, ranges: Object.fromEntries(["loss", "grad_norm", "live_metric"].map(m => [m, window.tunelabCharts.xRange(m)]))})`)
		if wallOK(wr) || time.Now().After(deadline) {
			break
		}
	}
	if !wallOK(wr) {
		t.Errorf("wall-time x ranges (Unix seconds) %v should lie within a day of now (%.0f) and span at least a second", wr.Ranges, wr.Now)
	}
	b.checkClean("other axes")
	b.screenshot("33-metrics-wall-log-smooth")

	if err := stop(); err != nil {
		t.Fatal(err)
	}
	_, stop = startServerAt(t, nil, dir, addr)
	for from := 50; from < 200; from += 50 {
		postPoints(t, base, runA, tokA, "live_metric", from, 50, func(s int) float64 { return float64(s) })
	}
	seq, _ := st.RunMetricSeq(ctx, runA)
	b.waitForWithin("the stream to resume after the restart", `window.tunelabCharts.lastSeq() === `+strconv.FormatInt(seq, 10), 30*time.Second)
	if got := eval[int](b, `window.tunelabCharts.points("live_metric")`); got != 200 {
		t.Fatalf("after the reconnect the chart holds %d live points, want 200 (a gap or a duplicate)", got)
	}
	b.checkClean("run page after the reconnect", func(is browserIssue) bool {
		// The dropped stream shows up as a failed request while the server is away.
		return strings.Contains(is.Text, "/events") || strings.Contains(is.Text, "ERR_CONNECTION_REFUSED") ||
			strings.Contains(is.Text, "Failed to fetch") || strings.Contains(is.Text, "network")
	})

	// Export: every point at full resolution.
	lines, err := chromedp.Run(b.ctx, chromedp.Evaluate[int](`(async () => (await (await fetch(location.pathname + "/metrics.csv")).text()).trim().split("\n").length)()`, chromedp.EvalAwaitPromise))
	if want := 1 + n + 500 + 200 + 2; err != nil || lines != want { // header, loss, eval_loss, live, grad_norm
		t.Errorf("metrics.csv has %d lines (%v), want %d", lines, err, want)
	}

	// Compare: both runs' eval loss on one chart.
	b.open(fmt.Sprintf("/compare?run=%d&run=%d&metric=eval_loss", runA, runB), http.StatusOK)
	b.waitFor("the compare chart", fmt.Sprintf(`window.tunelabCharts && window.tunelabCharts.runs().length === 2 &&
		window.tunelabCharts.points("%d") === 500 && window.tunelabCharts.points("%d") === 300`, runA, runB))
	b.checkClean("compare page")
	b.screenshot("32-compare")

	// The outlier run: what the chart gets for the whole run, and for the dense stretch
	// (as the chart asks when zoomed there), is between half the budget and the budget.
	b.open(fmt.Sprintf("/runs/%d", runC), http.StatusOK)
	b.waitForWithin("the outlier run's chart", `window.tunelabCharts && window.tunelabCharts.points("loss") > 0 &&
		window.tunelabCharts.view("loss").level > 0`, 20*time.Second)
	if got := eval[int](b, `window.tunelabCharts.points("loss")`); got < 1000 || got > 2000 {
		t.Errorf("the outlier run's page holds %d loss points; want 1,000 to 2,000", got)
	}
	for _, q := range []string{"", "&from=0&to=999999", "&from=0&to=1000000000"} {
		js := `(async () => { const h = JSON.parse(document.getElementById("run-metrics-data").textContent).history_url;
			const r = await (await fetch(h + "?name=loss` + q + `")).json(); return [r.line.length, r.envelope.length, r.level]; })()`
		got, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]int](js, chromedp.EvalAwaitPromise))
		if err != nil || len(got) != 3 || got[0] < 1000 || got[0] > 2000 || got[1] > 2000 || got[2] == 0 {
			t.Errorf("history?name=loss%s of the outlier run: [line, envelope, level] = %v (%v); want 1,000 to 2,000 drawn, downsampled", q, got, err)
		}
	}
	b.checkClean("outlier run page")
	stop()
}

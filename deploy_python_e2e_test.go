package main

import (
	"bufio"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// The Python worker end to end with Go driving: the local backend runs the real worker
// (scripts/python-env.sh's venv, a tiny Llama built on the fly, the CPU), a LoRA run
// trains, its snapshot is deployed, the inference server (transformers generate; vLLM is
// not installed here) answers /v1 chat and completions streamed and not through the
// server's proxy, the deployments page shows it (screenshots), another person gets 404,
// its snapshot is evaluated through the deployment (the worker's own eval_loss on the
// held-out rows), Stop ends it and its GPU seconds are in the usage ledger.

// pythonVenv is the worker's venv, made once by scripts/python-env.sh; without one the
// test is skipped loudly, except under CI=true.
func pythonVenv(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("scripts/python-env.sh").Output()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("scripts/python-env.sh: %v", err)
		}
		t.Skipf("SKIPPED LOUDLY: no Python environment for the worker (scripts/python-env.sh: %v)", err)
	}
	return strings.TrimSpace(string(out))
}

var deployAction = regexp.MustCompile(`action="(/runs/\d+/snapshots/\d+/deploy)"`)

func TestBrowserDeployPythonSnapshot(t *testing.T) {
	findChromium(t)
	venv := pythonVenv(t)
	py := filepath.Join(venv, "bin", "python")
	models := t.TempDir()
	if out, err := exec.Command(py, "trainer/python/tests/tiny_model.py", filepath.Join(models, "tiny-llama")).CombinedOutput(); err != nil {
		t.Fatalf("tiny model: %v\n%s", err, out)
	}
	workerDir, _ := filepath.Abs("trainer/python")
	dataDir := t.TempDir()
	env := map[string]string{"TUNELAB_HEARTBEAT_INTERVAL": "1s", "TUNELAB_HEARTBEAT_TIMEOUT": "60s",
		"TUNELAB_LOCAL_WORKER": "python", "TUNELAB_PYTHON": py, "TUNELAB_PYTHON_WORKER_DIR": workerDir,
		"TUNELAB_MODELS_DIR": models, "HF_HOME": t.TempDir()}
	addr, _ := startServerWithin(t, env, dataDir, "127.0.0.1:0", 4*time.Minute)
	base := "http://" + addr

	a := newAppClient(t, base)
	dataset := a.signUpWithSample("gpu-deploy@example.com")
	st, loc := a.post("/runs", url.Values{"dataset_id": {fmt.Sprint(dataset)}, "base_model": {"tiny-llama"}, "method": {"lora"},
		"epochs": {"3"}, "learning_rate": {"0.005"}, "batch_size": {"4"}, "lora_rank": {"8"}, "lora_alpha": {"16"},
		"max_seq_len": {"128"}, "seed": {"7"}, "gpu_type": {"cpu"}, "validation_split": {"10"}, "snapshot_every": {"0"}})
	if st != http.StatusSeeOther {
		t.Fatalf("start run: %d", st)
	}
	run := idFrom(t, loc)
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(dataDir, "tunelab.db")+"?mode=ro&_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	waitRow := func(what string, within time.Duration, q string, args []any, ok func(string) bool) string {
		t.Helper()
		deadline := time.Now().Add(within)
		var v sql.NullString
		for time.Now().Before(deadline) {
			if err := db.QueryRow(q, args...).Scan(&v); err == nil && ok(v.String) {
				return v.String
			}
			time.Sleep(300 * time.Millisecond)
		}
		logs, _ := filepath.Glob(filepath.Join(dataDir, "workers", "*.log"))
		var all string
		for _, l := range logs {
			b, _ := os.ReadFile(l)
			all += l + ":\n" + string(b)
		}
		t.Fatalf("%s did not happen within %s (last %q)\n%s", what, within, v.String, all)
		return ""
	}
	status := waitRow("the run's end", 5*time.Minute, "SELECT status FROM runs WHERE id = ?", []any{run},
		func(s string) bool { return s == "succeeded" || s == "failed" || s == "cancelled" })
	if status != "succeeded" {
		t.Fatalf("the run %s", status)
	}
	_, page, _ := a.get(fmt.Sprintf("/runs/%d", run))
	deploy := deployAction.FindSubmatch(page)
	if deploy == nil {
		t.Fatal("no Deploy on the run page")
	}
	if st, loc := a.post(string(deploy[1]), nil); st != http.StatusSeeOther || loc != "/deployments" {
		t.Fatalf("deploy: %d %q", st, loc)
	}
	var depID int64
	var model string
	if err := db.QueryRow("SELECT id, name FROM deployments ORDER BY id DESC LIMIT 1").Scan(&depID, &model); err != nil {
		t.Fatal(err)
	}
	waitRow("the inference server's start", 4*time.Minute, "SELECT CASE WHEN ended_at IS NOT NULL THEN 'ended' WHEN healthy = 1 THEN 'live' ELSE 'starting' END FROM deployments WHERE id = ?",
		[]any{depID}, func(s string) bool { return s != "starting" })

	// The deployments page, as the person sees it.
	b := newBrowser(t, base)
	b.desktop()
	b.open("/signin", http.StatusOK)
	b.do("reject analytics", chromedp.Click(chromedp.CSS(`[data-testid=consent-reject]`), chromedp.NodeVisible))
	b.waitFor("the sign-in form", has(`[data-testid=signin-form]`)+" && "+htmxReady+" && !("+has(`[data-testid=consent-banner]`)+")")
	b.do("sign in",
		chromedp.SendKeys(chromedp.CSS(`[data-testid=signin-form] input[name=email]`), "gpu-deploy@example.com", chromedp.NodeVisible),
		chromedp.SendKeys(chromedp.CSS(`[data-testid=signin-form] input[name=password]`), "a long training passphrase", chromedp.NodeVisible),
		chromedp.Click(chromedp.CSS(`[data-testid=signin-form] button[type=submit]`), chromedp.NodeVisible))
	b.waitFor("the dashboard", pathIs("/")+" && "+has(`[data-testid=dashboard]`))
	b.open("/deployments", http.StatusOK)
	b.waitFor("the GPU deployment", has(`[data-testid=deployment-row]`))
	if got := b.text(`[data-testid=deployment-status]`); got != "Live" {
		t.Fatalf("status %q", got)
	}
	if where := b.text(`[data-testid=deployment-where]`); where != "local backend, cpu" {
		t.Errorf("served by %q", where)
	}
	b.screenshot("68-deployments-gpu-live")
	b.do("open the log", chromedp.Click(chromedp.CSS(`.deployment-log summary`), chromedp.NodeVisible))
	b.waitFor("the log", `(document.querySelector("[data-testid=deployment-log]") || {}).textContent?.includes("serving on http://127.0.0.1:")`)
	b.screenshot("69-deployments-gpu-log")
	b.checkClean("GPU deployment")

	// /v1 through the proxy, with an API key.
	key := apiKeyFor(t, a)
	chat := fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"What is the capital of France?"}],"max_tokens":12,"temperature":0}`, model)
	code, body := v1Post(t, base, key, "/v1/chat/completions", chat)
	var whole struct {
		Model   string `json:"model"`
		Choices []struct {
			Message struct{ Content string } `json:"message"`
		} `json:"choices"`
		Usage struct {
			CompletionTokens int `json:"completion_tokens"`
		} `json:"usage"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &whole) != nil || whole.Model != model || len(whole.Choices) != 1 || whole.Usage.CompletionTokens < 1 {
		t.Fatalf("chat: %d %s", code, body)
	}
	code, body = v1Post(t, base, key, "/v1/chat/completions", strings.Replace(chat, `"temperature":0`, `"temperature":0,"stream":true`, 1))
	var streamed strings.Builder
	sc := bufio.NewScanner(strings.NewReader(body))
	var last string
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		last = data
		var c struct {
			Choices []struct {
				Delta struct{ Content string } `json:"delta"`
			} `json:"choices"`
		}
		if json.Unmarshal([]byte(data), &c) == nil && len(c.Choices) > 0 {
			streamed.WriteString(c.Choices[0].Delta.Content)
		}
	}
	if code != 200 || last != "[DONE]" || streamed.String() != whole.Choices[0].Message.Content {
		t.Fatalf("stream: %d %q, pieces %q want %q", code, body, streamed.String(), whole.Choices[0].Message.Content)
	}
	if code, body := v1Post(t, base, key, "/v1/completions", fmt.Sprintf(`{"model":%q,"prompt":"The quick brown","max_tokens":5}`, model)); code != 200 || !strings.Contains(body, `"text_completion"`) {
		t.Fatalf("completion: %d %s", code, body)
	}

	// The playground on the deployment, beside the built-in base model.
	b.open("/playground", http.StatusOK)
	b.waitFor("the playground", has(`[data-testid=playground-form]`)+" && "+htmxReady)
	b.do("fill the form",
		chromedp.SetValue(chromedp.CSS(`#model_a`), fmt.Sprintf("deployment:%d", depID), chromedp.NodeVisible),
		chromedp.SetValue(chromedp.CSS(`#model_b`), "base:tunelab/byte-mlp-small", chromedp.NodeVisible),
		chromedp.Click(chromedp.CSS(`[data-testid=mode-chat]`), chromedp.NodeVisible),
		chromedp.SendKeys(chromedp.CSS(`#prompt`), "What is the capital of France?", chromedp.NodeVisible),
		chromedp.SetValue(chromedp.CSS(`#temperature`), "0", chromedp.NodeVisible),
		chromedp.SetValue(chromedp.CSS(`#max_tokens`), "12", chromedp.NodeVisible))
	b.do("generate", chromedp.Click(chromedp.CSS(`[data-testid=playground-generate]`), chromedp.NodeVisible))
	ended := func(slot string) string {
		return has(`[data-testid=playground-status-` + slot + `] [data-testid=playground-end]`)
	}
	b.waitForWithin("both answers", `location.search.startsWith("?run=") && `+ended("a")+" && "+ended("b"), 2*time.Minute)
	if status := b.text(`[data-testid=playground-status-a]`); !strings.Contains(status, "on "+model) {
		t.Errorf("the deployment's answer ended with %q", status)
	}
	if got := eval[string](b, `document.querySelector("[data-testid=playground-text-a]").textContent`); got != whole.Choices[0].Message.Content {
		t.Errorf("the playground's answer %q, the API's %q", got, whole.Choices[0].Message.Content)
	}
	b.screenshot("72-playground-gpu-deployment")
	b.checkClean("playground on a GPU deployment")

	// Evaluate the deployed snapshot: its held-out rows, scored by the inference server, give
	// the worker's own final eval_loss on them (nats per token).
	_, page, _ = a.get(fmt.Sprintf("/runs/%d", run))
	evaluate := evaluateAction.FindSubmatch(page)
	if evaluate == nil {
		t.Fatal("no Evaluate on the deployed GPU snapshot")
	}
	if st, _ := a.post(string(evaluate[1]), url.Values{}); st != http.StatusSeeOther {
		t.Fatalf("evaluate: %d", st)
	}
	if st := waitRow("the evaluation's end", 3*time.Minute, "SELECT status || ' ' || error FROM snapshot_evals WHERE run_id = ?", []any{run},
		func(s string) bool { return strings.HasPrefix(s, "done") || strings.HasPrefix(s, "failed") }); st != "done " {
		t.Fatalf("the evaluation: %q", st)
	}
	var evalLoss float64
	var evalRows int
	if err := db.QueryRow("SELECT eval_loss, rows FROM snapshot_evals WHERE run_id = ?", run).Scan(&evalLoss, &evalRows); err != nil {
		t.Fatal(err)
	}
	if want := lastMetric(t, a, run, "eval_loss"); evalRows < 1 || math.Abs(evalLoss-want) > 1e-3*want {
		t.Fatalf("eval loss %v on %d rows; the worker's final eval_loss %v", evalLoss, evalRows, want)
	}
	b.open(fmt.Sprintf("/runs/%d#checkpoints", run), http.StatusOK)
	b.waitFor("the evaluated snapshot", has(`[data-testid=checkpoint-status]`)+` && document.querySelector("[data-testid=checkpoints-loss-label]").textContent.includes("per token")`)
	eval[bool](b, `(document.querySelector("[data-testid=run-checkpoints]").scrollIntoView({block: "start"}), true)`)
	b.screenshot("73-checkpoints-gpu-evaluated")

	// Another person: no row, no stop, no model.
	o := newAppClient(t, base)
	o.signUpWithSample("gpu-other@example.com")
	if _, page, _ := o.get("/deployments"); strings.Contains(string(page), model) {
		t.Fatal("another person sees the deployment")
	}
	if st, _ := o.post(fmt.Sprintf("/deployments/%d/stop", depID), nil); st != http.StatusNotFound {
		t.Fatalf("another person's stop: %d", st)
	}
	if code, body := v1Post(t, base, apiKeyFor(t, o), "/v1/chat/completions", chat); code != 404 || !strings.Contains(body, "model_not_found") {
		t.Fatalf("another person's call: %d %s", code, body)
	}

	b.open("/deployments", http.StatusOK)
	b.waitFor("the deployments page", has(`[data-testid=deployment-stop]`))
	b.do("stop", chromedp.Click(chromedp.CSS(`[data-testid=deployment-stop]`), chromedp.NodeVisible))
	waitRow("the deployment's end", 2*time.Minute, "SELECT COALESCE(ended_at, 0) FROM deployments WHERE id = ?", []any{depID},
		func(s string) bool { return s != "0" })
	b.open("/deployments", http.StatusOK)
	b.waitFor("the stopped deployment", `(document.querySelector("[data-testid=deployment-status]") || {}).textContent?.trim() === "Stopped" && !`+
		has(`[data-testid=deployment-stop]`))
	b.screenshot("70-deployments-gpu-stopped")
	var seconds, rows int64
	if err := db.QueryRow("SELECT COALESCE(SUM(seconds), 0), COUNT(*) FROM usage WHERE deployment_id = ? AND run_id = ?", depID, run).Scan(&seconds, &rows); err != nil || rows == 0 || seconds < 1 {
		t.Fatalf("usage of the deployment: %d rows, %d seconds (%v)", rows, seconds, err)
	}
	b.phoneFits("deployments")
	b.screenshot("71-deployments-gpu-phone")
}

var evaluateAction = regexp.MustCompile(`action="(/runs/\d+/snapshots/\d+/evaluate)"`)

// lastMetric is the value of the series at its highest step, from the run's JSONL export.
func lastMetric(t *testing.T, a *appClient, run int64, name string) float64 {
	t.Helper()
	_, body, _ := a.get(fmt.Sprintf("/runs/%d/metrics.jsonl", run))
	step, v := -1, math.NaN()
	for _, line := range strings.Split(string(body), "\n") {
		var p struct {
			Name  string   `json:"name"`
			Step  int      `json:"step"`
			Value *float64 `json:"value"`
		}
		if json.Unmarshal([]byte(line), &p) == nil && p.Name == name && p.Value != nil && p.Step > step {
			step, v = p.Step, *p.Value
		}
	}
	if step < 0 {
		t.Fatalf("the run has no %s", name)
	}
	return v
}

var apiKeyShown = regexp.MustCompile(`data-testid="api-key">(tl_[0-9A-Za-z]{32})<`)

func apiKeyFor(t *testing.T, a *appClient) string {
	t.Helper()
	if st, _ := a.post("/settings/api-keys", url.Values{"name": {"e2e"}, "expires": {""}}); st != http.StatusSeeOther {
		t.Fatalf("make a key: %d", st)
	}
	_, page, _ := a.get("/settings/api-keys")
	m := apiKeyShown.FindSubmatch(page)
	if m == nil {
		t.Fatal("no key shown")
	}
	return string(m[1])
}

func v1Post(t *testing.T, base, key, path, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", base+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 3 * time.Minute}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		b.WriteString(sc.Text() + "\n")
	}
	return resp.StatusCode, b.String()
}

package main

import (
	"bytes"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserFineTuneJobThroughTheAPI: a file uploaded and a job made through /v1 with a
// key made in Settings; the file is on the Datasets page, the job's run on the Runs page,
// and once it succeeded its fine_tuned_model is live on the Deployments page (screenshots
// at desktop and phone widths: the long ft: model id must fit).
func TestBrowserFineTuneJobThroughTheAPI(t *testing.T) {
	findChromium(t)
	addr, _ := startServerWith(t, runEnv(t), t.TempDir())
	base := "http://" + addr
	b := newBrowser(t, base)
	b.desktop()
	b.open("/signup", http.StatusOK)
	b.do("reject analytics", chromedp.Click(chromedp.CSS(`[data-testid=consent-reject]`), chromedp.NodeVisible))
	b.waitFor("the banner to go", "!("+has(`[data-testid=consent-banner]`)+")")
	b.signUpInBrowser("api-job@example.com", "correct horse battery staple")
	b.open("/settings/api-keys", http.StatusOK)
	b.do("name the key", chromedp.SetValue(chromedp.CSS(`[data-testid=api-key-form] [name=name]`), "sdk", chromedp.NodeVisible))
	b.do("make the key", chromedp.Click(chromedp.CSS(`[data-testid=api-key-submit]`), chromedp.NodeVisible))
	b.waitFor("the key", has(`[data-testid=api-key]`))
	key := b.text(`[data-testid=api-key]`)

	call := func(method, path, contentType string, body io.Reader) map[string]any {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, body)
		req.Header.Set("Authorization", "Bearer "+key)
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s %s: %d %v %v", method, path, resp.StatusCode, out, err)
		}
		return out
	}
	var rows strings.Builder
	for i := range 40 {
		rows.WriteString(`{"prompt":"Say ` + string(rune('a'+i%26)) + `","completion":" ok"}` + "\n")
	}
	body, ctype := multipartFile(t, "api-rows.jsonl", rows.String())
	file := call("POST", "/v1/files", ctype, body)
	job := call("POST", "/v1/fine_tuning/jobs", "application/json",
		strings.NewReader(`{"model":"tunelab/byte-mlp-small","training_file":"`+file["id"].(string)+`","suffix":"browser","hyperparameters":{"n_epochs":2}}`))
	b.open("/datasets", http.StatusOK)
	if !strings.Contains(b.text(`main`), "api-rows.jsonl") {
		t.Error("the uploaded file is not on the Datasets page")
	}
	b.open("/runs", http.StatusOK)
	if !strings.Contains(b.text(`main`), "browser") {
		t.Error("the job's run is not on the Runs page")
	}
	deadline := time.Now().Add(2 * time.Minute)
	for job["status"] != "succeeded" {
		if time.Now().After(deadline) || job["status"] == "failed" || job["status"] == "cancelled" {
			t.Fatalf("job: %v", job)
		}
		time.Sleep(500 * time.Millisecond)
		job = call("GET", "/v1/fine_tuning/jobs/"+job["id"].(string), "", nil)
	}
	model, _ := job["fine_tuned_model"].(string)
	if model != "ft:tunelab/byte-mlp-small:browser:"+job["id"].(string) {
		t.Fatalf("fine_tuned_model %q", model)
	}
	b.open("/deployments", http.StatusOK)
	if got := b.text(`[data-testid=deployment-model]`); got != model || b.text(`[data-testid=deployment-status]`) != "Live" {
		t.Errorf("deployments page shows %q", got)
	}
	b.screenshot("68-deployments-fine-tuned")
	b.checkClean("deployments")
	b.phoneFits("deployments")
	b.screenshot("69-deployments-fine-tuned-phone")
}

// multipartFile is a /v1/files upload: purpose, then the file.
func multipartFile(t *testing.T, name, content string) (io.Reader, string) {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	mw.WriteField("purpose", "fine-tune")
	fw, err := mw.CreateFormFile("file", name)
	if err != nil {
		t.Fatal(err)
	}
	fw.Write([]byte(content))
	mw.Close()
	return &body, mw.FormDataContentType()
}

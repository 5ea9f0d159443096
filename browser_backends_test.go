package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"
)

// tinyProvider is the least of docs/http-backend.md: jobs are accepted and stay pending.
func tinyProvider(t *testing.T) *httptest.Server {
	var mu sync.Mutex
	jobs := map[string]string{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.Header.Get("Authorization") != "Bearer provider-token" {
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"error":{"code":"unauthenticated","message":"bad token"}}`))
			return
		}
		mu.Lock()
		defer mu.Unlock()
		switch {
		case r.URL.Path == "/v1/offer":
			w.Write([]byte(`{"gpu_types":[{"id":"a100","name":"NVIDIA A100 80GB","free":0}]}`))
		case r.Method == "POST" && r.URL.Path == "/v1/jobs":
			key := r.Header.Get("Idempotency-Key")
			if jobs[key] == "" {
				jobs[key] = "pj-" + key
			}
			json.NewEncoder(w).Encode(map[string]string{"id": jobs[key], "state": "pending"})
		default:
			json.NewEncoder(w).Encode(map[string]string{"id": strings.TrimPrefix(r.URL.Path, "/v1/jobs/"), "state": "pending"})
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// The run form offers every backend's GPU types; a queued run shows its place and
// estimated start; the admin page "Backends" shows each backend's health and load.
func TestBrowserBackendsQueueAndAdminPage(t *testing.T) {
	findChromium(t)
	dir := t.TempDir()
	const password = "correct horse battery staple"
	if err := run(context.Background(), []string{"admin", "create-user", "--email", "ops@example.com", "--password-stdin", "--admin", "--data", dir},
		envMap(nil), strings.NewReader(password+"\n"), &strings.Builder{}); err != nil {
		t.Fatal(err)
	}
	// The local worker holds its slot without training, so the next runs wait in the queue.
	worker := filepath.Join(t.TempDir(), "idle-worker.sh")
	if err := os.WriteFile(worker, []byte("#!/bin/sh\nsleep 20\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	prov := tinyProvider(t)
	addr, _ := startServerWith(t, map[string]string{
		"TUNELAB_BACKEND": "local,http", "TUNELAB_LOCAL_WORKER": worker,
		"TUNELAB_HTTP_URL": prov.URL, "TUNELAB_HTTP_TOKEN": "provider-token", "TUNELAB_HTTP_GPU_TYPES": "a100",
		"TUNELAB_HTTP_SLOTS": "1", "TUNELAB_WORKER_URL": "http://tunelab.example",
	}, dir)
	b := newBrowser(t, "http://"+addr)
	b.desktop()
	b.open("/signin", http.StatusOK)
	b.do("reject analytics", chromedp.Click(chromedp.CSS(`[data-testid=consent-reject]`), chromedp.NodeVisible))
	b.waitFor("the sign-in form", has(`[data-testid=signin-form]`)+" && !("+has(`[data-testid=consent-banner]`)+")")
	b.do("sign in",
		chromedp.SendKeys(chromedp.CSS(`[data-testid=signin-form] input[name=email]`), "ops@example.com", chromedp.NodeVisible),
		chromedp.SendKeys(chromedp.CSS(`[data-testid=signin-form] input[name=password]`), password, chromedp.NodeVisible),
		chromedp.Click(chromedp.CSS(`[data-testid=signin-form] button[type=submit]`), chromedp.NodeVisible))
	b.waitFor("the dashboard", pathIs("/")+" && "+has(`[data-testid=dashboard]`))

	b.open("/runs/new", http.StatusOK)
	for _, g := range []string{"cpu", "a100"} {
		if !eval[bool](b, has(`[name=gpu_type][value="`+g+`"], [name=gpu_type] option[value="`+g+`"]`)) {
			t.Fatalf("the run form does not offer GPU type %s", g)
		}
	}
	// A sample dataset, then four runs: three on the CPU (one slot), one on an A100.
	ids, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]float64](`(async () => {
		const post = (url, data) => fetch(url, {method: "POST", body: new URLSearchParams(data), redirect: "follow"});
		await post("/datasets/samples", {format: "chat"});
		const form = await (await fetch("/runs/new")).text();
		const ds = new DOMParser().parseFromString(form, "text/html").querySelector("[name=dataset_id] option[value]:not([value=''])").value;
		const base = {dataset_id: ds, base_model: "tunelab/byte-mlp-small", method: "lora", epochs: "1", learning_rate: "3e-3",
			batch_size: "8", lora_rank: "8", lora_alpha: "16", max_seq_len: "256", seed: "1", validation_split: "10", snapshot_every: "0"};
		const ids = [];
		for (const g of ["cpu", "cpu", "cpu", "a100"]) {
			const r = await post("/runs", {...base, gpu_type: g});
			ids.push(Number(new URL(r.url).pathname.split("/").pop()));
		}
		return ids;
	})()`, chromedp.EvalAwaitPromise))
	if err != nil || len(ids) != 4 || ids[2] == 0 {
		t.Fatalf("runs %v: %v", ids, err)
	}
	third := "/runs/" + jsonNumber(ids[2])
	b.open(third, http.StatusOK)
	b.waitFor("the queue note", has(`[data-testid=queue-position]`))
	pos := b.text(`[data-testid=queue-position]`)
	if !strings.Contains(pos, "Position 2 in the queue") && !strings.Contains(pos, "Next in the queue") {
		t.Fatalf("queue position %q", pos)
	}
	if !strings.Contains(b.text(`[data-testid=queue-start]`), "Estimated start") {
		t.Fatalf("queue start %q", b.text(`[data-testid=queue-start]`))
	}
	b.checkClean("queued run page")
	b.screenshot("backends-01-queued-run")

	b.open("/admin/backends", http.StatusOK)
	b.waitFor("the backends table", has(`[data-testid=backend-row]`))
	if n := eval[int](b, `document.querySelectorAll("[data-testid=backend-row]").length`); n != 2 {
		t.Fatalf("%d backend rows, want 2", n)
	}
	if got := b.text(`[data-testid=backends]`); !strings.Contains(got, "a100") || !strings.Contains(got, "cpu") {
		t.Fatalf("backends table: %q", got)
	}
	b.checkClean("admin backends page")
	b.screenshot("backends-02-admin")
	b.phoneFits("admin backends")
	b.screenshot("backends-03-admin-phone")
}

func jsonNumber(f float64) string {
	b, _ := json.Marshal(int64(f))
	return string(b)
}

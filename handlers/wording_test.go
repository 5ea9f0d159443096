package handlers

import (
	"fmt"
	"html"
	"regexp"
	"strings"
	"testing"

	"tunelab/gpu"
	"tunelab/store"
)

// paymentPromise is wording that tells a person they pay or are billed. Nothing is charged
// yet, so no signed-in page may say it.
var paymentPromise = regexp.MustCompile(`(?i)\bbilled\b|\byou pay\b|\bpay per\b|\bper second of gpu\b|\bwill be charged\b|\bcost so far\b`)

// visibleText is a page's text as a person reads it: tags gone, entities decoded.
func visibleText(body string) string {
	body = regexp.MustCompile(`(?s)<(script|style)[^>]*>.*?</(script|style)>`).ReplaceAllString(body, " ")
	text := html.UnescapeString(regexp.MustCompile(`(?s)<[^>]*>`).ReplaceAllString(body, " "))
	return strings.Join(strings.Fields(text), " ")
}

// On a backend without GPUs (the built-in CPU trainer) no page speaks of GPU time or
// offers QLoRA, and no page promises payment.
func TestPagesSayWhatThisBackendOffers(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.signUp("words@example.com")
	// The run form alone names QLoRA, once, to say why this backend does not offer it
	// (TestRunFormHelpFitsTheBackend).
	check := func(stage, path string, want ...string) {
		t.Helper()
		r := ts.do(c, "GET", path, nil, nil)
		if r.status != 200 {
			t.Fatalf("%s %s: status %d", stage, path, r.status)
		}
		text := visibleText(r.body)
		for _, bad := range []string{"GPU time", "QLoRA", "the GPU works"} {
			if strings.Contains(text, bad) && !(path == "/runs/new" && bad == "QLoRA") {
				t.Errorf("%s %s says %q on a CPU-only backend", stage, path, bad)
			}
		}
		if m := paymentPromise.FindString(text); m != "" {
			t.Errorf("%s %s promises payment: %q", stage, path, m)
		}
		for _, w := range want {
			if !strings.Contains(text, w) {
				t.Errorf("%s %s lacks %q", stage, path, w)
			}
		}
	}

	check("new account", "/", "Compute time this period", "(LoRA, DPO or full)", "compute time is counted per second")
	check("new account", "/runs", "No runs yet")
	check("new account", "/datasets", "conversations for instruction tuning; LoRA or full")
	check("new account", "/billing", "Billing is off on this server", "every run is free", "Compute time this period", "Compute time is still metered per second")
	check("new account", "/runs/new")

	ds := ts.datasetFor(c, completionLines(20))
	check("with a dataset", "/runs", "(LoRA, DPO or full)", "Compute time is counted per second")
	check("with a dataset", "/datasets")

	id := ts.startRun(c, runValues(ds))
	check("with a run", "/runs", "Compute time")
	check("with a run", fmt.Sprintf("/runs/%d", id), "Compute time", "Waiting in the queue for a free training slot")
	check("with a run", "/", "Compute time counts every run")
}

func TestMethodWordsAndTimeLabelFollowTheOffer(t *testing.T) {
	cpu := gpu.Offer{Methods: []store.Method{store.MethodLoRA, store.MethodDPO, store.MethodFull}, GPUTypes: []gpu.GPUType{{ID: "cpu"}}}
	gpus := gpu.Offer{Methods: []store.Method{store.MethodLoRA, store.MethodQLoRA, store.MethodDPO, store.MethodFull}, GPUTypes: []gpu.GPUType{{ID: "a100"}}}
	for _, tc := range []struct {
		name     string
		offer    gpu.Offer
		chatOnly bool
		want     string
		label    string
	}{
		{"cpu, all", cpu, false, "LoRA, DPO or full", "Compute time"},
		{"cpu, chat data", cpu, true, "LoRA or full", "Compute time"},
		{"gpu, all", gpus, false, "LoRA, QLoRA, DPO or full", "GPU time"},
		{"gpu, chat data", gpus, true, "LoRA, QLoRA or full", "GPU time"},
		{"one method", gpu.Offer{Methods: []store.Method{store.MethodFull}}, false, "full", "Compute time"},
	} {
		if got := methodWords(tc.offer, tc.chatOnly); got != tc.want {
			t.Errorf("%s: methodWords = %q, want %q", tc.name, got, tc.want)
		}
		if got := timeLabel(tc.offer); got != tc.label {
			t.Errorf("%s: timeLabel = %q, want %q", tc.name, got, tc.label)
		}
	}
}

// The legal pages carry the version that sign-up records, and an effective date that is
// that same day.
func TestLegalPagesShowTheCurrentTermsVersion(t *testing.T) {
	if TermsVersion != "2026-11-29" {
		t.Fatalf("TermsVersion = %q; the legal text changed on 2026-11-29", TermsVersion)
	}
	ts := newTestServer(t, Config{})
	for _, path := range []string{"/terms", "/privacy", "/cookies"} {
		r := ts.do(ts.client(), "GET", path, nil, nil)
		if want := "Version 2026-11-29, effective 29 November 2026"; !strings.Contains(visibleText(r.body), want) {
			t.Errorf("%s lacks %q", path, want)
		}
	}
	if r := ts.do(ts.client(), "GET", "/signup", nil, nil); !strings.Contains(r.body, "2026-11-29") {
		t.Error("the sign-up form does not name the terms version it asks to accept")
	}
}

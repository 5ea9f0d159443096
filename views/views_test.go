package views

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"
	"github.com/a-h/templ"
)

// render renders a component and parses it, as a browser would see it.
func render(t *testing.T, c templ.Component) *goquery.Document {
	t.Helper()
	var buf bytes.Buffer
	if err := c.Render(context.Background(), &buf); err != nil {
		t.Fatalf("render: %v", err)
	}
	doc, err := goquery.NewDocumentFromReader(&buf)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return doc
}

// testID selects by data-testid; a space separates descendants: "run-actions retry".
func testID(ids string) string {
	var sel []string
	for _, id := range strings.Fields(ids) {
		sel = append(sel, `[data-testid="`+id+`"]`)
	}
	return strings.Join(sel, " ")
}

// texts are the trimmed texts of the elements that match sel inside s, one each.
func texts(s *goquery.Selection, sel string) string {
	var out []string
	s.Find(sel).Each(func(_ int, e *goquery.Selection) { out = append(out, strings.TrimSpace(e.Text())) })
	return strings.Join(out, ",")
}

// text is the whitespace-collapsed text of the first element with that test id.
func text(doc *goquery.Document, ids string) string {
	return strings.Join(strings.Fields(doc.Find(testID(ids)).First().Text()), " ")
}

func count(doc *goquery.Document, ids string) int { return doc.Find(testID(ids)).Length() }

// sentences are what the handlers say of a run in each status (handlers/run_views.go).
var sentences = map[string]string{
	"queued":    "Waiting in the queue for a free training slot.",
	"starting":  "Starting: the worker is loading the model and the dataset.",
	"running":   "Training. The charts below follow every step.",
	"succeeded": "Finished. The final snapshot is ready to download.",
}

// runLive is a run's live panel in one status, with the fields the handlers give it.
func runLive(status, label string) RunLive {
	l := RunLive{Status: status, Label: label, TimeLabel: "Compute time", GPUTime: "—", Sentence: sentences[status],
		Failed: status == "failed", Cancelled: status == "cancelled",
		Actions: RunActions{DeleteURL: "/runs/7/delete", SimilarURL: "/runs/new?from=7"}}
	switch status {
	case "queued", "starting", "running":
		l.Actions.CancelURL = "/runs/7/cancel"
	default:
		l.Final = true
		l.Actions.RetryURL = "/runs/7/retry"
	}
	if status == "running" {
		l.Percent, l.Progress, l.ETA, l.GPUTime = 50, "360 / 720 steps", "about 12 s left", "41 s"
	}
	if status == "succeeded" {
		l.Percent, l.Progress, l.GPUTime = 100, "720 / 720 steps", "1 min 22 s"
		l.Snapshots = []SnapshotRow{{Step: "720", Final: true, Size: "226.4 kB", DownloadURL: "/runs/7/snapshots/1/download"}}
	}
	if status == "failed" {
		l.Reason, l.RetryURL, l.Percent, l.Progress = "The worker stopped answering.", "/runs/7/retry", 30, "216 / 720 steps"
	}
	return l
}

func TestRunPageShowsWhatEachStatusAllows(t *testing.T) {
	cancelling := runLive("running", "Cancelling")
	cancelling.Cancelling = true
	cancelling.Sentence = "Cancelling: waiting for the worker to stop training and confirm."
	cancelling.ETA = ""
	for _, tc := range []struct {
		name         string
		live         RunLive
		wantStatus   string
		wantSentence string
		wantProgress string
		present      []string
		absent       []string
	}{
		{"queued", runLive("queued", "Queued"), "Queued", "Waiting in the queue", "—",
			[]string{"cancel", "delete", "similar-run"}, []string{"retry", "run-reason", "download-final"}},
		{"running", runLive("running", "Running"), "Running", "Training", "360 / 720 steps",
			[]string{"cancel", "delete"}, []string{"retry", "run-reason", "download-final"}},
		{"cancelling", cancelling, "Cancelling", "Cancelling: waiting for the worker", "360 / 720 steps",
			[]string{"cancel", "delete"}, []string{"retry", "run-reason"}},
		{"succeeded", runLive("succeeded", "Succeeded"), "Succeeded", "Finished", "720 / 720 steps",
			[]string{"retry", "delete", "download-final", "snapshot-row"}, []string{"cancel", "run-reason"}},
		{"failed", runLive("failed", "Failed"), "Failed", "", "216 / 720 steps",
			[]string{"retry", "delete", "run-reason", "retry-live"}, []string{"cancel", "download-final"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := render(t, RunPage(RunDetail{ID: 7, Name: "tiny-chat · lora · 7f3a", EventsURL: "/runs/7/events", Live: tc.live,
				Labels: RunLabelsForm{Action: "/runs/7/edit", Name: "tiny-chat · lora · 7f3a", Shown: []string{"baseline", "lr-sweep"}},
				Config: []ConfigItem{{Label: "Epochs", Value: "3"}}}))
			if got := text(doc, "run-name"); got != "tiny-chat · lora · 7f3a" {
				t.Errorf("name = %q", got)
			}
			if got := text(doc, "run-status"); got != tc.wantStatus {
				t.Errorf("header status = %q, want %q", got, tc.wantStatus)
			}
			if got := text(doc, "live-status"); got != tc.wantStatus {
				t.Errorf("panel status = %q, want %q", got, tc.wantStatus)
			}
			if got := doc.Find(testID("run-live-panel")).AttrOr("data-status", ""); got != tc.live.Status {
				t.Errorf("panel data-status = %q", got)
			}
			if got := text(doc, "live-sentence"); !strings.HasPrefix(got, tc.wantSentence) {
				t.Errorf("sentence = %q, want it to start %q", got, tc.wantSentence)
			}
			if got := text(doc, "live-progress"); got != tc.wantProgress {
				t.Errorf("progress = %q, want %q", got, tc.wantProgress)
			}
			if got := texts(doc.Selection, testID("run-tags")+" .tag"); got != "baseline,lr-sweep" {
				t.Errorf("tags = %q", got)
			}
			if !strings.Contains(text(doc, "run-announce"), tc.wantStatus) {
				t.Errorf("live region = %q", text(doc, "run-announce"))
			}
			for _, id := range tc.present {
				if count(doc, id) == 0 {
					t.Errorf("%s is missing", id)
				}
			}
			for _, id := range tc.absent {
				if n := count(doc, id); n != 0 {
					t.Errorf("%s is shown (%d)", id, n)
				}
			}
			// Each destructive action asks first, and says what it does.
			if count(doc, "cancel") > 0 && !strings.Contains(text(doc, "cancel"), "Cancel this run?") {
				t.Errorf("the cancel confirmation says %q", text(doc, "cancel"))
			}
			if !strings.Contains(text(doc, "delete"), "Delete this run?") || count(doc, "delete delete-confirm") != 1 {
				t.Errorf("the delete confirmation says %q", text(doc, "delete"))
			}
			if got := doc.Find(testID("delete")+" form").AttrOr("action", ""); got != "/runs/7/delete" {
				t.Errorf("delete posts to %q", got)
			}
			if tc.name == "failed" && !strings.Contains(text(doc, "run-reason"), "The worker stopped answering.") {
				t.Errorf("failure reason = %q", text(doc, "run-reason"))
			}
			if strings.Contains(doc.Text(), "billed") || strings.Contains(doc.Text(), "GPU time") {
				t.Error("the run page of a CPU backend speaks of billing or GPU time")
			}
		})
	}
}

func runRowFor(id, name, status, label string) RunRow {
	return RunRow{ID: id, DOMID: "run-row-" + id, URL: "/runs/" + id, Name: name, Model: "Byte MLP small", Method: "lora",
		Dataset: "tiny-chat", LearningRate: "0.003", Epochs: "2", Status: status, Label: label, GPUTime: "12 s",
		TimeLabel: "Compute time", Created: "29 Nov 2026, 11:02"}
}

func TestRunListShowsRunsAndPages(t *testing.T) {
	running := runRowFor("3", "sweep-b", "running", "Running")
	running.Percent, running.Progress, running.ETA = 40, "80 / 200 steps", "about 30 s left"
	running.Tags = []string{"sweep", "lr-3e-3"}
	l := RunList{
		HasDatasets: true, TimeLabel: "Compute time", Methods: "LoRA, DPO or full",
		Items: []RunRow{
			runRowFor("5", "queued-one", "queued", "Queued"),
			running,
			runRowFor("2", "done", "succeeded", "Succeeded"),
			runRowFor("1", "broken", "failed", "Failed"),
		},
		Live: true, LiveURL: "/runs/live?run=3%3Arunning%3A80",
		OlderURL: "/runs?before=1", NewerURL: "/runs?after=5", FirstURL: "/runs",
	}
	doc := render(t, RunsPage(l))
	rows := doc.Find(testID("run-row"))
	if rows.Length() != 4 {
		t.Fatalf("%d rows, want 4", rows.Length())
	}
	wantStatus := []string{"Queued", "Running", "Succeeded", "Failed"}
	rows.Each(func(i int, row *goquery.Selection) {
		if got := strings.TrimSpace(row.Find(testID("run-status")).Text()); got != wantStatus[i] {
			t.Errorf("row %d status %q, want %q", i, got, wantStatus[i])
		}
		if got := row.Find(testID("compare-check")).AttrOr("form", ""); got != "compare-form" {
			t.Errorf("row %d compare box belongs to form %q", i, got)
		}
		if got := row.Find(testID("run-time")).AttrOr("data-label", ""); got != "Compute time" {
			t.Errorf("row %d time cell label %q", i, got)
		}
	})
	run := doc.Find("#run-row-3")
	if got := strings.TrimSpace(run.Find(testID("run-link")).Text()); got != "sweep-b" {
		t.Errorf("run name %q", got)
	}
	if got := run.Find(testID("run-link")).AttrOr("href", ""); got != "/runs/3" {
		t.Errorf("run link %q", got)
	}
	if got := texts(run, testID("run-tags")+" .tag"); got != "sweep,lr-3e-3" {
		t.Errorf("tags %q", got)
	}
	if got := strings.Join(strings.Fields(run.Text()), " "); !strings.Contains(got, "80 / 200 steps") || !strings.Contains(got, "about 30 s left") {
		t.Errorf("running row's progress: %q", got)
	}
	if got := text(doc, "time-col"); got != "Compute time" {
		t.Errorf("time column %q", got)
	}
	for id, href := range map[string]string{"page-older": "/runs?before=1", "page-newer": "/runs?after=5"} {
		if got := doc.Find(testID(id)).AttrOr("href", ""); got != href {
			t.Errorf("%s links to %q, want %q", id, got, href)
		}
	}
	if count(doc, "compare-selected") != 1 || count(doc, "filter-form") != 1 {
		t.Error("the toolbar lacks the compare button or the filter form")
	}
	if strings.Contains(doc.Text(), "GPU time") {
		t.Error("a CPU backend's run list speaks of GPU time")
	}
}

func TestRunListEmptyStatesSayWhatToDoFirst(t *testing.T) {
	noData := render(t, RunsPage(RunList{TimeLabel: "Compute time", Methods: "LoRA, DPO or full"}))
	if got := noData.Find(testID("empty-state cta-upload")).AttrOr("href", ""); got != "/datasets" {
		t.Errorf("with no datasets the empty state links to %q, want /datasets", got)
	}
	withData := render(t, RunsPage(RunList{HasDatasets: true, TimeLabel: "Compute time", Methods: "LoRA, DPO or full"}))
	got := text(withData, "empty-state")
	if !strings.Contains(got, "(LoRA, DPO or full)") || !strings.Contains(got, "Compute time is counted per second") ||
		strings.Contains(got, "QLoRA") || strings.Contains(got, "billed") {
		t.Errorf("empty state with a dataset says %q", got)
	}
	if href := withData.Find(testID("empty-state cta-new-run")).AttrOr("href", ""); href != "/runs/new" {
		t.Errorf("first-run link %q", href)
	}
	if count(withData, "run-row") != 0 || count(withData, "pager") != 0 {
		t.Error("an empty list shows rows or a pager")
	}
}

func TestDatasetPages(t *testing.T) {
	t.Run("empty", func(t *testing.T) {
		doc := render(t, DatasetsPage(DatasetList{ChatMethods: "LoRA or full", Upload: UploadForm{MaxSize: "100 MB"},
			Samples: []SampleOption{{Format: "chat", Name: "Tiny chat", About: "40 short conversations"}}}))
		if count(doc, "empty-state") != 1 || count(doc, "upload-form") != 1 {
			t.Fatal("no empty state or no upload form")
		}
		if got := text(doc, "format-chat"); !strings.Contains(got, "LoRA or full") || strings.Contains(got, "QLoRA") {
			t.Errorf("chat format says %q", got)
		}
		if count(doc, "sample-chat") == 0 {
			t.Error("the chat sample is not offered")
		}
		if count(doc, "dataset-row") != 0 {
			t.Error("rows in an empty list")
		}
	})
	t.Run("list", func(t *testing.T) {
		doc := render(t, DatasetsPage(DatasetList{Upload: UploadForm{MaxSize: "100 MB"}, OlderURL: "/datasets?before=4",
			Items: []DatasetRow{
				{URL: "/datasets/9", Name: "support-chats", Format: "chat", Rows: "1,204", Tokens: "≈ 48.2k", Size: "1.4 MB", Created: "29 Nov 2026"},
				{URL: "/datasets/4", Name: "prefs", Format: "preference", Rows: "310", Tokens: "≈ 9.1k", Size: "220 kB", Created: "28 Nov 2026"},
			}}))
		rows := doc.Find(testID("dataset-row"))
		if rows.Length() != 2 {
			t.Fatalf("%d rows", rows.Length())
		}
		// One cell each (the format's capital comes from CSS).
		if got := texts(rows.First(), "td"); got != "support-chats,chat,1,204,≈ 48.2k,1.4 MB,29 Nov 2026" {
			t.Errorf("first row's cells: %q", got)
		}
		if got := rows.First().Find("a").AttrOr("href", ""); got != "/datasets/9" {
			t.Errorf("link %q", got)
		}
		if got := strings.TrimSpace(rows.Eq(1).Find(testID("format-badge")).Text()); got != "preference" {
			t.Errorf("second row format %q", got)
		}
		if got := doc.Find(testID("page-older")).AttrOr("href", ""); got != "/datasets?before=4" {
			t.Errorf("older link %q", got)
		}
		if count(doc, "page-newer") != 0 {
			t.Error("the first page links to newer datasets")
		}
	})
	t.Run("one dataset", func(t *testing.T) {
		doc := render(t, DatasetPage(DatasetDetail{Name: "support-chats", Format: "chat", Rows: "1,204", Tokens: "≈ 48.2k",
			Size: "1.4 MB", Created: "29 Nov 2026", Histogram: []HistogramBar{{Label: "≤ 64", Count: 800, Height: 20}},
			MaxSeqLen: 512, SeqLens: []int{256, 512}, Preview: []string{`{"messages":[]}`},
			DeleteURL: "/datasets/9/delete", NewRunURL: "/runs/new?dataset=9", BaseURL: "/datasets/9"}))
		if got := text(doc, "dataset-name"); got != "support-chats" {
			t.Errorf("name %q", got)
		}
		if got := doc.Find(testID("finetune-dataset")).AttrOr("href", ""); got != "/runs/new?dataset=9" {
			t.Errorf("fine-tune link %q", got)
		}
		confirm := doc.Find(testID("delete-dataset-confirm"))
		if !strings.Contains(confirm.Text(), "Delete this dataset?") || confirm.Find("form").AttrOr("action", "") != "/datasets/9/delete" ||
			confirm.Find(testID("delete-dataset")).Length() != 1 {
			t.Errorf("delete confirmation: %q", strings.Join(strings.Fields(confirm.Text()), " "))
		}
		if count(doc, "preview-row") != 1 || count(doc, "histogram") != 1 {
			t.Error("no preview row or histogram")
		}
	})
}

func TestDashboardAndBillingSayWhatTheBackendOffers(t *testing.T) {
	for _, tc := range []struct {
		name  string
		d     Dashboard
		want  []string
		avoid []string
	}{
		{"cpu", Dashboard{Email: "a@example.com", GPUSecondsStr: "0 s", TimeLabel: "Compute time", Methods: "LoRA, DPO or full"},
			[]string{"Compute time this period", "(LoRA, DPO or full)", "this server's CPU trains"}, []string{"GPU", "QLoRA", "pay"}},
		{"gpu", Dashboard{Email: "a@example.com", GPUSecondsStr: "0 s", TimeLabel: "GPU time", Methods: "LoRA, QLoRA, DPO or full", HasGPUs: true},
			[]string{"GPU time this period", "(LoRA, QLoRA, DPO or full)", "GPU time is counted per second"}, []string{"pay", "CPU"}},
	} {
		got := strings.Join(strings.Fields(render(t, DashboardPage(tc.d)).Text()), " ")
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s dashboard lacks %q", tc.name, w)
			}
		}
		for _, w := range tc.avoid {
			if strings.Contains(got, w) {
				t.Errorf("%s dashboard says %q", tc.name, w)
			}
		}
	}
	billing := render(t, BillingPage(Billing{UsedText: "1 min 04 s", TimeLabel: "Compute time"}))
	if got := text(billing, "billing-off"); !strings.Contains(got, "Billing is off on this server") || !strings.Contains(got, "Compute time is still metered per second") {
		t.Errorf("billing notice %q", got)
	}
	if got := text(billing, "stat-gpu"); !strings.Contains(got, "Compute time this period") || !strings.Contains(got, "1 min 04 s") {
		t.Errorf("billing figure %q", got)
	}
	if page := billing.Text(); strings.Contains(page, "GPU") {
		t.Errorf("a billing page without GPUs says GPU:\n%s", page)
	}
}

// The layout links every stylesheet, in the order given (the cascade), after uPlot's.
func TestLayoutLinksTheStylesheetsInOrder(t *testing.T) {
	css := []string{"/static/css/app/01-tokens.a.css", "/static/css/app/02-base.b.css", "/static/css/app/20-runs.c.css"}
	doc := render(t, Layout(Page{Charts: true, Assets: Assets{CSS: css, UPlotCSS: "/static/css/uPlot.min.d.css"}}))
	var got []string
	doc.Find(`head link[rel=stylesheet]`).Each(func(_ int, s *goquery.Selection) { got = append(got, s.AttrOr("href", "")) })
	want := append([]string{"/static/css/uPlot.min.d.css"}, css...)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("stylesheets linked %v, want %v", got, want)
	}
}

package handlers

import (
	"bytes"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
)

func completionLines(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `{"prompt":"Say %d","completion":" number %d"}`+"\n", i, i)
	}
	return b.String()
}

// upload posts a multipart form as a browser does: the optional name, then the file.
func (ts *testServer) upload(c *http.Client, name, filename, content string) response {
	ts.t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	if name != "" {
		mw.WriteField("name", name)
	}
	if filename != "" {
		fw, _ := mw.CreateFormFile("file", filename)
		fw.Write([]byte(content))
	}
	mw.Close()
	req, _ := http.NewRequest("POST", ts.URL+"/datasets", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := c.Do(req)
	if err != nil {
		ts.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out bytes.Buffer
	out.ReadFrom(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: out.String()}
}

func (ts *testServer) vaultFiles() int {
	entries, _ := os.ReadDir(ts.vaultDir)
	return len(entries)
}

var datasetURL = regexp.MustCompile(`^/datasets/\d+$`)

func TestUploadDatasetShowsStatsAndPreview(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.signUp("data@example.com")
	r := ts.upload(c, "", `C:\Users\ada\my dataset.jsonl`, "\xef\xbb\xbf"+strings.ReplaceAll(completionLines(12), "\n", "\r\n"))
	loc := r.header.Get("Location")
	if r.status != http.StatusSeeOther || !datasetURL.MatchString(loc) {
		t.Fatalf("upload: %d %q\n%s", r.status, loc, r.body)
	}
	page := ts.do(c, "GET", loc, nil, nil)
	for _, want := range []string{`data-testid="dataset"`, "my dataset", "completion", ">12<", `data-testid="histogram"`, `data-testid="preview-row"`, "Say 0", `data-testid="share-over"`, "0.0 % of rows are longer than 512 tokens"} {
		if !strings.Contains(page.body, want) {
			t.Errorf("dataset page lacks %q", want)
		}
	}
	if r := ts.do(c, "GET", loc+"?max_seq_len=256", nil, nil); r.status != 200 || !strings.Contains(r.body, "longer than 256 tokens") {
		t.Fatalf("max_seq_len=256: %d", r.status)
	}
	if r := ts.do(c, "GET", loc+"?max_seq_len=300", nil, nil); r.status != http.StatusBadRequest || !strings.Contains(r.body, "256, 512, 1024, 2048, 4096") {
		t.Fatalf("max_seq_len=300: %d", r.status)
	}
	list := ts.do(c, "GET", "/datasets", nil, nil)
	if !strings.Contains(list.body, `data-testid="dataset-row"`) || !strings.Contains(list.body, `href="`+loc+`"`) {
		t.Fatal("the list does not show the dataset")
	}
	if dash := ts.do(c, "GET", "/", nil, nil); strings.Contains(dash.body, `data-testid="empty-state"`) {
		t.Fatal("the dashboard still shows the first-run empty state")
	}
}

func TestUploadDatasetRefusalsSaveNothing(t *testing.T) {
	ts := newTestServer(t, Config{MaxUploadBytes: 2000})
	c := ts.signUp("bad@example.com")
	bad := completionLines(3) + `{"prompt":"x","completion":5}` + "\n" + `{"messages":"nope"}` + "\n" + completionLines(8)
	cases := []struct {
		name     string
		filename string
		content  string
		status   int
		want     []string
	}{
		{"invalid lines", "bad.jsonl", bad, 422, []string{`data-testid="upload-problem"`, "line 4: `completion` is a number; it must be a string.", "line 5:", "nothing was saved"}},
		{"too few rows", "few.jsonl", completionLines(2), 422, []string{"the file has 2 rows; at least 10 are needed"}},
		{"no file", "", "", 422, []string{`data-testid="file-error"`, "Choose a JSONL file"}},
		{"too large", "big.jsonl", completionLines(100), 413, []string{`data-testid="file-error"`, "larger than the 2 kB limit"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := ts.upload(c, "kept name", tc.filename, tc.content)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d\n%s", r.status, tc.status, r.body)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.body, w) {
					t.Errorf("answer lacks %q", w)
				}
			}
			if !strings.Contains(r.body, `value="kept name"`) && tc.filename != "" {
				t.Error("the form lost the typed name")
			}
		})
	}
	if n := ts.vaultFiles(); n != 0 {
		t.Fatalf("refused uploads left %d files", n)
	}
	if list := ts.do(c, "GET", "/datasets", nil, nil); strings.Contains(list.body, `data-testid="dataset-row"`) {
		t.Fatal("a refused upload is listed")
	}
}

func TestDatasetsAreOnlyTheOwners(t *testing.T) {
	ts := newTestServer(t, Config{})
	ada := ts.signUp("ada@example.com")
	eve := ts.signUp("eve@example.com")
	r := ts.do(ada, "POST", "/datasets/samples", url.Values{"format": {"preference"}}, nil)
	loc := r.header.Get("Location")
	if r.status != http.StatusSeeOther || !datasetURL.MatchString(loc) {
		t.Fatalf("sample: %d %q", r.status, loc)
	}
	if page := ts.do(ada, "GET", loc, nil, nil); !strings.Contains(page.body, "preference") || !strings.Contains(page.body, "Helpful support replies") {
		t.Fatal("the sample dataset page is wrong")
	}
	for _, tc := range []struct{ method, path string }{{"GET", loc}, {"POST", loc + "/delete"}, {"GET", "/datasets/999999"}, {"GET", "/datasets/abc"}} {
		if r := ts.do(eve, tc.method, tc.path, nil, nil); r.status != http.StatusNotFound {
			t.Errorf("%s %s as another user: %d, want 404", tc.method, tc.path, r.status)
		}
	}
	if list := ts.do(eve, "GET", "/datasets", nil, nil); strings.Contains(list.body, `data-testid="dataset-row"`) {
		t.Fatal("another user's dataset is listed")
	}
	if r := ts.do(ada, "POST", "/datasets/samples", url.Values{"format": {"poetry"}}, nil); r.status != http.StatusBadRequest {
		t.Fatalf("unknown sample: %d", r.status)
	}
	if r := ts.do(ada, "POST", loc+"/delete", nil, nil); r.status != http.StatusSeeOther || r.header.Get("Location") != "/datasets" {
		t.Fatalf("delete: %d", r.status)
	}
	if r := ts.do(ada, "GET", loc, nil, nil); r.status != http.StatusNotFound {
		t.Fatalf("deleted dataset: %d, want 404", r.status)
	}
	if r := ts.do(ts.client(), "POST", "/datasets/samples", url.Values{"format": {"chat"}}, nil); r.status != http.StatusSeeOther || r.header.Get("Location") != "/signin" {
		t.Fatalf("signed out: %d %q", r.status, r.header.Get("Location"))
	}
}

// Deleting a dataset asks first, as deleting a run does: the delete button sits inside a
// confirmation that must be opened (a <details>, so it works without JavaScript).
func TestDatasetDeleteAsksFirst(t *testing.T) {
	ts := newTestServer(t, Config{})
	c := ts.signUp("confirm@example.com")
	id := ts.datasetFor(c, completionLines(20))
	page := ts.do(c, "GET", "/datasets/"+id, nil, nil)
	confirm := regexp.MustCompile(`(?s)<details class="confirm"[^>]*data-testid="delete-dataset-confirm"[^>]*>\s*<summary[^>]*>Delete…</summary>.*?action="/datasets/` + id + `/delete".*?data-testid="delete-dataset".*?</details>`)
	if page.status != 200 || !confirm.MatchString(page.body) {
		t.Fatalf("the dataset page deletes without a confirmation:\n%s", page.body)
	}
	if strings.Count(page.body, `/datasets/`+id+`/delete"`) != 1 {
		t.Fatal("a second delete form outside the confirmation")
	}
	run := ts.do(c, "GET", fmt.Sprintf("/runs/%d", ts.startRun(c, runValues(id))), nil, nil)
	if !regexp.MustCompile(`(?s)<details class="confirm" id="run-delete"[^>]*>.*?data-testid="delete-confirm"`).MatchString(run.body) {
		t.Fatal("the run page's delete confirmation changed shape")
	}
}

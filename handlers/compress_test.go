package handlers

import (
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestPagesAreGzippedButStreamsAndPostsAreNot(t *testing.T) {
	ts, c, run, _, _, _ := workerSetup(t)
	get := func(path string) *http.Response {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		t.Cleanup(cancel)
		req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+path, nil)
		req.Header.Set("Accept-Encoding", "gzip")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	page := get(fmt.Sprintf("/runs/%d", run))
	if page.Header.Get("Content-Encoding") != "gzip" || !strings.Contains(page.Header.Get("Vary"), "Accept-Encoding") {
		t.Fatalf("run page headers: %v", page.Header)
	}
	zr, err := gzip.NewReader(page.Body)
	if err != nil {
		t.Fatal(err)
	}
	html, _ := io.ReadAll(zr)
	if !strings.Contains(string(html), "run-metrics-data") {
		t.Fatal("the gzipped page does not decode to the run page")
	}
	if csv := get(fmt.Sprintf("/runs/%d/metrics.csv", run)); csv.Header.Get("Content-Encoding") != "gzip" {
		t.Error("the CSV export is not compressed")
	}
	if ev := get(fmt.Sprintf("/runs/%d/events", run)); ev.Header.Get("Content-Encoding") != "" || ev.Header.Get("Content-Type") != "text/event-stream" {
		t.Errorf("the event stream was compressed: %v", ev.Header)
	}
	if st := get("/static/css/uPlot.min.css"); st.Header.Get("Content-Encoding") != "" {
		t.Error("a static file was compressed")
	}
	r := ts.do(c, "POST", fmt.Sprintf("/runs/%d/api/token", run), url.Values{}, map[string]string{"Accept-Encoding": "gzip"})
	if r.header.Get("Content-Encoding") != "" {
		t.Errorf("the token POST's answer was compressed: %v", r.header)
	}
	r = ts.do(c, "GET", fmt.Sprintf("/runs/%d/api", run), nil, map[string]string{"Accept-Encoding": "gzip"})
	if r.header.Get("Content-Encoding") != "" || !strings.Contains(r.body, "ingest-token") || r.header.Get(noCompressHeader) != "" {
		t.Errorf("the page showing the new token was compressed: %v", r.header)
	}
}

package static

import (
	"bytes"
	"compress/gzip"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// embeddedNames lists every file compiled into the package.
func embeddedNames(t *testing.T) []string {
	t.Helper()
	var names []string
	err := fs.WalkDir(files, ".", func(name string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			names = append(names, name)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func TestEveryEmbeddedFileServesAtItsHashedPath(t *testing.T) {
	names := embeddedNames(t)
	for _, want := range []string{"css/app.css", "css/uPlot.min.css", "js/app.js", "js/htmx.min.js",
		"js/ext/hx-sse.min.js", "js/uPlot.iife.min.js", "licenses/htmx.txt", "licenses/uplot.txt"} {
		found := false
		for _, n := range names {
			found = found || n == want
		}
		if !found {
			t.Errorf("%s is not embedded", want)
		}
	}

	h := Handler()
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			url := Path(name)
			data, _ := files.ReadFile(name)
			if !strings.HasPrefix(url, "/static/") || !strings.Contains(url, "."+hashOf(data)+".") {
				t.Fatalf("Path(%q) = %q, want /static/ and the content hash", name, url)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, url, nil))
			if rec.Code != http.StatusOK {
				t.Fatalf("GET %s = %d, want 200", url, rec.Code)
			}
			if got := rec.Header().Get("Cache-Control"); got != "public, max-age=31536000, immutable" {
				t.Errorf("Cache-Control = %q", got)
			}
			if got := rec.Header().Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options = %q", got)
			}
			if rec.Body.String() != string(data) {
				t.Errorf("body differs from the embedded file")
			}
		})
	}
}

func TestContentTypes(t *testing.T) {
	h := Handler()
	for name, want := range map[string]string{
		"css/app.css":       "text/css; charset=utf-8",
		"js/app.js":         "text/javascript; charset=utf-8",
		"licenses/htmx.txt": "text/plain; charset=utf-8",
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, Path(name), nil))
		if got := rec.Header().Get("Content-Type"); got != want {
			t.Errorf("%s: Content-Type = %q, want %q", name, got, want)
		}
	}
}

func TestUnknownPathsAre404(t *testing.T) {
	h := Handler()
	good := Path("js/htmx.min.js")
	tests := []struct{ name, path string }{
		{"unhashed", "/static/js/htmx.min.js"},
		{"wrong hash", "/static/js/htmx.min.000000000000.js"},
		{"hash of another file", strings.Replace(good, "htmx.min", "app", 1)},
		{"missing file", "/static/js/nope.0123456789ab.js"},
		{"directory", "/static/js/"},
		{"without prefix", strings.TrimPrefix(good, "/static")},
		{"traversal", "/static/../static.go"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			req.URL.Path = tt.path
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusNotFound {
				t.Errorf("GET %s = %d, want 404", tt.path, rec.Code)
			}
		})
	}
}

func TestConditionalAndRangeRequests(t *testing.T) {
	h := Handler()
	url := Path("css/app.css")

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, url, nil))
	etag := rec.Header().Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}

	req := httptest.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("If-None-Match", etag)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusNotModified {
		t.Errorf("If-None-Match: got %d, want 304", rec.Code)
	}

	req = httptest.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Range", "bytes=0-3")
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusPartialContent || rec.Body.Len() != 4 {
		t.Errorf("Range: got %d with %d bytes, want 206 with 4", rec.Code, rec.Body.Len())
	}

	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, url, nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: got %d, want 405", rec.Code)
	}
}

func TestHashChangesWithContent(t *testing.T) {
	a, b := hashOf([]byte("body{color:red}")), hashOf([]byte("body{color:blue}"))
	if len(a) != 12 || len(b) != 12 {
		t.Fatalf("hash lengths %d, %d, want 12", len(a), len(b))
	}
	if a == b {
		t.Errorf("different content, same hash %s", a)
	}
	if a != hashOf([]byte("body{color:red}")) {
		t.Errorf("hash is not deterministic")
	}
	if got := hashedName("js/htmx.min.js", "abc"); got != "js/htmx.min.abc.js" {
		t.Errorf("hashedName = %q", got)
	}
}

func TestPathPanicsOnUnknownName(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("Path of an unknown file did not panic")
		}
	}()
	Path("js/does-not-exist.js")
}

// Text assets go out gzipped (made once at start-up) to browsers that accept it, with
// Vary: Accept-Encoding, still at their hashed, immutable URLs; others get the plain bytes.
func TestStaticFilesArePrecompressed(t *testing.T) {
	h := Handler()
	get := func(name, acceptEncoding string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, Path(name), nil)
		if acceptEncoding != "" {
			req.Header.Set("Accept-Encoding", acceptEncoding)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	total, sent := 0, 0
	for _, name := range []string{"css/app.css", "js/app.js", "js/htmx.min.js", "js/run-chart.js", "js/uPlot.iife.min.js", "css/uPlot.min.css", "js/ext/hx-sse.min.js"} {
		plain, _ := files.ReadFile(name)
		rec := get(name, "gzip, deflate, br, zstd")
		if rec.Code != 200 || rec.Header().Get("Content-Encoding") != "gzip" || !strings.Contains(rec.Header().Get("Vary"), "Accept-Encoding") {
			t.Fatalf("%s: %d %v", name, rec.Code, rec.Header())
		}
		if rec.Header().Get("Cache-Control") != "public, max-age=31536000, immutable" {
			t.Errorf("%s: Cache-Control = %q", name, rec.Header().Get("Cache-Control"))
		}
		zr, err := gzip.NewReader(bytes.NewReader(rec.Body.Bytes()))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		body, _ := io.ReadAll(zr)
		if !bytes.Equal(body, plain) {
			t.Fatalf("%s: the gzipped body does not decode to the file", name)
		}
		total, sent = total+len(plain), sent+rec.Body.Len()
		if rec.Header().Get("ETag") == get(name, "").Header().Get("ETag") {
			t.Errorf("%s: the gzipped and plain bodies share an ETag", name)
		}
		for _, ae := range []string{"", "identity", "gzip;q=0", "br"} {
			if r := get(name, ae); r.Header().Get("Content-Encoding") != "" || r.Body.String() != string(plain) || !strings.Contains(r.Header().Get("Vary"), "Accept-Encoding") {
				t.Errorf("%s with Accept-Encoding %q: %v", name, ae, r.Header())
			}
		}
	}
	t.Logf("run page assets: %d bytes, %d gzipped", total, sent)
	if sent*2 > total {
		t.Errorf("gzip saves too little: %d of %d bytes", sent, total)
	}
	if r := get("img/favicon.svg", "gzip"); r.Code != 200 {
		t.Errorf("favicon: %d", r.Code)
	}
}

package static

import (
	"bytes"
	"compress/gzip"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
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
	for _, want := range []string{"css/app/01-tokens.css", "css/app/20-runs-list-scale.css", "css/uPlot.min.css", "js/app.js", "js/htmx.min.js",
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
			data, _ := newLinker(files).read(name) // modules as served, imports rewritten
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
		"css/app/04-components.css": "text/css; charset=utf-8",
		"js/app.js":                 "text/javascript; charset=utf-8",
		"licenses/htmx.txt":         "text/plain; charset=utf-8",
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
	url := Path("css/app/04-components.css")

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

// anySpecifier finds every module specifier the browser would fetch, relative or not:
// `from "x"`, `import "x"` and `import("x")`, in either quotes. It is deliberately wider
// than the linker's own scan, so a specifier the linker skipped is caught here.
var anySpecifier = regexp.MustCompile(`(?:^|[^\w$.])(?:from\s*|import\s*\(?\s*)(?:"([^"\n]*)"|'([^'\n]*)')`)

func TestModuleImportsResolveToServedHashedURLs(t *testing.T) {
	load()
	h := Handler()
	imports := 0
	for _, name := range embeddedNames(t) {
		if path.Ext(name) != ".js" {
			continue
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, Path(name), nil))
		body := rec.Body.Bytes()
		for _, m := range anySpecifier.FindAllSubmatch(body, -1) {
			spec := string(m[1])
			if m[2] != nil {
				spec = string(m[2])
			}
			imports++
			dep, ok := byURL[spec]
			if !ok {
				t.Errorf("%s imports %q: not a hashed URL this package serves", name, spec)
				continue
			}
			if Path(dep.name) != spec {
				t.Errorf("%s imports %q, want Path(%q) = %q", name, spec, dep.name, Path(dep.name))
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, spec, nil))
			if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/javascript") {
				t.Errorf("%s imports %s: GET = %d %q, want 200 text/javascript", name, spec, rec.Code, rec.Header().Get("Content-Type"))
			}
		}
	}
	// The charts are modules: the entry imports its parts, and they import each other.
	if imports < 10 {
		t.Errorf("found %d module imports in the served scripts, want the chart modules' (10 or more)", imports)
	}
	entry := string(byName["js/run-chart.js"].data)
	if !strings.Contains(entry, `from "`+Path("js/chart/pages.js")+`"`) {
		t.Errorf("js/run-chart.js does not import %s", Path("js/chart/pages.js"))
	}
}

func TestLinkerRewritesImportsDependenciesFirst(t *testing.T) {
	fsys := fstest.MapFS{
		"js/main.js":      {Data: []byte("import { b } from \"./lib/b.js\";\nimport './side.js';\nexport { c } from \"./lib/c.js\";\nconst later = () => import(\"./lib/c.js\");\nimport uPlot from \"uplot\";\nimport x from \"/elsewhere/x.js\";\nArray.from('./not-an-import');\n")},
		"js/side.js":      {Data: []byte("window.side = 1;\n")},
		"js/lib/b.js":     {Data: []byte("import{c}from\"../lib/c.js\";export const b = c + 1;\n")},
		"js/lib/c.js":     {Data: []byte("export const c = 1;\n")},
		"css/a.css":       {Data: []byte(`@import "./b.css";`)},
		"css/b.css":       {Data: []byte("body{}")},
		"js/cycle/a.js":   {Data: []byte(`import "./b.js";`)},
		"js/cycle/b.js":   {Data: []byte(`import "./a.js";`)},
		"js/missing.js":   {Data: []byte(`import "./nope.js";`)},
		"js/outside.js":   {Data: []byte(`import "../../etc/passwd.js";`)},
		"js/directory.js": {Data: []byte(`import "./lib";`)},
	}
	urlOf := func(l *linker, name string) string {
		data, err := l.read(name)
		if err != nil {
			t.Fatalf("read %s: %v", name, err)
		}
		return prefix + hashedName(name, hashOf(data))
	}

	l := newLinker(fsys)
	main, err := l.read("js/main.js")
	if err != nil {
		t.Fatal(err)
	}
	b, c, side := urlOf(l, "js/lib/b.js"), urlOf(l, "js/lib/c.js"), urlOf(l, "js/side.js")
	want := "import { b } from \"" + b + "\";\nimport '" + side + "';\nexport { c } from \"" + c + "\";\nconst later = () => import(\"" + c + "\");\nimport uPlot from \"uplot\";\nimport x from \"/elsewhere/x.js\";\nArray.from('./not-an-import');\n"
	if string(main) != want {
		t.Errorf("js/main.js linked as\n%s\nwant\n%s", main, want)
	}
	if got, _ := l.read("js/lib/b.js"); string(got) != "import{c}from\""+c+"\";export const b = c + 1;\n" {
		t.Errorf("js/lib/b.js linked as %q", got)
	}
	if got, _ := l.read("css/a.css"); string(got) != `@import "./b.css";` {
		t.Errorf("css/a.css changed: %q; only .js files are modules", got)
	}

	// A change deep in the graph changes the URL of every module above it, and only those.
	before := map[string]string{}
	for _, n := range []string{"js/main.js", "js/lib/b.js", "js/lib/c.js", "js/side.js"} {
		before[n] = urlOf(l, n)
	}
	fsys["js/lib/c.js"] = &fstest.MapFile{Data: []byte("export const c = 2;\n")}
	l = newLinker(fsys)
	for n, changed := range map[string]bool{"js/main.js": true, "js/lib/b.js": true, "js/lib/c.js": true, "js/side.js": false} {
		if got := urlOf(l, n) != before[n]; got != changed {
			t.Errorf("%s: URL changed = %v after js/lib/c.js changed, want %v", n, got, changed)
		}
	}

	for name, wantErr := range map[string]string{
		"js/cycle/a.js":   "import cycle",
		"js/missing.js":   `"./nope.js"`,
		"js/outside.js":   "outside the embedded files",
		"js/directory.js": `"./lib"`,
	} {
		if _, err := newLinker(fsys).read(name); err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("read %s: error %v, want one mentioning %s", name, err, wantErr)
		}
	}
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
	for _, name := range []string{"css/app/04-components.css", "js/app.js", "js/htmx.min.js", "js/run-chart.js", "js/uPlot.iife.min.js", "css/uPlot.min.css", "js/ext/hx-sse.min.js"} {
		load()
		plain := byName[name].data // as served: module imports already point at hashed URLs
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

// The app's stylesheets: every css/app file, in file-name order (the cascade), each served
// gzipped at its hashed URL, and none pulling in another with @import (that URL would be
// unhashed, which Handler does not serve).
func TestStylesheetsAreEveryAreaFileInOrder(t *testing.T) {
	entries, err := fs.ReadDir(files, stylesheetDir)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, e := range entries {
		want = append(want, Path(stylesheetDir+"/"+e.Name()))
	}
	got := Stylesheets()
	if len(got) < 10 || !slices.Equal(got, want) {
		t.Fatalf("Stylesheets() = %v, want every file of %s in name order: %v", got, stylesheetDir, want)
	}
	if !slices.IsSorted(got) {
		t.Errorf("stylesheets out of file-name order: %v", got)
	}
	h := Handler()
	for i, url := range got {
		name := entries[i].Name()
		if !regexp.MustCompile(`^\d\d-[a-z-]+\.css$`).MatchString(name) {
			t.Errorf("%s: name it NN-area.css, so its place in the order shows", name)
		}
		req := httptest.NewRequest(http.MethodGet, url, nil)
		req.Header.Set("Accept-Encoding", "gzip")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 || rec.Header().Get("Content-Encoding") != "gzip" ||
			!strings.Contains(rec.Header().Get("Cache-Control"), "immutable") {
			t.Errorf("GET %s: %d, encoding %q, cache %q", url, rec.Code, rec.Header().Get("Content-Encoding"), rec.Header().Get("Cache-Control"))
		}
		data, _ := fs.ReadFile(files, stylesheetDir+"/"+name)
		if regexp.MustCompile(`(?im)^\s*@(import|charset)\b`).Match(data) {
			t.Errorf("%s uses @import or @charset; link each file from the layout instead", name)
		}
	}
}

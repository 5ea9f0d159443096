// Package static embeds tunelab's CSS, JavaScript, images (the favicon) and third-party licences and serves them
// under content-hashed URLs, so every response can be cached forever ("immutable"): a changed
// file gets a new URL, never a stale copy.
//
// Text files (CSS, JavaScript, SVG, licences) are also gzipped once, at start-up, with the
// best compression; a browser that accepts gzip gets those bytes (same URL, Vary:
// Accept-Encoding), so nothing is compressed per request.
//
// Templates ask for a URL with Path("js/htmx.min.js"), and for the app's stylesheets, one
// file per area, with Stylesheets(); the router mounts Handler() at "/static/".
package static

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"
)

//go:embed css img js licenses
var files embed.FS

// prefix is where the router mounts Handler; Path returns URLs under it.
const prefix = "/static/"

// hashLen is how many hex characters of the SHA-256 go into a URL.
const hashLen = 12

// contentTypes is fixed here rather than read from the host's mime.types, so every machine
// serves the same headers.
var contentTypes = map[string]string{
	".css": "text/css; charset=utf-8",
	".js":  "text/javascript; charset=utf-8",
	".txt": "text/plain; charset=utf-8",
	".svg": "image/svg+xml",
	".png": "image/png",
	".ico": "image/x-icon",
}

// asset is one embedded file with its hashed URL.
type asset struct {
	name        string // path inside the embed FS, e.g. "js/htmx.min.js"
	url         string // e.g. "/static/js/htmx.min.1a2b3c4d5e6f.js"
	hash        string
	contentType string
	data        []byte
	gz          []byte // the gzipped data, or nil when gzip would not make it smaller
}

// compressedTypes are the extensions worth gzipping (images such as PNG already are).
var compressedTypes = map[string]bool{".css": true, ".js": true, ".txt": true, ".svg": true}

// gzipped compresses data with the best compression, or returns nil when that saves nothing.
func gzipped(data []byte) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zw.Write(data)
	zw.Close()
	if buf.Len() >= len(data) {
		return nil
	}
	return buf.Bytes()
}

var (
	loadOnce    sync.Once
	byName      map[string]*asset // "js/htmx.min.js" -> asset
	byURL       map[string]*asset // "/static/js/htmx.min.<hash>.js" -> asset
	stylesheets []string          // hashed URLs of css/app/*.css, in file-name order
)

// load reads and hashes every embedded file, once, on first use.
func load() {
	loadOnce.Do(func() {
		byName = make(map[string]*asset)
		byURL = make(map[string]*asset)
		modules := newLinker(files) // ES modules import each other by hashed URL (modules.go)
		err := fs.WalkDir(files, ".", func(name string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			data, err := modules.read(name)
			if err != nil {
				return err
			}
			a := &asset{name: name, hash: hashOf(data), data: data}
			a.url = prefix + hashedName(name, a.hash)
			a.contentType = contentTypes[path.Ext(name)]
			if compressedTypes[path.Ext(name)] {
				a.gz = gzipped(data)
			}
			if a.contentType == "" {
				a.contentType = "application/octet-stream"
			}
			byName[name] = a
			byURL[a.url] = a
			return nil
		})
		if err != nil {
			// The files are compiled into the binary; failing to read them is a build bug.
			panic(fmt.Sprintf("static: read embedded files: %v", err))
		}
		entries, err := fs.ReadDir(files, stylesheetDir) // sorted by file name
		if err != nil {
			panic(fmt.Sprintf("static: read %s: %v", stylesheetDir, err))
		}
		for _, e := range entries {
			if !e.IsDir() && path.Ext(e.Name()) == ".css" {
				stylesheets = append(stylesheets, byName[stylesheetDir+"/"+e.Name()].url)
			}
		}
	})
}

// hashOf is the content hash used in URLs: the first 12 hex characters of the SHA-256.
func hashOf(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])[:hashLen]
}

// hashedName inserts the hash before the final extension: "js/app.js" -> "js/app.<hash>.js".
func hashedName(name, hash string) string {
	ext := path.Ext(name)
	return strings.TrimSuffix(name, ext) + "." + hash + ext
}

// Path returns the cache-busted URL of an embedded file, for example
// Path("js/htmx.min.js") == "/static/js/htmx.min.<hash>.js". It panics on a name that is not
// embedded: that is a typo in a template or handler, and tests render every page.
func Path(name string) string {
	load()
	a, ok := byName[name]
	if !ok {
		panic(fmt.Sprintf("static: no embedded file %q", name))
	}
	return a.url
}

// stylesheetDir holds the app's stylesheets, one file per area, named with a two-digit
// prefix ("01-tokens.css") that fixes their order.
const stylesheetDir = "css/app"

// Stylesheets returns the hashed URLs of the app's stylesheets in the order a page must link
// them: by file name, which is the cascade order (a later file wins a tie). Several <link>
// tags rather than @import: each file is fetched in parallel and cached on its own, and a
// change to one area changes one URL.
func Stylesheets() []string {
	load()
	return stylesheets
}

// Handler serves the embedded files at their hashed URLs only (it expects the full request
// path, "/static/..."). Any other path, including the plain unhashed name or an old hash, is
// a 404, so a cached page can never pair new HTML with an old script under the same URL.
func Handler() http.Handler {
	load()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, ok := byURL[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("Content-Type", a.contentType)
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
		h.Set("X-Content-Type-Options", "nosniff")
		// Embedded files carry no modification time, so the strong ETag (the content hash)
		// is what makes conditional requests (If-None-Match) answer 304; ServeContent also
		// handles Range and HEAD.
		data, etag := a.data, `"`+a.hash+`"`
		if a.gz != nil {
			h.Add("Vary", "Accept-Encoding")
			if acceptsGzip(r.Header.Get("Accept-Encoding")) {
				// Another representation, so another ETag; Range applies to these bytes.
				data, etag = a.gz, `"`+a.hash+`-gz"`
				h.Set("Content-Encoding", "gzip")
			}
		}
		h.Set("ETag", etag)
		http.ServeContent(w, r, a.name, time.Time{}, bytes.NewReader(data))
	})
}

// acceptsGzip reads an Accept-Encoding header: gzip (or *) listed with a q above 0.
func acceptsGzip(header string) bool {
	for _, part := range strings.Split(header, ",") {
		name, params, _ := strings.Cut(part, ";")
		name = strings.ToLower(strings.TrimSpace(name))
		if name != "gzip" && name != "x-gzip" && name != "*" {
			continue
		}
		q := 1.0
		if v, ok := strings.CutPrefix(strings.ReplaceAll(strings.ToLower(params), " ", ""), "q="); ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				q = f
			}
		}
		if q > 0 {
			return true
		}
		if name != "*" {
			return false // gzip;q=0 refuses it, whatever * says
		}
	}
	return false
}

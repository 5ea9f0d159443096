package static

// ES modules under hashed URLs.
//
// A module names its dependencies itself (import { x } from "./chart/format.js"), and the
// browser resolves that against the importer's own URL, so a plain relative specifier would
// ask for /static/js/chart/format.js, which Handler does not serve (only hashed URLs are,
// each cached forever). Of the two ways to close that gap, an import map in every page's
// head (plain path -> hashed URL) or rewriting the specifiers here, this package rewrites
// them, because:
//   - the URLs stay content-addressed through the whole module graph: a module is hashed
//     after its specifiers are rewritten, dependencies first, so a change to a dependency
//     changes its URL, the text of every importer, and so every importer's URL too. A cached
//     module can never be paired with a newer or older dependency;
//   - pages need nothing new: the layout loads one <script type="module"> by Path, as it
//     loads any script. An import map would be another inline script on every page, under
//     the nonce, with the views carrying a map of every module, and it must be in place
//     before the document's first module loads (a page swapped in by htmx later cannot
//     bring its own);
//   - the module files keep plain relative imports, readable and checkable as they are.
//
// The scan does not parse JavaScript: it takes every quoted relative specifier ("./" or
// "../", single or double quotes) after `from` or `import` (import "./x.js",
// import("./x.js"), import ... from, export ... from). Bare and absolute specifiers are
// left alone. A specifier that names no embedded file, leaves the embedded tree, or an
// import cycle (a content hash cannot cover a cycle) is an error: the files are compiled
// in, so that is a build bug, and load panics on it.

import (
	"bytes"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"strings"
)

// importSpec finds a relative module specifier after `from` or `import` (or `import(`),
// words that no identifier character or dot precedes (not Array.from): group 1 is the
// specifier in double quotes, group 2 in single.
var importSpec = regexp.MustCompile(`(?m)(?:^|[^\w$.])(?:from\s*|import\s*\(?\s*)(?:"(\.\.?/[^"\n]*)"|'(\.\.?/[^'\n]*)')`)

// linker reads embedded files, rewriting the relative import specifiers of .js files to
// the hashed URLs of the files they name. Each file is linked once; read returns the same
// bytes every time, and those are the bytes that load hashes and serves.
type linker struct {
	fsys   fs.FS
	linked map[string][]byte // name -> content as served
	onPath map[string]bool   // names being linked on the current import chain
}

func newLinker(fsys fs.FS) *linker {
	return &linker{fsys: fsys, linked: make(map[string][]byte), onPath: make(map[string]bool)}
}

// read returns a file's content as served: a .js file with its relative imports pointing
// at hashed URLs, any other file as it is embedded.
func (l *linker) read(name string) ([]byte, error) {
	if data, ok := l.linked[name]; ok {
		return data, nil
	}
	data, err := fs.ReadFile(l.fsys, name)
	if err != nil {
		return nil, err
	}
	if path.Ext(name) == ".js" {
		if l.onPath[name] {
			return nil, fmt.Errorf("static: import cycle through %s", name)
		}
		l.onPath[name] = true
		data, err = l.rewriteImports(name, data)
		delete(l.onPath, name)
		if err != nil {
			return nil, err
		}
	}
	l.linked[name] = data
	return data, nil
}

// rewriteImports replaces each relative specifier in a module with its target's hashed
// URL, linking the target first.
func (l *linker) rewriteImports(name string, data []byte) ([]byte, error) {
	matches := importSpec.FindAllSubmatchIndex(data, -1)
	if matches == nil {
		return data, nil
	}
	var out bytes.Buffer
	last := 0
	for _, m := range matches {
		start, end := m[2], m[3] // the double-quoted specifier
		if start < 0 {
			start, end = m[4], m[5] // the single-quoted one
		}
		spec := string(data[start:end])
		dep := path.Join(path.Dir(name), spec)
		if dep == ".." || strings.HasPrefix(dep, "../") {
			return nil, fmt.Errorf("static: %s imports %q, outside the embedded files", name, spec)
		}
		depData, err := l.read(dep)
		if err != nil {
			return nil, fmt.Errorf("static: %s imports %q: %w", name, spec, err)
		}
		out.Write(data[last:start])
		out.WriteString(prefix + hashedName(dep, hashOf(depData)))
		last = end
	}
	out.Write(data[last:])
	return out.Bytes(), nil
}

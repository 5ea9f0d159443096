package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// The packages' imports point one way (DESIGN.md): main -> handlers -> {views, gpu, billing, store},
// gpu, billing -> store, views and store import nothing of ours, and the trainer is a leaf that
// shares its wire types (trainer/protocol) with the server; handlers import the trainer
// itself only for the playground, which generates in-process from a built-in snapshot. Test files may import
// more; this checks what the binary is built from.
func TestImportsPointOneWay(t *testing.T) {
	allowed := map[string][]string{
		"tunelab":                    {"tunelab/handlers", "tunelab/gpu", "tunelab/billing", "tunelab/store", "tunelab/trainer", "tunelab/geoip"},
		"tunelab/handlers":           {"tunelab/views", "tunelab/views/components", "tunelab/static", "tunelab/gpu", "tunelab/billing", "tunelab/store", "tunelab/trainer", "tunelab/trainer/protocol", "tunelab/geoip"},
		"tunelab/geoip":              {}, // a leaf: IP to country from a local mmdb
		"tunelab/geoip/geoiptest":    {}, // tests only: writes small mmdbs
		"tunelab/billing":            {"tunelab/store"},
		"tunelab/billing/stripemock": {},
		"tunelab/views":              {"tunelab/views/components"},
		"tunelab/views/components":   {},
		"tunelab/static":             {},
		"tunelab/gpu":                {"tunelab/store"},
		"tunelab/store":              {},
		"tunelab/store/storetest":    {"tunelab/store"},
		"tunelab/trainer":            {"tunelab/trainer/protocol"},
		"tunelab/trainer/protocol":   {},
	}
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, "./...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	seen := 0
	for line := range strings.Lines(string(out)) {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		pkg := fields[0]
		ok, known := allowed[pkg]
		if !known {
			t.Errorf("package %s is not in this test's table: add it with the imports DESIGN.md allows it", pkg)
			continue
		}
		seen++
		for _, imp := range fields[1:] {
			if (imp == "tunelab" || strings.HasPrefix(imp, "tunelab/")) && !slices.Contains(ok, imp) {
				t.Errorf("%s imports %s; it may import only %v of ours", pkg, imp, ok)
			}
		}
	}
	if seen < 8 {
		t.Fatalf("go list named only %d known packages:\n%s", seen, out)
	}
}

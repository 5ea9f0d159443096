package handlers

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"tunelab/store"
)

// badgeTones are the tones components.Badge draws.
var badgeTones = map[string]bool{"neutral": true, "accent": true, "success": true, "warn": true, "danger": true}

func TestEveryRunStatusHasLabelAndTone(t *testing.T) {
	for _, s := range store.RunStatuses {
		if l := s.Label(); l == "" || l == string(s) {
			t.Errorf("status %q has no label of its own (Label() = %q)", s, l)
		}
		if tone, ok := statusTones[s]; !ok || !badgeTones[tone] {
			t.Errorf("status %q has no badge tone (statusTones = %q)", s, tone)
		}
		if !s.Valid() {
			t.Errorf("status %q is listed but not valid", s)
		}
	}
	if len(statusTones) != len(store.RunStatuses) {
		t.Errorf("statusTones has %d entries for %d statuses", len(statusTones), len(store.RunStatuses))
	}
	for _, f := range store.DatasetFormats {
		if tone, ok := formatTones[f]; !ok || !badgeTones[tone] {
			t.Errorf("format %q has no badge tone (formatTones = %q)", f, tone)
		}
	}
	for _, m := range store.Methods {
		if m.Label() == string(m) || m.ShortLabel() == string(m) || methodAbout(m) == "" {
			t.Errorf("method %q lacks a label, short label or explanation", m)
		}
	}
}

// TestViewsDoNotCompareStatusOrMethod keeps the decisions about statuses, methods and
// dataset formats out of the views: handlers hand them ready-to-show fields (label,
// tone, sentence, flags), so a view never compares against one of their values.
func TestViewsDoNotCompareStatusOrMethod(t *testing.T) {
	var values []string
	for _, s := range store.RunStatuses {
		values = append(values, regexp.QuoteMeta(string(s)))
	}
	for _, m := range store.Methods {
		values = append(values, regexp.QuoteMeta(string(m)))
	}
	for _, f := range store.DatasetFormats {
		values = append(values, regexp.QuoteMeta(string(f)))
	}
	lit := `"(?:` + strings.Join(values, "|") + `)"`
	compare := regexp.MustCompile(`(?:==|!=)\s*` + lit + `|` + lit + `\s*(?:==|!=)|\bcase\b[^:]*` + lit)

	var files []string
	for _, pattern := range []string{"../views/*.templ", "../views/*/*.templ"} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) < 5 {
		t.Fatalf("found only %d templ files: is the views directory where the test looks?", len(files))
	}
	// The hand-written Go of the views package is held to the same rule.
	goFiles, err := filepath.Glob("../views/*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range goFiles {
		if !strings.HasSuffix(f, "_templ.go") && !strings.HasSuffix(f, "_test.go") {
			files = append(files, f)
		}
	}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(src), "\n") {
			if compare.MatchString(line) {
				t.Errorf("%s:%d compares against a status, method or format literal; give the view a field instead:\n\t%s",
					f, i+1, strings.TrimSpace(line))
			}
		}
	}
}

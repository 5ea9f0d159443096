package handlers

import (
	"mime/multipart"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"tunelab/store"
)

// FuzzUploadName: whatever file name or typed name an upload carries, the dataset's name
// is valid UTF-8, free of control characters, non-empty and at most
// store.MaxDatasetNameRunes runes; a name taken from the file name (the form's or the
// OpenAI API's) holds no path separator.
func FuzzUploadName(f *testing.F) {
	for _, s := range [][2]string{
		{"", "train.jsonl"},
		{"", `C:\Users\ada\secret\train.jsonl`},
		{"", "../../etc/passwd"},
		{"", "/"},
		{"", "dir/\x00evil\n.jsonl"},
		{"", "\xff\xfe.jsonl"},
		{"My chat set", "x.jsonl"},
		{"  \t\r\n ", "a\x1b[31mred.jsonl"},
		{strings.Repeat("é", 200), ""},
		{"", strings.Repeat("a/", 300) + strings.Repeat("z", 300) + ".jsonl"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, formName, fileName string) {
		check := func(what, name string, fromFile bool) {
			t.Helper()
			if name == "" || !utf8.ValidString(name) || utf8.RuneCountInString(name) > store.MaxDatasetNameRunes {
				t.Fatalf("%s(%q, %q) = %q: empty, invalid UTF-8 or too long", what, formName, fileName, name)
			}
			if strings.IndexFunc(name, unicode.IsControl) >= 0 {
				t.Fatalf("%s(%q, %q) = %q holds a control character", what, formName, fileName, name)
			}
			if fromFile && strings.ContainsAny(name, `/\`) {
				t.Fatalf("%s(%q, %q) = %q holds a path separator", what, formName, fileName, name)
			}
		}
		typed := strings.TrimSpace(formName)
		check("form upload", store.CleanDatasetName(datasetUploadName(typed, fileName)), typed == "")
		check("API upload", store.CleanDatasetName(uploadName(&multipart.FileHeader{Filename: fileName})), true)
		if got := store.CleanDatasetName(store.CleanDatasetName(formName)); got != store.CleanDatasetName(formName) {
			t.Fatalf("cleaning %q twice changes it: %q", formName, got)
		}
	})
}

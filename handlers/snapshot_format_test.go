package handlers

import (
	"io"
	"strings"
	"testing"
)

func TestSnapshotUploadFormatMustMatchContentType(t *testing.T) {
	zip := "PK\x03\x04rest of a zip"
	st := "\x10\x00\x00\x00\x00\x00\x00\x00{\"__metadata__\":{}}"
	for _, tc := range []struct {
		ct, body, bad string
	}{
		{"application/octet-stream", st, ""},
		{"", st, ""},
		{"application/zip", zip, ""},
		{"application/zip; charset=binary", zip, ""},
		{"application/zip", st, "not a ZIP"},
		{"text/plain", st, "not a snapshot format"},
		{"a/b/c", st, "does not parse"},
	} {
		r, bad := checkSnapshotUpload(tc.ct, strings.NewReader(tc.body))
		if tc.bad != "" {
			if !strings.Contains(bad, tc.bad) {
				t.Errorf("%q: refusal %q, want one saying %q", tc.ct, bad, tc.bad)
			}
			continue
		}
		if bad != "" {
			t.Fatalf("%q: refused: %s", tc.ct, bad)
		}
		got, _ := io.ReadAll(r)
		if string(got) != tc.body {
			t.Errorf("%q: body stored as %q, want it unchanged", tc.ct, got)
		}
	}
}

func TestStoredSnapshotFormatIsSniffedForDownloads(t *testing.T) {
	r, f := sniffSnapshot(strings.NewReader("PK\x03\x04xyz"))
	if b, _ := io.ReadAll(r); f != formatZIP || string(b) != "PK\x03\x04xyz" {
		t.Fatalf("zip sniffed as %+v, body %q", f, b)
	}
	r, f = sniffSnapshot(strings.NewReader("\x02\x00"))
	if b, _ := io.ReadAll(r); f != formatSafetensors || string(b) != "\x02\x00" {
		t.Fatalf("short safetensors sniffed as %+v, body %q", f, b)
	}
}

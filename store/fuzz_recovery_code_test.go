package store

import (
	"bytes"
	"strings"
	"testing"
	"unicode"
)

// FuzzRecoveryCode: NormalizeRecoveryCode never panics; what it returns is "" or 24
// base32 letters and digits, and normalising again changes nothing; and a typed code
// matches a stored one (the hash UseRecoveryCode looks up) only when it is that code up
// to case, dashes and spaces (inside) and white space (around). pick in [0, 4) puts stored code pick in front of the fuzzed
// text, styled as a person might type it (style).
func FuzzRecoveryCode(f *testing.F) {
	stored := []string{newRecoveryCode(), newRecoveryCode(), newRecoveryCode(), "abcd-efgh-ijkl-mnop-qrst-uv23"}
	hashes := make([][]byte, len(stored))
	for i, c := range stored {
		hashes[i] = recoveryHash(NormalizeRecoveryCode(c))
	}
	for _, s := range []struct {
		typed       string
		pick, style uint8
	}{
		{"", 0, 0},                              // as shown
		{"", 1, 1},                              // upper case
		{"", 2, 2},                              // spaces instead of dashes
		{"  ", 3, 3},                            // no dashes, trailing spaces
		{"x", 3, 0},                             // one character too many
		{"abcd-efgh-ijkl-mnop-qrst-uv2", 9, 0},  // one too few
		{"abcd-efgh-ijkl-mnop-qrst-uv21", 9, 0}, // 1 is not base32
		{"ABCDEFGHIJKLMNOPQRSTUV23====", 9, 0},  // padding
		{"ａｂｃｄ-efgh-ijkl-mnop-qrst-uv23", 9, 0}, // full-width letters
		{"\x00\xff\xfe", 9, 0},
	} {
		f.Add(s.typed, s.pick, s.style)
	}
	f.Fuzz(func(t *testing.T, typed string, pick, style uint8) {
		if int(pick) < len(stored) {
			c := stored[pick]
			switch style % 4 {
			case 1:
				c = strings.ToUpper(c)
			case 2:
				c = strings.ReplaceAll(c, "-", " ")
			case 3:
				c = strings.ReplaceAll(c, "-", "")
			}
			typed = c + typed
		}
		n := NormalizeRecoveryCode(typed)
		if n != "" {
			if len(n) != 24 || strings.Trim(n, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") != "" {
				t.Fatalf("NormalizeRecoveryCode(%q) = %q: not 24 base32 characters", typed, n)
			}
			if again := NormalizeRecoveryCode(n); again != n {
				t.Fatalf("normalising %q again gives %q", n, again)
			}
		}
		bare := strings.NewReplacer("-", "", " ", "").Replace(strings.TrimFunc(typed, unicode.IsSpace))
		for i, c := range stored {
			want := strings.ToUpper(bare) == strings.ToUpper(strings.ReplaceAll(c, "-", ""))
			got := n != "" && bytes.Equal(recoveryHash(n), hashes[i])
			if got != want {
				t.Fatalf("%q against stored %q: matched %v, want %v", typed, c, got, want)
			}
		}
	})
}

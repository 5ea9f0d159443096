package store

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"time"
)

// hotp is RFC 4226's code for counter, written out here so the check does not lean on
// the library matchStep uses.
func hotp(seed []byte, counter int64) string {
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], uint64(counter))
	m := hmac.New(sha1.New, seed)
	m.Write(msg[:])
	sum := m.Sum(nil)
	off := sum[len(sum)-1] & 0x0f
	v := binary.BigEndian.Uint32(sum[off:off+4]) & 0x7fffffff
	return fmt.Sprintf("%06d", v%1_000_000)
}

// FuzzTOTPVerify: matchStep never panics and accepts a code only when, spaces trimmed, it
// is the six digits of the current step or the one either side, newer than the last
// step used; and then it names that step. pick in [-3, 3] puts the real code of step
// now+pick in front of the fuzzed text, so right and nearly right codes are tried too.
func FuzzTOTPVerify(f *testing.F) {
	seed := []byte("12345678901234567890") // RFC 6238's test seed
	for _, s := range []struct {
		code   string
		at     int64
		pick   int8
		behind int8
	}{
		{"", 1_800_000_000, 0, 5},      // the current step's code
		{"", 1_800_000_000, -1, 5},     // a step back: allowed skew
		{"", 1_800_000_000, 1, 5},      // a step ahead
		{"", 1_800_000_000, 2, 5},      // two steps: refused
		{"", 1_800_000_000, -2, 5},     //
		{"", 1_800_000_000, 0, 0},      // already used this step
		{" ", 1_800_000_029, 0, 1},     // a trailing space is trimmed
		{"0", 59, 0, 3},                // a seventh digit
		{"12345", 1_111_111_109, 9, 1}, // five digits
		{"287082", 59, 9, 3},           // RFC 6238's 8-digit code cut to 6 (step 1 at 59 s)
		{"２８７０８２", 59, 9, 3},           // full-width digits
		{"-0", 0, 9, 1},
	} {
		f.Add(s.code, s.at, s.pick, s.behind)
	}
	f.Fuzz(func(t *testing.T, code string, at int64, pick, behind int8) {
		if at < 0 {
			at = -at
		}
		at %= 1 << 40 // some 35 000 years of steps
		now := time.Unix(at, 0)
		cur := at / totpPeriod
		if pick >= -3 && pick <= 3 {
			code = hotp(seed, cur+int64(pick)) + code
		}
		lastUsed := cur - int64(behind)
		step, ok := matchStep(seed, code, now, lastUsed)
		trimmed := strings.TrimSpace(code)
		want, wantStep := false, int64(0)
		for s := cur - 1; s <= cur+1; s++ {
			if s > lastUsed && trimmed == hotp(seed, s) {
				want, wantStep = true, s
				break
			}
		}
		if ok != want || (ok && step != wantStep) {
			t.Fatalf("matchStep(%q, at %d, last used %d) = %d, %v; want %d, %v", code, at, lastUsed, step, ok, wantStep, want)
		}
		if ok && (len(trimmed) != 6 || strings.Trim(trimmed, "0123456789") != "") {
			t.Fatalf("accepted %q, which is not six digits", code)
		}
	})
}

package trainer

import "testing"

// The worker's log lines write sizes and durations exactly as the server's pages do
// (handlers/format.go), so "86.6 kB" in the log is "86.6 kB" in the snapshot table.
func TestWorkerLogFormatsMatchThePages(t *testing.T) {
	for n, want := range map[int64]string{999: "999 B", 1000: "1 kB", 86_600: "86.6 kB", 87_000: "87 kB", 226_364: "226.4 kB",
		999_950: "1 MB", 100_000_000: "100 MB", 3_000_000_000: "3 GB"} {
		if got := formatSize(n); got != want {
			t.Errorf("formatSize(%d) = %q, want %q", n, got, want)
		}
	}
	for s, want := range map[float64]string{0: "0 s", 4.4: "4 s", 56: "56 s", 133: "2 min 13 s", 3849: "1 h 04 min"} {
		if got := formatDuration(s); got != want {
			t.Errorf("formatDuration(%v) = %q, want %q", s, got, want)
		}
	}
}

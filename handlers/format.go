package handlers

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// formatCount writes 1234567 as "1,234,567".
func formatCount(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// formatTokens writes an estimate: "≈ 950", "≈ 48.2k", "≈ 3.1M".
func formatTokens(n int64) string {
	switch {
	case n < 1000:
		return fmt.Sprintf("≈ %d", n)
	case n < 1_000_000:
		return fmt.Sprintf("≈ %.1fk", float64(n)/1e3)
	default:
		return fmt.Sprintf("≈ %.1fM", float64(n)/1e6)
	}
}

// formatBytes writes sizes in SI units with at most one decimal, as file managers show
// them: "950 B", "86.6 kB", "87 kB", "1.2 MB", "100 MB". Every page (and the worker's log
// lines) writes sizes this way.
func formatBytes(n int64) string {
	unit := func(v float64, name string) string {
		return strings.TrimSuffix(strconv.FormatFloat(v, 'f', 1, 64), ".0") + " " + name
	}
	switch {
	case n < 1000:
		return fmt.Sprintf("%d B", n)
	case n < 999_950:
		return unit(float64(n)/1e3, "kB")
	case n < 999_950_000:
		return unit(float64(n)/1e6, "MB")
	default:
		return unit(float64(n)/1e9, "GB")
	}
}

// formatDuration writes durations one way everywhere: "45 s", "3 min 05 s", "2 h 04 min".
func formatDuration(d time.Duration) string {
	s := int64(d.Round(time.Second) / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%d s", s)
	case s < 3600:
		return fmt.Sprintf("%d min %02d s", s/60, s%60)
	default:
		return fmt.Sprintf("%d h %02d min", s/3600, (s%3600)/60)
	}
}

func joinInts(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ", ")
}

// lowerFirst lower-cases a label's first letter for use inside a sentence ("Compute time"
// -> "compute time").
func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}

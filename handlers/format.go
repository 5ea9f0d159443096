package handlers

import (
	"fmt"
	"strconv"
	"strings"
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

// formatBytes writes sizes in decimal units, as file managers show them.
func formatBytes(n int64) string {
	switch {
	case n < 1000:
		return fmt.Sprintf("%d B", n)
	case n < 1_000_000:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	case n < 1_000_000_000:
		return strings.TrimSuffix(fmt.Sprintf("%.1f", float64(n)/1e6), ".0") + " MB"
	default:
		return strings.TrimSuffix(fmt.Sprintf("%.1f", float64(n)/1e9), ".0") + " GB"
	}
}

func joinInts(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ", ")
}

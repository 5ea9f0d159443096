package trainer

import "fmt"

// sampleLikeExamples is ~200 short chat rows shaped like a sample dataset.
func sampleLikeExamples() []Example {
	capitals := [][2]string{{"France", "Paris"}, {"Germany", "Berlin"}, {"Italy", "Rome"}, {"Spain", "Madrid"},
		{"Japan", "Tokyo"}, {"Canada", "Ottawa"}, {"Egypt", "Cairo"}, {"Peru", "Lima"}, {"Kenya", "Nairobi"}, {"Norway", "Oslo"}}
	var out []Example
	for _, c := range capitals {
		out = append(out, FlattenChat([]Message{{"user", "What is the capital of " + c[0] + "?"}, {"assistant", "The capital of " + c[0] + " is " + c[1] + "."}}))
	}
	for a := range 10 {
		for b := range 10 {
			out = append(out, FlattenChat([]Message{{"user", fmt.Sprintf("What is %d plus %d?", a, b)}, {"assistant", fmt.Sprintf("%d plus %d is %d.", a, b, a+b)}}))
		}
	}
	words := []string{"cat", "house", "river", "green", "light", "stone", "music", "table", "cloud", "bread"}
	for _, w := range words {
		for j := range 9 {
			r := []rune(w)
			for l, k := 0, len(r)-1; l < k; l, k = l+1, k-1 {
				r[l], r[k] = r[k], r[l]
			}
			switch j % 3 {
			case 0:
				out = append(out, FlattenChat([]Message{{"user", "Spell " + w + " backwards."}, {"assistant", string(r)}}))
			case 1:
				out = append(out, FlattenChat([]Message{{"user", "How many letters are in " + w + "?"}, {"assistant", fmt.Sprintf("%s has %d letters.", w, len(w))}}))
			default:
				out = append(out, FlattenChat([]Message{{"system", "Answer in upper case."}, {"user", "Say " + w + "."}, {"assistant", fmt.Sprintf("%s!", upper(w))}}))
			}
		}
	}
	return out
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - 32
		}
	}
	return string(b)
}

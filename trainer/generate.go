package trainer

import (
	"math"
	"math/rand/v2"
	"strings"
)

// Generate continues prompt by sampling up to maxChars bytes, stopping at
// EOS. Temperature ≤ 0 picks the most likely byte each time; seed makes a
// sample repeatable. A multi-byte character cut off at the end is dropped.
func (m *Model) Generate(prompt string, maxChars int, temperature float64, seed int64) string {
	w := m.effective(nil)
	s := w.size
	rng := rand.New(rand.NewPCG(uint64(seed), 0x67656e))
	ctx := make([]int, s.Context)
	for i := range ctx {
		ctx[i] = EOS
	}
	for _, b := range []byte(prompt) {
		ctx = append(ctx[1:], int(b))
	}
	x, h, logits := make([]float64, s.in()), make([]float64, s.Hidden), make([]float64, VocabSize)
	var out []byte
	for len(out) < maxChars {
		for k, tok := range ctx {
			copy(x[k*s.Embed:(k+1)*s.Embed], w.emb[tok*s.Embed:(tok+1)*s.Embed])
		}
		for i := range h {
			h[i] = math.Tanh(w.b1[i] + dot(w.w1[i*s.in():(i+1)*s.in()], x))
		}
		best := 0
		for v := range logits {
			logits[v] = w.b2[v] + dot(w.w2[v*s.Hidden:(v+1)*s.Hidden], h)
			if logits[v] > logits[best] {
				best = v
			}
		}
		next := best
		if temperature > 0 {
			next = sample(logits, logits[best], temperature, rng)
		}
		if next == EOS {
			break
		}
		out = append(out, byte(next))
		ctx = append(ctx[1:], next)
	}
	return strings.ToValidUTF8(string(out), "")
}

func sample(logits []float64, maxLogit, temperature float64, rng *rand.Rand) int {
	sum := 0.0
	for v, l := range logits {
		logits[v] = math.Exp((l - maxLogit) / temperature)
		sum += logits[v]
	}
	r := rng.Float64() * sum
	for v, p := range logits {
		if r -= p; r < 0 {
			return v
		}
	}
	return len(logits) - 1
}

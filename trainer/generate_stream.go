package trainer

import (
	"bytes"
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"unicode/utf8"
)

// Streaming generation for the playground: the model's tokens are bytes, so
// bytes are sampled one at a time and handed on as text only once they form
// whole UTF-8 characters and cannot be the start of a stop sequence.

// SampleOptions bound and shape one generation.
type SampleOptions struct {
	MaxBytes    int      // the most bytes sampled (the model's tokens are bytes)
	Temperature float64  // 0 picks the most likely byte each time (greedy)
	TopP        float64  // nucleus sampling: keep the likeliest bytes whose mass reaches TopP; 0 or 1 keeps all
	Seed        int64    // the same seed and options give the same text
	Stop        []string // generation ends before the first of these; it is not part of the text
}

// Why a generation ended.
const (
	FinishEOS       = "eos"        // the model ended its completion
	FinishMaxTokens = "max_tokens" // MaxBytes were sampled
	FinishStop      = "stop"       // a stop sequence appeared
)

// Stream continues prompt, calling emit with each piece of new text (valid
// UTF-8, never empty). It returns why it ended; ctx cancels it between bytes
// (the error is then ctx's), as does an error from emit.
func (m *Model) Stream(ctx context.Context, prompt string, o SampleOptions, emit func(string) error) (string, error) {
	w := m.effective(nil)
	s := w.size
	rng := rand.New(rand.NewPCG(uint64(o.Seed), 0x67656e))
	window := make([]int, s.Context)
	for i := range window {
		window[i] = EOS
	}
	for _, b := range []byte(prompt) {
		window = append(window[1:], int(b))
	}
	x, h, logits := make([]float64, s.in()), make([]float64, s.Hidden), make([]float64, VocabSize)
	order := make([]int, VocabSize)
	var out []byte
	sent := 0
	send := func(upTo int) error {
		if upTo <= sent {
			return nil
		}
		text := strings.ToValidUTF8(string(out[sent:upTo]), "")
		sent = upTo
		if text == "" {
			return nil
		}
		return emit(text)
	}
	reason := FinishMaxTokens
	for len(out) < o.MaxBytes {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		for k, tok := range window {
			copy(x[k*s.Embed:(k+1)*s.Embed], w.emb[tok*s.Embed:(tok+1)*s.Embed])
		}
		for i := range h {
			h[i] = math.Tanh(w.b1[i] + dot(w.w1[i*s.in():(i+1)*s.in()], x))
		}
		for v := range logits {
			logits[v] = w.b2[v] + dot(w.w2[v*s.Hidden:(v+1)*s.Hidden], h)
		}
		next := pick(logits, order, o, rng)
		if next == EOS {
			reason = FinishEOS
			break
		}
		out = append(out, byte(next))
		window = append(window[1:], next)
		if cut, ok := stopAt(out, o.Stop); ok {
			out = out[:cut]
			reason = FinishStop
			break
		}
		if err := send(safeEnd(out, sent, o.Stop)); err != nil {
			return "", err
		}
	}
	if err := send(len(out)); err != nil {
		return "", err
	}
	return reason, nil
}

// pick chooses the next symbol: the likeliest at temperature 0, otherwise a
// sample from the temperature-scaled distribution cut to its top-p nucleus.
func pick(logits []float64, order []int, o SampleOptions, rng *rand.Rand) int {
	best := 0
	for v, l := range logits {
		if l > logits[best] {
			best = v
		}
	}
	if o.Temperature <= 0 {
		return best
	}
	sum := 0.0
	for v, l := range logits {
		logits[v] = math.Exp((l - logits[best]) / o.Temperature)
		sum += logits[v]
	}
	for v := range order {
		order[v] = v
	}
	// Stable order (probability, then symbol) keeps a seeded sample repeatable.
	slices.SortStableFunc(order, func(a, b int) int {
		switch {
		case logits[a] > logits[b]:
			return -1
		case logits[a] < logits[b]:
			return 1
		}
		return 0
	})
	keep := len(order)
	if o.TopP > 0 && o.TopP < 1 {
		mass := 0.0
		for i, v := range order {
			mass += logits[v] / sum
			if mass >= o.TopP {
				keep = i + 1
				break
			}
		}
	}
	kept := 0.0
	for _, v := range order[:keep] {
		kept += logits[v]
	}
	r := rng.Float64() * kept
	for _, v := range order[:keep] {
		if r -= logits[v]; r < 0 {
			return v
		}
	}
	return order[keep-1]
}

// stopAt finds the first stop sequence in out; cut is where the text ends.
func stopAt(out []byte, stops []string) (cut int, ok bool) {
	cut = -1
	for _, s := range stops {
		if s == "" {
			continue
		}
		if i := bytes.Index(out, []byte(s)); i >= 0 && (cut < 0 || i < cut) {
			cut = i
		}
	}
	return cut, cut >= 0
}

// safeEnd is how much of out can be sent: not a tail that could still grow
// into a stop sequence, and not a character whose bytes are still coming.
func safeEnd(out []byte, sent int, stops []string) int {
	end := len(out)
	for _, s := range stops {
		for k := min(len(s)-1, len(out)); k > 0; k-- {
			if bytes.HasSuffix(out, []byte(s[:k])) {
				end = min(end, len(out)-k)
				break
			}
		}
	}
	// Step back over an unfinished multi-byte character at the end.
	for back := 1; back <= 3 && end-back >= sent; back++ {
		b := out[end-back]
		if b < 0x80 {
			break
		}
		if utf8.RuneStart(b) {
			if !utf8.FullRune(out[end-back : end]) {
				end -= back
			}
			break
		}
	}
	return max(end, sent)
}

// CompletionLoss is the mean negative log-likelihood, in nats per byte, of
// completion (and the EOS that ends it) following prompt: lower means the
// model finds that continuation likelier.
func (m *Model) CompletionLoss(prompt, completion string) float64 {
	w := m.effective(nil)
	s := w.size
	window := make([]int, s.Context)
	for i := range window {
		window[i] = EOS
	}
	for _, b := range []byte(prompt) {
		window = append(window[1:], int(b))
	}
	targets := make([]int, 0, len(completion)+1)
	for _, b := range []byte(completion) {
		targets = append(targets, int(b))
	}
	targets = append(targets, EOS)
	x, h, logits := make([]float64, s.in()), make([]float64, s.Hidden), make([]float64, VocabSize)
	total := 0.0
	for _, t := range targets {
		for k, tok := range window {
			copy(x[k*s.Embed:(k+1)*s.Embed], w.emb[tok*s.Embed:(tok+1)*s.Embed])
		}
		for i := range h {
			h[i] = math.Tanh(w.b1[i] + dot(w.w1[i*s.in():(i+1)*s.in()], x))
		}
		top := math.Inf(-1)
		for v := range logits {
			logits[v] = w.b2[v] + dot(w.w2[v*s.Hidden:(v+1)*s.Hidden], h)
			top = max(top, logits[v])
		}
		sum := 0.0
		for _, l := range logits {
			sum += math.Exp(l - top)
		}
		total += top + math.Log(sum) - logits[t]
		window = append(window[1:], t)
	}
	return total / float64(len(targets))
}

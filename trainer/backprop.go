package trainer

import (
	"context"
	"math"
)

// scratch is one goroutine's working memory for a position.
type scratch struct {
	x, h, p, dh, dx []float64
}

func newScratch(s ModelSize) *scratch {
	return &scratch{
		x: make([]float64, s.in()), h: make([]float64, s.Hidden),
		p: make([]float64, VocabSize), dh: make([]float64, s.Hidden), dx: make([]float64, s.in()),
	}
}

// cancelCheckEvery bounds the work between context checks so that cancel
// lands within a second even on a 4096-byte completion.
const cancelCheckEvery = 64

// seqLogProb returns Σ log p(target) over seq's targets. When g is non-nil
// it also adds to g the gradient of −coef·Σ log p, so a loss that is a
// weighted sum of sequence log-probs (mean cross-entropy, DPO) is one call
// per sequence. needEmb=false skips the embedding gradient (lora freezes it).
func (w *weights) seqLogProb(ctx context.Context, seq sequence, coef float64, g *weights, needEmb bool, s *scratch) (float64, error) {
	K, E, H, in := w.size.Context, w.size.Embed, w.size.Hidden, w.size.in()
	total := 0.0
	for t := seq.start; t < len(seq.tokens); t++ {
		if (t-seq.start)%cancelCheckEvery == cancelCheckEvery-1 {
			if err := ctx.Err(); err != nil {
				return 0, err
			}
		}
		// Gather the previous K symbols' embeddings; before the text, EOS.
		for k := range K {
			tok := EOS
			if pos := t - K + k; pos >= 0 {
				tok = seq.tokens[pos]
			}
			copy(s.x[k*E:(k+1)*E], w.emb[tok*E:(tok+1)*E])
		}
		for i := range H {
			s.h[i] = math.Tanh(w.b1[i] + dot(w.w1[i*in:(i+1)*in], s.x))
		}
		maxLogit := math.Inf(-1)
		for v := range VocabSize {
			l := w.b2[v] + dot(w.w2[v*H:(v+1)*H], s.h)
			s.p[v] = l
			maxLogit = max(maxLogit, l)
		}
		y := seq.tokens[t]
		logitY := s.p[y]
		sum := 0.0
		for v := range VocabSize {
			s.p[v] = math.Exp(s.p[v] - maxLogit)
			sum += s.p[v]
		}
		total += logitY - maxLogit - math.Log(sum)
		if g == nil {
			continue
		}
		inv := 1 / sum
		clear(s.dh)
		for v := range VocabSize {
			d := s.p[v] * inv
			if v == y {
				d -= 1
			}
			d *= coef
			if d == 0 {
				continue
			}
			g.b2[v] += d
			axpy(d, s.h, g.w2[v*H:(v+1)*H])
			axpy(d, w.w2[v*H:(v+1)*H], s.dh)
		}
		if needEmb {
			clear(s.dx)
		}
		for i := range H {
			d := s.dh[i] * (1 - s.h[i]*s.h[i])
			if d == 0 {
				continue
			}
			g.b1[i] += d
			axpy(d, s.x, g.w1[i*in:(i+1)*in])
			if needEmb {
				axpy(d, w.w1[i*in:(i+1)*in], s.dx)
			}
		}
		if needEmb {
			for k := range K {
				tok := EOS
				if pos := t - K + k; pos >= 0 {
					tok = seq.tokens[pos]
				}
				axpy(1, s.dx[k*E:(k+1)*E], g.emb[tok*E:(tok+1)*E])
			}
		}
	}
	return total, nil
}

package trainer

import (
	"math"
	"math/rand/v2"
)

// ModelSize fixes the shapes of a model.
type ModelSize struct {
	Context int // bytes of context
	Embed   int // embedding width per byte
	Hidden  int // hidden layer width
}

func (s ModelSize) in() int { return s.Context * s.Embed }

// weights are the dense tensors the forward pass reads; the same shape holds
// gradients.
type weights struct {
	size ModelSize
	emb  []float64 // VocabSize × Embed
	w1   []float64 // Hidden × Context·Embed
	b1   []float64 // Hidden
	w2   []float64 // VocabSize × Hidden
	b2   []float64 // VocabSize
}

func newWeights(s ModelSize) *weights {
	return &weights{
		size: s,
		emb:  make([]float64, VocabSize*s.Embed),
		w1:   make([]float64, s.Hidden*s.in()),
		b1:   make([]float64, s.Hidden),
		w2:   make([]float64, VocabSize*s.Hidden),
		b2:   make([]float64, VocabSize),
	}
}

func (w *weights) tensors() [][]float64 { return [][]float64{w.emb, w.w1, w.b1, w.w2, w.b2} }

func (w *weights) clone() *weights {
	c := newWeights(w.size)
	for i, t := range c.tensors() {
		copy(t, w.tensors()[i])
	}
	return c
}

func (w *weights) zero() {
	for _, t := range w.tensors() {
		clear(t)
	}
}

// lora holds low-rank adapters: W_eff = W + (alpha/rank)·B·A on the hidden
// and output matrices.
type lora struct {
	rank   int
	alpha  float64
	a1, b1 []float64 // rank × in, Hidden × rank
	a2, b2 []float64 // rank × Hidden, VocabSize × rank
}

func (l *lora) scale() float64 { return l.alpha / float64(l.rank) }

// Model is a trained or initial character model; safe for concurrent
// Generate calls once training is over.
type Model struct {
	w    *weights
	lora *lora // nil unless trained with lora
}

// NewModel returns a freshly initialised model; the same size and seed give
// the same weights, which is how a lora snapshot finds its base again.
func NewModel(size ModelSize, seed int64) *Model {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x74756e656c6162))
	w := newWeights(size)
	fill(rng, w.emb, 1)
	// 1/sqrt(fan-in) keeps tanh out of saturation at the start.
	fill(rng, w.w1, 1/math.Sqrt(float64(size.in())))
	// A small output layer starts near the uniform distribution.
	fill(rng, w.w2, 0.1/math.Sqrt(float64(size.Hidden)))
	return &Model{w: w}
}

func fill(rng *rand.Rand, t []float64, std float64) {
	for i := range t {
		t[i] = rng.NormFloat64() * std
	}
}

// Size reports the model's shapes.
func (m *Model) Size() ModelSize { return m.w.size }

// Clone returns a deep copy.
func (m *Model) Clone() *Model {
	c := &Model{w: m.w.clone()}
	if m.lora != nil {
		l := *m.lora
		l.a1, l.b1 = append([]float64(nil), l.a1...), append([]float64(nil), l.b1...)
		l.a2, l.b2 = append([]float64(nil), l.a2...), append([]float64(nil), l.b2...)
		c.lora = &l
	}
	return c
}

// addLoRA attaches adapters. B starts at zero so the adapted model equals
// the base at step 0; A is random so gradients reach B.
func (m *Model) addLoRA(rank int, alpha float64, rng *rand.Rand) {
	s := m.w.size
	l := &lora{
		rank: rank, alpha: alpha,
		a1: make([]float64, rank*s.in()), b1: make([]float64, s.Hidden*rank),
		a2: make([]float64, rank*s.Hidden), b2: make([]float64, VocabSize*rank),
	}
	fill(rng, l.a1, 1/math.Sqrt(float64(s.in())))
	fill(rng, l.a2, 1/math.Sqrt(float64(s.Hidden)))
	m.lora = l
}

// effective returns the weights the forward pass uses: the base itself, or
// a merged copy with the adapters folded in (into dst when given).
func (m *Model) effective(dst *weights) *weights {
	if m.lora == nil {
		return m.w
	}
	if dst == nil {
		dst = newWeights(m.w.size)
	}
	copy(dst.emb, m.w.emb)
	copy(dst.b1, m.w.b1)
	copy(dst.b2, m.w.b2)
	s, l := m.w.size, m.lora
	addLowRank(dst.w1, m.w.w1, l.b1, l.a1, s.Hidden, l.rank, s.in(), l.scale())
	addLowRank(dst.w2, m.w.w2, l.b2, l.a2, VocabSize, l.rank, s.Hidden, l.scale())
	return dst
}

// addLowRank sets dst = base + scale·B·A with B rows×rank and A rank×cols.
func addLowRank(dst, base, b, a []float64, rows, rank, cols int, scale float64) {
	copy(dst, base)
	for i := range rows {
		row := dst[i*cols : (i+1)*cols]
		for k := range rank {
			if c := scale * b[i*rank+k]; c != 0 {
				axpy(c, a[k*cols:(k+1)*cols], row)
			}
		}
	}
}

func dot(a, b []float64) float64 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// axpy sets y += alpha·x.
func axpy(alpha float64, x, y []float64) {
	y = y[:len(x)]
	for i, v := range x {
		y[i] += alpha * v
	}
}

package trainer

import (
	"context"
	"math"
	"sync"
)

// gradShards is fixed, not GOMAXPROCS, so the order of floating-point sums,
// and with it every run, is the same on any machine.
const gradShards = 8

// shard is one goroutine's gradient buffer and scratch memory.
type shard struct {
	g *weights
	s *scratch
}

// param is one trainable tensor with its gradient and Adam moments.
type param struct {
	value, grad, m, v []float64
}

// pairSeq is an encoded preference pair with the frozen reference's
// sequence log-probs, computed once before training.
type pairSeq struct {
	chosen, rejected       sequence
	refChosen, refRejected float64
}

// stepStats sums what a batch reports; divide by n for means.
type stepStats struct {
	loss    float64
	tokens  int
	n       int
	correct float64 // dpo: pairs whose chosen reward beats the rejected one
	margin  float64 // dpo: Σ (chosen reward − rejected reward)
}

// objective computes losses and gradients of one run's trainable params.
type objective struct {
	model   *Model
	beta    float64
	merged  *weights // lora: base with adapters folded in
	shards  []shard
	params  []*param
	needEmb bool
}

func newObjective(m *Model, cfg Config) *objective {
	o := &objective{model: m, beta: cfg.DPOBeta, needEmb: m.lora == nil}
	for range gradShards {
		o.shards = append(o.shards, shard{g: newWeights(m.w.size), s: newScratch(m.w.size)})
	}
	if m.lora != nil {
		o.merged = newWeights(m.w.size)
		l := m.lora
		for _, t := range [][]float64{l.a1, l.b1, l.a2, l.b2} {
			o.params = append(o.params, newParam(t, make([]float64, len(t))))
		}
		return o
	}
	// Full and dpo train every base tensor; shard 0 holds the summed grads.
	g := o.shards[0].g.tensors()
	for i, t := range m.w.tensors() {
		o.params = append(o.params, newParam(t, g[i]))
	}
	return o
}

func newParam(value, grad []float64) *param {
	return &param{value: value, grad: grad, m: make([]float64, len(value)), v: make([]float64, len(value))}
}

// weights returns what the forward pass reads for the current params.
func (o *objective) weights() *weights { return o.model.effective(o.merged) }

// parallel runs work(sh, i) for i in [0,n), contiguous chunks per shard.
func (o *objective) parallel(n int, work func(sh *shard, i int) error) error {
	shards := min(len(o.shards), n)
	errs := make([]error, shards)
	var wg sync.WaitGroup
	for k := range shards {
		lo, hi := k*n/shards, (k+1)*n/shards
		wg.Go(func() {
			for i := lo; i < hi; i++ {
				if err := work(&o.shards[k], i); err != nil {
					errs[k] = err
					return
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func (o *objective) zeroGrads() {
	for _, sh := range o.shards {
		sh.g.zero()
	}
}

// reduceGrads sums the shard gradients in a fixed order into the params.
func (o *objective) reduceGrads() {
	total := o.shards[0].g
	for _, sh := range o.shards[1:] {
		for i, t := range total.tensors() {
			axpy(1, sh.g.tensors()[i], t)
		}
	}
	l := o.model.lora
	if l == nil {
		return
	}
	s := o.model.w.size
	loraGrads(total.w1, l.b1, l.a1, o.params[1].grad, o.params[0].grad, s.Hidden, l.rank, s.in(), l.scale())
	loraGrads(total.w2, l.b2, l.a2, o.params[3].grad, o.params[2].grad, VocabSize, l.rank, s.Hidden, l.scale())
}

// loraGrads turns dW of W_eff = W + scale·B·A into dB = scale·dW·Aᵀ and
// dA = scale·Bᵀ·dW; the frozen base gets nothing.
func loraGrads(dW, b, a, dB, dA []float64, rows, rank, cols int, scale float64) {
	clear(dA)
	for i := range rows {
		row := dW[i*cols : (i+1)*cols]
		for k := range rank {
			dB[i*rank+k] = scale * dot(row, a[k*cols:(k+1)*cols])
			if c := scale * b[i*rank+k]; c != 0 {
				axpy(c, row, dA[k*cols:(k+1)*cols])
			}
		}
	}
}

// sftGradients sets the params' grads to those of the mean cross-entropy
// over the batch's completion bytes.
func (o *objective) sftGradients(ctx context.Context, batch []sequence) (stepStats, error) {
	w := o.weights()
	o.zeroGrads()
	targets := 0
	st := stepStats{n: 1}
	for _, s := range batch {
		targets += s.targets()
		st.tokens += len(s.tokens)
	}
	coef := 1 / float64(targets)
	logps := make([]float64, len(batch))
	err := o.parallel(len(batch), func(sh *shard, i int) error {
		lp, err := w.seqLogProb(ctx, batch[i], coef, sh.g, o.needEmb, sh.s)
		logps[i] = lp
		return err
	})
	if err != nil {
		return stepStats{}, err
	}
	o.reduceGrads()
	for _, lp := range logps {
		st.loss -= lp
	}
	st.loss /= float64(targets)
	return st, nil
}

// dpoGradients sets the params' grads to those of the mean DPO loss
// −log σ(β·((logπ(c)−logπref(c)) − (logπ(r)−logπref(r)))). Each pair is
// scored first, then its two sequences are back-propagated with the
// weights dLoss/dlogπ.
func (o *objective) dpoGradients(ctx context.Context, batch []pairSeq) (stepStats, error) {
	w := o.weights()
	o.zeroGrads()
	n := float64(len(batch))
	res := make([]stepStats, len(batch))
	err := o.parallel(len(batch), func(sh *shard, i int) error {
		p := batch[i]
		z, err := o.pairScore(ctx, w, p, sh.s)
		if err != nil {
			return err
		}
		coef := o.beta * sigmoid(-z) / n
		if _, err := w.seqLogProb(ctx, p.chosen, coef, sh.g, o.needEmb, sh.s); err != nil {
			return err
		}
		if _, err := w.seqLogProb(ctx, p.rejected, -coef, sh.g, o.needEmb, sh.s); err != nil {
			return err
		}
		res[i] = pairStats(z, p)
		return nil
	})
	if err != nil {
		return stepStats{}, err
	}
	o.reduceGrads()
	st := sumStats(res)
	st.loss /= n
	return st, nil
}

// pairScore is the policy's implicit reward margin z for one pair.
func (o *objective) pairScore(ctx context.Context, w *weights, p pairSeq, s *scratch) (float64, error) {
	lc, err := w.seqLogProb(ctx, p.chosen, 0, nil, false, s)
	if err != nil {
		return 0, err
	}
	lr, err := w.seqLogProb(ctx, p.rejected, 0, nil, false, s)
	if err != nil {
		return 0, err
	}
	return o.beta * ((lc - p.refChosen) - (lr - p.refRejected)), nil
}

func pairStats(z float64, p pairSeq) stepStats {
	st := stepStats{loss: softplus(-z), n: 1, margin: z, tokens: len(p.chosen.tokens) + len(p.rejected.tokens)}
	if z > 0 {
		st.correct = 1
	}
	return st
}

func sumStats(all []stepStats) stepStats {
	var st stepStats
	for _, s := range all {
		st.loss += s.loss
		st.tokens += s.tokens
		st.n += s.n
		st.correct += s.correct
		st.margin += s.margin
	}
	return st
}

// evalSFT is the mean cross-entropy per completion byte.
func (o *objective) evalSFT(ctx context.Context, seqs []sequence) (float64, error) {
	w := o.weights()
	logps := make([]float64, len(seqs))
	err := o.parallel(len(seqs), func(sh *shard, i int) error {
		lp, err := w.seqLogProb(ctx, seqs[i], 0, nil, false, sh.s)
		logps[i] = lp
		return err
	})
	if err != nil {
		return 0, err
	}
	loss, targets := 0.0, 0
	for i, lp := range logps {
		loss -= lp
		targets += seqs[i].targets()
	}
	return loss / float64(targets), nil
}

// evalDPO sums loss, accuracy and margin over pairs; divide by n.
func (o *objective) evalDPO(ctx context.Context, pairs []pairSeq) (stepStats, error) {
	w := o.weights()
	res := make([]stepStats, len(pairs))
	err := o.parallel(len(pairs), func(sh *shard, i int) error {
		z, err := o.pairScore(ctx, w, pairs[i], sh.s)
		res[i] = pairStats(z, pairs[i])
		return err
	})
	return sumStats(res), err
}

// referenceLogProbs fills refChosen/refRejected from the frozen start.
func (o *objective) referenceLogProbs(ctx context.Context, ref *weights, pairs []pairSeq) error {
	return o.parallel(len(pairs), func(sh *shard, i int) error {
		var err error
		if pairs[i].refChosen, err = ref.seqLogProb(ctx, pairs[i].chosen, 0, nil, false, sh.s); err != nil {
			return err
		}
		pairs[i].refRejected, err = ref.seqLogProb(ctx, pairs[i].rejected, 0, nil, false, sh.s)
		return err
	})
}

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// softplus is log(1+eˣ) without overflow; −log σ(z) = softplus(−z).
func softplus(x float64) float64 {
	if x > 30 {
		return x
	}
	return math.Log1p(math.Exp(x))
}
